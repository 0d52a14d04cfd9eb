"""A project never stops counting a blob a stored manifest references, whatever races it.

GC collects blobs no project counts, so uncounting a referenced blob loses data at the next run.
Each test pins one interleaving of a push against a release (a failed push giving back what it
charged, a manifest delete) with a hook, then checks the project still counts the blob, its usage
matches its rows, and the image pulls after a GC run with a zero window.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.functional.helpers import OCI_CONFIG, OCI_LAYER, canonical, descriptor, digest_of, image_manifest
from tests.functional.jobs.conftest import GcRegistry
from tests.functional.jobs.test_gc import _usage, pulls

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _counted(gc: GcRegistry, digest: str) -> dict[str, Any] | None:
    key = {"pk": {"S": "PROJECT#library"}, "sk": {"S": f"BLOB#{digest}"}}
    item: dict[str, Any] | None = gc.dynamodb.get_item(TableName=gc.table, Key=key, ConsistentRead=True).get("Item")
    return item


def _image(gc: GcRegistry, repo: str, layers: list[bytes], name: str) -> bytes:
    """Upload a fresh config and the layers; the manifest body (not pushed)."""
    config = canonical({"os": "linux", "name": name})
    for blob in (config, *layers):
        gc.push_blob(repo, blob)
    return canonical(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, la) for la in layers]))


def _uncount(gc: GcRegistry, repo: str, layer: bytes) -> None:
    """Leave an uploaded layer linked but no longer counted: push a manifest using it (its only
    reference), then delete that manifest."""
    digest = gc.push_manifest(repo, "first", _image(gc, repo, [layer], "first"), MANIFEST)
    assert gc.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    assert _counted(gc, digest_of(layer)) is None


def test_a_failed_push_does_not_uncount_a_blob_a_concurrent_push_relied_on(
    gc: GcRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A charges the shared layer, B sees it counted and stores its manifest without charging it,
    then A fails (one of its blobs is being collected) and gives back what it charged."""
    from chalicelib.stores.blobs import BlobMetaStore

    repo = "library/release-rollback"
    shared, doomed = b"shared-layer-" * 40, b"doomed-layer-" * 40
    body_a = _image(gc, repo, [shared, doomed], "a")
    body_b = _image(gc, repo, [shared], "b")
    _uncount(gc, repo, shared)
    a_charged, b_stored = threading.Event(), threading.Event()
    original = BlobMetaStore.protect

    def protect(self: BlobMetaStore, digests: list[str]) -> list[str]:
        if digest_of(doomed) in digests:  # A, after its charge: wait for B, then fail
            a_charged.set()
            assert b_stored.wait(30)
            return [digest_of(doomed)]
        return original(self, digests)

    monkeypatch.setattr(BlobMetaStore, "protect", protect)
    results: list[int] = []
    client_a = gc.clone()
    push_a = threading.Thread(target=lambda: results.append(client_a.put_manifest(repo, "a", body_a).status_code))
    push_a.start()
    assert a_charged.wait(30)
    gc.push_manifest(repo, "b", body_b, MANIFEST)
    b_stored.set()
    push_a.join(30)
    assert results == [400]

    assert _counted(gc, digest_of(shared)) is not None
    used, held = _usage(gc)
    assert used == held
    gc.run_gc(delete_untagged=False)
    assert pulls(gc, repo, "b")


