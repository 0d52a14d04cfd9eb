"""GC end to end over HTTP: Harbor's /system/gc API, the real state machine on moto, real S3 deletes."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.services.gc import harbor_size
from tests.functional.helpers import OCI_CONFIG, OCI_LAYER, canonical, descriptor, digest_of, image_manifest
from tests.functional.jobs.conftest import API, GcRegistry


def _blob_keys(gc: GcRegistry) -> set[str]:
    return set(gc.object_keys("blobs/"))


def _key(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def pulls(gc: Any, repo: str, reference: str) -> bool:
    """The whole image: manifest, then every blob (a 307 to S3, whose bytes must hash to the digest)."""
    response = gc.get(f"/v2/{repo}/manifests/{reference}")
    if response.status_code != 200:
        return False
    document = json.loads(response.get_data())
    for entry in [document["config"], *document["layers"]]:
        blob = gc.get(f"/v2/{repo}/blobs/{entry['digest']}")
        if blob.status_code != 307:
            return False
        stored = _read(gc, _key(entry["digest"]))
        if stored is None or digest_of(stored) != entry["digest"]:
            return False
    return True


def _read(gc: Any, key: str) -> bytes | None:
    from tests.functional.conftest import BUCKET, _admin_clients

    try:
        return bytes(_admin_clients()[1].get_object(Bucket=BUCKET, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchKey":
            return None
        raise


def _table(gc: GcRegistry) -> list[dict[str, Any]]:
    """Every row except the job machinery's own (which a dry run is allowed to write)."""
    pages = gc.dynamodb.get_paginator("scan").paginate(TableName=gc.table, ConsistentRead=True)
    rows = [item for page in pages for item in page.get("Items", [])]
    own = ("JOB#", "JOBS#", "JOBLOCK#", "COUNTER#JOB")
    return sorted((r for r in rows if not r["pk"]["S"].startswith(own)), key=lambda r: (r["pk"]["S"], r["sk"]["S"]))


def _usage(gc: GcRegistry, project: str = "library") -> tuple[int, int]:
    """(usage on the project row, sum of its project-blob rows)."""
    row = gc.dynamodb.get_item(TableName=gc.table, Key={"pk": {"S": f"PROJECT#{project}"}, "sk": {"S": "ENTITY"}})
    pages = gc.dynamodb.get_paginator("query").paginate(
        TableName=gc.table,
        KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
        ExpressionAttributeValues={":p": {"S": f"PROJECT#{project}"}, ":b": {"S": "BLOB#"}},
    )
    held = sum(int(i["size"]["N"]) for page in pages for i in page.get("Items", []))
    return int(row["Item"]["storage_used"]["N"]), held


def _gc_service() -> Any:
    from chalicelib.wiring import services

    return services().gc


def test_gc_collects_the_blobs_of_a_deleted_manifest_and_keeps_the_rest(gc: GcRegistry) -> None:
    gc.push_image("library/keep", "v1", layers=2)
    doomed, _ = gc.push_image("library/gone", "v1", layers=2)
    assert gc.delete(f"/v2/library/gone/manifests/{doomed}").status_code == 202
    before = _blob_keys(gc)

    job = gc.run_gc(delete_untagged=False)

    assert job["result"]["purged_blobs"] == 3  # config + 2 layers of the deleted image
    assert len(before - _blob_keys(gc)) == 3
    assert pulls(gc, "library/keep", "v1")
    assert job["job_name"] == "GARBAGE_COLLECTION" and job["job_kind"] == "MANUAL"
    assert "freed_space=" in gc.gc_log(job["id"])
    used, held = _usage(gc)
    assert used == held
    second = gc.run_gc(delete_untagged=False)
    assert (second["result"]["purged_blobs"], second["result"]["freed_space"]) == (0, 0)


