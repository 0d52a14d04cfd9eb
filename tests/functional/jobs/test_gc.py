"""GC end to end over HTTP: Harbor's /system/gc API, a real state machine on moto, real S3 deletes."""

from __future__ import annotations

from tests.functional.helpers import digest_of
from tests.functional.jobs.conftest import GcRegistry


def _blob_keys(gc: GcRegistry) -> set[str]:
    return set(gc.object_keys("blobs/"))


def test_gc_collects_the_blobs_of_a_deleted_manifest_and_keeps_the_rest(gc: GcRegistry) -> None:
    kept, kept_body = gc.push_image("library/keep", "v1", layers=2)
    doomed, _ = gc.push_image("library/gone", "v1", layers=2)
    assert gc.delete(f"/v2/library/gone/manifests/{doomed}").status_code == 202
    before = _blob_keys(gc)

    job = gc.run_gc(delete_untagged=False)

    result = job["result"]
    assert result["purged_blobs"] == 3  # config + 2 layers of the deleted image
    after = _blob_keys(gc)
    assert len(before - after) == 3
    # The kept image pulls completely.
    assert gc.get("/v2/library/keep/manifests/v1").get_data() == kept_body
    assert "freed_space=" in gc.gc_log(job["id"])
    second = gc.run_gc(delete_untagged=False)
    assert second["result"]["purged_blobs"] == 0
    assert second["result"]["freed_space"] == 0
    assert digest_of(kept_body) == kept