def test_a_push_that_reads_a_release_in_progress_stops_it(gc: GcRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest delete flags the last reference's blob for release and finds no reference; before
    it deletes the row, a push references the blob, sees the flag and keeps the row."""
    from chalicelib.stores.projects import ProjectStore

    repo = "library/release-keep"
    layer = b"kept-layer-" * 40
    body_old = _image(gc, repo, [layer], "old")
    body_new = _image(gc, repo, [layer], "new")
    old = gc.push_manifest(repo, "old", body_old, MANIFEST)
    original = ProjectStore.referenced
    pushed: list[int] = []

    def referenced(self: ProjectStore, project: str, digest: str) -> bool:
        found = original(self, project, digest)
        row = _counted(gc, digest)
        if digest == digest_of(layer) and row is not None and "releasing" in row and not pushed:
            client = gc.clone()
            push = threading.Thread(
                target=lambda: pushed.append(client.put_manifest(repo, "new", body_new).status_code)
            )
            push.start()
            push.join(30)
        return found

    monkeypatch.setattr(ProjectStore, "referenced", referenced)
    assert gc.delete(f"/v2/{repo}/manifests/{old}").status_code == 202
    assert pushed == [201]

    row = _counted(gc, digest_of(layer))
    assert row is not None and "releasing" not in row
    used, held = _usage(gc)
    assert used == held
    gc.run_gc(delete_untagged=False)
    assert pulls(gc, repo, "new")


def test_a_release_backs_off_when_the_blob_is_still_referenced(gc: GcRegistry) -> None:
    """Deleting one of two manifests that share a layer keeps the layer counted, unflagged."""
    repo = "library/release-shared"
    layer = b"two-owners-" * 40
    first = gc.push_manifest(repo, "one", _image(gc, repo, [layer], "one"), MANIFEST)
    gc.push_manifest(repo, "two", _image(gc, repo, [layer], "two"), MANIFEST)
    assert gc.delete(f"/v2/{repo}/manifests/{first}").status_code == 202
    row = _counted(gc, digest_of(layer))
    assert row is not None and "releasing" not in row
    gc.run_gc(delete_untagged=False)
    assert pulls(gc, repo, "two")


def test_a_blob_a_push_counted_while_the_scan_read_is_not_collected(
    gc: GcRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero window, and a Scan that is no snapshot: it read the project's rows before a push
    counted the shared layer, and the layer's row after that push touched it in the second the run
    started. The mark's condition then holds (the version it read includes the touch), so the mark
    itself must notice the project counts the blob now."""
    from chalicelib.stores import keys
    from chalicelib.stores.gc import GcStore
    from chalicelib.wiring import services

    repo = "library/release-scan"
    shared = b"half-seen-layer-" * 40
    body = _image(gc, repo, [shared], "b")
    _uncount(gc, repo, shared)
    blob_key = {"pk": {"S": f"BLOB#{digest_of(shared)}"}, "sk": {"S": "BLOB"}}
    original = GcStore.scan
    seen: dict[str, int] = {}
    pushed: list[int] = []

    def scan(self: GcStore, *args: Any, **kwargs: Any) -> Any:
        rows = list(original(self, *args, **kwargs))  # what the Scan read of the project's rows
        if not pushed:
            client = gc.clone()
            push = threading.Thread(target=lambda: pushed.append(client.put_manifest(repo, "b", body).status_code))
            push.start()
            push.join(30)
            job = {"pk": {"S": keys.job_pk(seen["job"])}, "sk": {"S": keys.JOB_SK}}
            started = gc.dynamodb.get_item(TableName=gc.table, Key=job)["Item"]["started_at"]["N"]
            gc.dynamodb.update_item(TableName=gc.table, Key=blob_key, UpdateExpression="SET updated_at = :t",
                                    ExpressionAttributeValues={":t": {"N": started}})  # fmt: skip
            fresh = gc.dynamodb.get_item(TableName=gc.table, Key=blob_key, ConsistentRead=True)["Item"]
            rows = [fresh if r["pk"] == blob_key["pk"] and r["sk"] == blob_key["sk"] else r for r in rows]
        return iter(rows)

    def pause(phase: str, job_id: int) -> None:
        seen["job"] = job_id

    monkeypatch.setattr(GcStore, "scan", scan)
    monkeypatch.setattr(services().gc, "pause", pause)
    job = gc.run_gc(delete_untagged=False)
    assert pushed == [201]

    assert pulls(gc, repo, "b")
    assert _counted(gc, digest_of(shared)) is not None
    assert "a push counted it as the run started" in gc.gc_log(job["id"])