def _garbage_repository(gc: GcRegistry) -> dict[str, str]:
    """Overwritten tags, a deleted manifest, an untagged push, an index child, an orphan chunk."""
    first, _ = gc.push_image("library/app", "v1", layers=2)
    latest, _ = gc.push_image("library/app", "v1", layers=2)  # v1 moves: `first` becomes untagged
    deleted, _ = gc.push_image("library/app", "v2", layers=1)
    assert gc.delete(f"/v2/library/app/manifests/{deleted}").status_code == 202
    untagged, _ = gc.push_image("library/app", layers=1)
    child, child_body = gc.push_image("library/app", layers=1)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child,
                            "size": len(child_body)}]}  # fmt: skip
    gc.push_manifest("library/app", "multi", index)
    # A blob no manifest uses; streamed chunks leave the first at its own content address (an orphan).
    gc.push_blob_chunked("library/app", b"x" * 3000, 1000, content_range=False)
    gc.s3.put_object(Bucket=gc.bucket, Key="uploads/abandoned/chunk-1", Body=b"left behind")
    return {"first": first, "latest": latest, "deleted": deleted, "untagged": untagged, "child": child}


def test_dry_run_estimates_what_the_real_run_frees_and_changes_nothing(gc: GcRegistry) -> None:
    digests = _garbage_repository(gc)
    table, objects = _table(gc), set(gc.object_keys())

    dry = gc.run_gc(dry_run=True, delete_untagged=True)

    assert _table(gc) == table
    assert set(gc.object_keys()) == objects
    estimate = {k: dry["result"][k] for k in ("freed_space", "purged_blobs", "purged_manifests")}
    assert estimate["purged_manifests"] == 2  # `first` and `untagged`; the index child is kept
    assert estimate["purged_blobs"] > 0 and estimate["freed_space"] > 0
    dry_log = gc.gc_log(dry["id"])
    # Harbor's wording, which its clients parse (blob objects and untagged manifests, freed size).
    blobs, manifests = estimate["purged_blobs"], estimate["purged_manifests"]
    assert f"{blobs} blobs and {manifests} manifests eligible for deletion" in dry_log
    assert f"The GC could free up {harbor_size(estimate['freed_space'])} space, the size is a rough estimation." in (
        dry_log
    )
    assert "actually deleted" not in dry_log

    real = gc.run_gc(delete_untagged=True)

    assert {k: real["result"][k] for k in estimate} == estimate
    real_log = gc.gc_log(real["id"])
    assert f"{blobs} blobs and {manifests} manifests eligible for deletion" in real_log
    assert f"{blobs} blobs and {manifests} manifests are actually deleted" in real_log
    assert f"The GC job actual frees up {harbor_size(real['result']['freed_space'])} space." in real_log
    assert gc.get(f"/v2/library/app/manifests/{digests['first']}").status_code == 404
    assert gc.get(f"/v2/library/app/manifests/{digests['untagged']}").status_code == 404
    assert pulls(gc, "library/app", "v1")
    assert pulls(gc, "library/app", digests["child"])
    assert gc.get("/v2/library/app/manifests/multi").status_code == 200
    assert not gc.object_keys("uploads/")
    used, held = _usage(gc)
    assert used == held
    again = gc.run_gc(delete_untagged=True)
    assert {k: again["result"][k] for k in estimate} == {"freed_space": 0, "purged_blobs": 0, "purged_manifests": 0}


def test_the_window_protects_recent_blobs(gc: GcRegistry) -> None:
    gc.configure(gc_time_window_hours=2)
    doomed, _ = gc.push_image("library/recent", "v1", layers=2)
    assert gc.delete(f"/v2/library/recent/manifests/{doomed}").status_code == 202
    gc.push_blob_chunked("library/recent", b"y" * 3000, 1000, content_range=False)
    before = set(gc.object_keys())

    job = gc.run_gc(delete_untagged=True)

    assert job["result"]["purged_blobs"] == 0 and job["result"]["freed_space"] == 0
    assert set(gc.object_keys()) == before


def _hold(phase: str) -> tuple[threading.Event, threading.Event]:
    """Pause the next GC when it reaches `phase`: returns (reached, release)."""
    reached, release = threading.Event(), threading.Event()

    def pause(name: str, job_id: int) -> None:
        if name == phase and not reached.is_set():
            reached.set()
            assert release.wait(60), "the test never released the GC"

    _gc_service().pause = pause
    return reached, release


def _layer_bytes(tag: bytes) -> bytes:
    return tag * 700


