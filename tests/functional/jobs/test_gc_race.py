"""The race GC must win: pushes that reuse old layers while a GC run marks and sweeps those layers.

Each interleaving: old layers become garbage (their manifests deleted, and with a window their rows
are backdated past it); a GC run starts and is held at one phase (begin, delete_untagged, mark,
the sweep before a batch, the sweep after a claim, finish) while three clients push images that
reuse those layers the way docker does (HEAD each blob, upload what is missing, PUT the manifest,
start again if the registry says a blob is unknown). Then the run is released and finishes.
Afterwards every image a client was told was pushed (201) must pull completely and byte-exact,
also after one more GC run.

Rounds: every (window, phase) pair runs on every `make test`; `GC_RACE_SEEDS` (a test-only knob,
default 1) runs each pair with that many seeds (different jitter, sweep batch, worker count and
layer choices): set it higher to hunt.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest

from tests.functional.helpers import OCI_CONFIG, OCI_LAYER, canonical, descriptor, digest_of, image_manifest
from tests.functional.jobs.conftest import GcRegistry
from tests.functional.jobs.test_gc import pulls

PHASES = ("begin", "delete_untagged", "mark", "sweep", "claimed", "finish")
SEEDS = int(os.environ.get("GC_RACE_SEEDS", "1"))
WINDOWS_HOURS = (0, 1)


def _push(client: Any, repo: str, blobs: list[bytes]) -> bool:
    """HEAD, upload what is missing; False if the registry refused (the caller starts again)."""
    for data in blobs:
        digest = digest_of(data)
        if client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
            continue
        response = client.post(f"/v2/{repo}/blobs/uploads/", query_string={"digest": digest}, data=data,
                               headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        if response.status_code != 201:
            assert response.status_code == 404, response.get_data()[:300]
            return False
    return True


def _push_image(client: Any, repo: str, tag: str, layers: list[bytes], stats: dict[str, int]) -> bytes | None:
    config = canonical({"os": "linux", "tag": tag, "nonce": random.random()})
    manifest = canonical(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, la) for la in layers]))
    for _attempt in range(8):
        if not _push(client, repo, [config, *layers]):
            stats["retries"] += 1
            continue
        response = client.put(f"/v2/{repo}/manifests/{tag}", data=manifest,
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
        if response.status_code == 201:
            return manifest
        assert response.status_code == 400, response.get_data()[:300]
        assert response.get_json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        stats["retries"] += 1
    return None


def _backdate(gc: GcRegistry, digests: list[str], seconds: int) -> None:
    old = str(int(time.time()) - seconds)
    for digest in digests:
        blob = {"pk": {"S": f"BLOB#{digest}"}, "sk": {"S": "BLOB"}}
        gc.dynamodb.update_item(TableName=gc.table, Key=blob, UpdateExpression="SET updated_at = :t",
                                ExpressionAttributeValues={":t": {"N": old}})  # fmt: skip
        key = {"pk": {"S": "PROJECT#library"}, "sk": {"S": f"BLOB#{digest}"}}
        if "Item" in gc.dynamodb.get_item(TableName=gc.table, Key=key):
            gc.dynamodb.update_item(TableName=gc.table, Key=key, UpdateExpression="SET created_at = :t",
                                    ExpressionAttributeValues={":t": {"N": old}})  # fmt: skip


def _interleaving(gc: GcRegistry, name: str, phase: str, window_hours: int, seed: int, stats: dict[str, int]) -> None:
    from chalicelib.wiring import services

    rng = random.Random(f"{name}-{seed}")
    repo = f"library/race-{name}"
    old_layers = [f"{name}-layer-{i}-".encode() * 50 for i in range(4)]
    for tag, layers in (("old1", old_layers[:2]), ("old2", old_layers[2:])):
        manifest = _push_image(gc, repo, tag, layers, stats)
        assert manifest is not None
        assert gc.delete(f"/v2/{repo}/manifests/{digest_of(manifest)}").status_code == 202
    if window_hours:
        _backdate(gc, [digest_of(la) for la in old_layers], window_hours * 7200)

    reached, release = threading.Event(), threading.Event()
    jitter = rng.random() / 50

    def pause(current: str, job_id: int) -> None:
        if current == phase and not reached.is_set():
            reached.set()
            assert release.wait(60)
        else:
            time.sleep(jitter)

    service = services().gc
    service.pause = pause
    service.sweep_batch = rng.choice((1, 2, 100))
    job_id = gc.start_gc(workers=rng.randint(1, 3), delete_untagged=rng.random() < 0.5)
    deadline = time.monotonic() + 60
    while not reached.is_set() and gc.gc_job(job_id)["job_status"] not in ("Success", "Error", "Stopped"):
        assert time.monotonic() < deadline
        time.sleep(0.005)

    pushed: list[tuple[str, bytes]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def pusher(index: int) -> None:
        client = gc.clone()
        local = random.Random(f"{name}-{seed}-{index}")
        try:
            for n in range(2):
                layers = local.sample(old_layers, local.randint(1, 3))
                tag = f"p{index}-{n}"
                manifest = _push_image(client, repo, tag, layers, stats)
                if manifest is not None:
                    with lock:
                        pushed.append((tag, manifest))
        except BaseException as exc:
            failures.append(exc)
            raise

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(rng.random() / 20)
    release.set()
    for thread in threads:
        thread.join(120)
    job = gc.wait_gc(job_id)
    service.pause = lambda current, job_id: None
    assert not failures, failures
    assert job["job_status"] == "Success", gc.gc_log(job_id)
    assert pushed, "no push succeeded"
    for tag, manifest in pushed:
        assert gc.get(f"/v2/{repo}/manifests/{tag}").get_data() == manifest
        assert pulls(gc, repo, tag), (name, tag)
    gc.run_gc()
    for tag, _manifest in pushed:
        assert pulls(gc, repo, tag), (name, tag, "after a second run")
    stats["interleavings"] += 1
    stats["images"] += len(pushed)


@pytest.mark.slow
def test_pushes_reusing_layers_while_gc_marks_and_sweeps_them_all_pull(gc: GcRegistry) -> None:
    stats = {"interleavings": 0, "images": 0, "retries": 0}
    for window in WINDOWS_HOURS:
        gc.configure(gc_time_window_hours=window)
        for phase in PHASES:
            for seed in range(SEEDS):
                _interleaving(gc, f"w{window}-{phase}-{seed}", phase, window, seed, stats)
    print(f"\nGC race: {stats}")
    assert stats["interleavings"] == len(WINDOWS_HOURS) * len(PHASES) * SEEDS
