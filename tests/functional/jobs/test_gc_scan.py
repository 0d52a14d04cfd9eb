"""GC's mark reads the table with a parallel Scan (Segment/TotalSegments, a thread per segment):
every row once whatever the segment count, the same run result, and a failed segment fails the run
before anything is marked."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from tests.functional.jobs.conftest import GcRegistry
from tests.functional.jobs.test_gc import _garbage_repository, _gc_service, pulls

PARTITIONS = ("BLOB#", "PROJECT#", "REPO#", "UPLOAD#")


def _store() -> Any:
    from chalicelib.config import get_settings
    from chalicelib.stores.gc import GcStore
    from chalicelib.wiring import object_store

    return GcStore(object_store(get_settings()))


def _rows(segments: int, prefixes: tuple[str, ...] = ()) -> Counter[tuple[str, str]]:
    return Counter((i["pk"]["S"], i["sk"]["S"]) for i in _store().scan(segments, prefixes))


def _blob_states(gc: GcRegistry) -> dict[str, str]:
    pages = gc.dynamodb.get_paginator("scan").paginate(TableName=gc.table, ConsistentRead=True)
    return {i["pk"]["S"]: i.get("state", {}).get("S", "none") for p in pages for i in p["Items"]
            if i["pk"]["S"].startswith("BLOB#") and i["sk"]["S"] == "BLOB"}  # fmt: skip


def test_every_row_is_read_once_whatever_the_segment_count(gc: GcRegistry) -> None:
    _garbage_repository(gc)
    assert gc.post("/api/v2.0/projects", json={"project_name": "other"}).status_code == 201
    gc.push_image("other/app", "v1", layers=3)
    gc.start_upload("other/app")
    from chalicelib.wiring import services

    assert services().events.drain()  # the audit rows of those requests are written before the table is read

    whole = _rows(1)
    assert whole and max(whole.values()) == 1
    for segments in (2, 7, 16):
        assert _rows(segments) == whole, segments
    wanted = Counter({k: n for k, n in whole.items() if k[0].startswith(PARTITIONS)})
    assert wanted and len(wanted) < len(whole)  # the job's own rows and the users are filtered out
    assert _rows(5, PARTITIONS) == wanted
    assert _rows(1, ("REPO#",)) == Counter({k: n for k, n in whole.items() if k[0].startswith("REPO#")})


def test_runs_with_one_or_many_segments_find_the_same_garbage(gc: GcRegistry) -> None:
    digests = _garbage_repository(gc)
    service = _gc_service()
    results = []
    for segments in (1, 11):
        service.scan_segments = segments
        dry = gc.run_gc(dry_run=True, delete_untagged=True)
        assert f"({segments} scan segments)" in gc.gc_log(dry["id"])
        results.append({k: dry["result"][k] for k in ("freed_space", "purged_blobs", "purged_manifests")})
    assert results[0] == results[1] and results[0]["purged_blobs"] > 0

    real = gc.run_gc(delete_untagged=True)  # default segments

    assert {k: real["result"][k] for k in results[0]} == results[0]
    assert pulls(gc, "library/app", "v1")
    assert pulls(gc, "library/app", digests["child"])


def test_a_failing_segment_fails_the_run_before_anything_is_marked(
    gc: GcRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.stores import gc as gc_store

    doomed, _ = gc.push_image("library/gone", "v1", layers=2)
    assert gc.delete(f"/v2/library/gone/manifests/{doomed}").status_code == 202
    before = _blob_states(gc)
    pages = gc_store._pages

    def broken(client: Any, request: dict[str, Any]) -> Any:
        if request.get("Segment") == 2:
            raise RuntimeError("segment 2 throttled for good")
        return pages(client, request)

    monkeypatch.setattr(gc_store, "_pages", broken)
    _gc_service().scan_segments = 4
    failed = gc.wait_gc(gc.start_gc(delete_untagged=False))

    assert failed["job_status"] == "Error"
    assert "segment 2 throttled for good" in gc.gc_log(failed["id"])
    assert _blob_states(gc) == before  # nothing marked from a partial view
    assert not [t for t in threading.enumerate() if t.name.startswith("gc-scan-")]
    monkeypatch.setattr(gc_store, "_pages", pages)

    again = gc.run_gc(delete_untagged=False)

    assert again["result"]["purged_blobs"] == 3
    assert list(_blob_states(gc).values()).count("deleted") == 3