def test_a_head_on_a_marked_blob_saves_it_and_a_claimed_blob_is_gone(gc: GcRegistry) -> None:
    saved_layer, lost_layer = _layer_bytes(b"s"), _layer_bytes(b"l")
    saved, lost = gc.push_blob("library/race", saved_layer), gc.push_blob("library/race", lost_layer)
    reached, release = _hold("claimed")
    _gc_service().sweep_batch = 1  # one blob per batch: the first is claimed while the other waits
    job_id = gc.start_gc(delete_untagged=False)
    assert reached.wait(60)
    states = {d: _state(gc, d) for d in (saved, lost)}
    claimed = next(d for d, s in states.items() if s == "deleting")
    waiting = next(d for d, s in states.items() if s == "delete")
    assert gc.head(f"/v2/library/race/blobs/{claimed}").status_code == 404
    assert gc.head(f"/v2/library/race/blobs/{waiting}").status_code == 200  # touches it
    release.set()
    job = gc.wait_gc(job_id)
    assert job["job_status"] == "Success"
    assert json.loads(job["job_parameters"])["purged_blobs"] == 1
    assert gc.head(f"/v2/library/race/blobs/{waiting}").status_code == 200
    assert _read(gc, _key(waiting)) is not None
    assert _read(gc, _key(claimed)) is None
    assert "a client used it" in gc.gc_log(job_id)


def _state(gc: GcRegistry, digest: str) -> str:
    item = gc.dynamodb.get_item(TableName=gc.table, Key={"pk": {"S": f"BLOB#{digest}"}, "sk": {"S": "BLOB"}})
    return str(item["Item"]["state"]["S"]) if "Item" in item else "absent"


def test_a_reupload_while_deleting_is_refused_and_after_the_sweep_it_is_stored_again(gc: GcRegistry) -> None:
    layer = _layer_bytes(b"r")
    digest = gc.push_blob("library/again", layer)
    reached, release = _hold("claimed")
    job_id = gc.start_gc(delete_untagged=False)
    assert reached.wait(60)
    refused = gc.post("/v2/library/again/blobs/uploads/", query_string={"digest": digest}, data=layer,
                      headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert refused.status_code == 404, refused.get_data()
    assert refused.get_json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    release.set()
    assert gc.wait_gc(job_id)["job_status"] == "Success"
    assert _state(gc, digest) == "deleted"  # a tombstone
    gc.push_blob("library/again", layer)
    assert _state(gc, digest) == "none"
    assert _read(gc, _key(digest)) == layer


def test_a_manifest_put_touches_old_layers_so_a_marked_one_survives(gc: GcRegistry) -> None:
    layer, config = _layer_bytes(b"m"), canonical({"os": "linux", "n": 1})
    layer_digest = gc.push_blob("library/reuse", layer)
    reached, release = _hold("sweep")
    job_id = gc.start_gc(delete_untagged=False)
    assert reached.wait(60)
    assert _state(gc, layer_digest) == "delete"
    gc.push_blob("library/reuse", config)
    manifest = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    gc.push_manifest("library/reuse", "v1", manifest)
    assert _state(gc, layer_digest) == "none"
    release.set()
    assert gc.wait_gc(job_id)["job_status"] == "Success"
    assert pulls(gc, "library/reuse", "v1")


def test_a_stopped_sweep_resumes_in_the_next_run_without_counting_twice(gc: GcRegistry) -> None:
    digests = [gc.push_blob("library/stop", _layer_bytes(bytes([65 + i]))) for i in range(6)]
    service = _gc_service()
    service.sweep_batch = 2
    batches: list[int] = []
    stopped = threading.Event()

    def pause(name: str, job_id: int) -> None:
        if name == "claimed":
            batches.append(job_id)
            if len(batches) == 2:  # the second batch is claimed: stop the job right there
                response = gc.clone().put(f"{API}/system/gc/{job_id}")
                assert response.status_code == 200, response.get_data()
                stopped.set()

    service.pause = pause
    first = gc.wait_gc(gc.start_gc(delete_untagged=False, workers=1))
    assert first["job_status"] == "Stopped" and stopped.is_set()
    states = [_state(gc, d) for d in digests]
    assert states.count("deleted") == 2 and states.count("deleting") == 2 and states.count("delete") == 2
    for d in digests:
        if _state(gc, d) == "deleting":
            assert gc.head(f"/v2/library/stop/blobs/{d}").status_code == 404
    service.pause = lambda name, job_id: None

    second = gc.run_gc(delete_untagged=False, workers=3)

    assert second["result"]["purged_blobs"] == 4  # the 2 claimed and the 2 waiting, not the 2 done
    assert all(_state(gc, d) == "deleted" for d in digests)
    assert not any(_read(gc, _key(d)) for d in digests)
    assert gc.run_gc(delete_untagged=False)["result"]["purged_blobs"] == 0


def test_only_one_gc_runs_at_a_time_and_a_failure_is_recorded(gc: GcRegistry) -> None:
    reached, release = _hold("mark")
    job_id = gc.start_gc()
    assert reached.wait(60)
    second = gc.post(f"{API}/system/gc/schedule", json={"schedule": {"type": "Manual"}, "parameters": {}})
    assert second.status_code == 409, second.get_data()
    release.set()
    assert gc.wait_gc(job_id)["job_status"] == "Success"

    def explode(name: str, job_id: int) -> None:
        if name == "mark":
            raise RuntimeError("disk on fire")

    _gc_service().pause = explode
    failed = gc.wait_gc(gc.start_gc())
    assert failed["job_status"] == "Error"
    assert "disk on fire" in gc.gc_log(failed["id"])
    _gc_service().pause = lambda name, job_id: None
    assert gc.run_gc()["job_status"] == "Success"  # the lock was released


def test_a_job_whose_execution_vanished_is_marked_error_not_left_running(gc: GcRegistry) -> None:
    from chalicelib.core.jobs import Job, JobStatus
    from chalicelib.stores.jobs import JobStore

    store = JobStore()
    now = int(time.time())
    store.create(Job(job_id=999, vendor_type="GARBAGE_COLLECTION", trigger="Manual", status=JobStatus.RUNNING,
                     parameters={}, created_at=now, updated_at=now))  # fmt: skip
    store.set_fields(999, execution_arn="arn:aws:states:us-east-1:123456789012:execution:registry-gc:gone")
    store.lock("GARBAGE_COLLECTION", 999, None)

    from chalicelib.local.scheduler import Scheduler
    from chalicelib.wiring import services

    scheduler = Scheduler(lambda: services().jobs, interval=3600)
    scheduler.start()  # what `make serve` does at start: reconcile what the last process left active
    scheduler.stop()

    recovered = store.get(999)
    assert recovered is not None and recovered.status == JobStatus.ERROR
    assert gc.gc_job(999)["job_status"] == "Error"
    assert "interrupted by a restart" in gc.gc_log(999)
    assert gc.run_gc()["job_status"] == "Success"  # its lock did not outlive it


def test_workers_sweep_shards_in_parallel(gc: GcRegistry) -> None:
    digests = [gc.push_blob("library/many", _layer_bytes(bytes([97 + i]))) for i in range(12)]
    gc.push_image("library/many", "kept", layers=2)

    job = gc.run_gc(workers=4)

    assert job["result"]["purged_blobs"] == 12
    assert json.loads(job["job_parameters"])["workers"] == 4
    assert not any(_read(gc, _key(d)) for d in digests)
    assert pulls(gc, "library/many", "kept")


def test_live_upload_sessions_keep_their_chunks_and_orphans_go(gc: GcRegistry) -> None:
    streamed = gc.start_upload("library/live").headers["Location"]
    first = b"c" * 1000
    assert gc.patch_chunk(streamed, first).status_code == 202  # no Content-Range: to its content address
    staged = gc.start_upload("library/live").headers["Location"]
    assert gc.patch_chunk(staged, b"e" * 1000, 0).status_code == 202  # staged under uploads/<id>/
    staged_keys = set(gc.object_keys("uploads/"))
    assert staged_keys
    gc.push_blob_chunked("library/live", b"d" * 2000, 1000, content_range=False)  # leaves an orphan
    gc.s3.put_object(Bucket=gc.bucket, Key="uploads/gone-session/chunk-1", Body=b"abandoned")

    job = gc.run_gc()

    assert _read(gc, _key(digest_of(first))) == first
    assert set(gc.object_keys("uploads/")) == staged_keys
    assert _read(gc, _key(digest_of(b"d" * 1000))) is None
    assert job["result"]["orphan_objects"] == 2
    assert gc.finish_upload(streamed, digest_of(first)).status_code == 201  # the session still completes
    assert gc.patch_chunk(staged, b"e" * 500, 1000).status_code == 202
