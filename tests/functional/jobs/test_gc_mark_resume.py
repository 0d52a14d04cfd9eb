"""A mark that runs out of its time budget returns `more` and the state machine calls it again:
the next call reads the table again, takes what this run already marked without writing it
again, marks the rest, and nothing is counted twice; a client that used a marked blob between
two calls still wins. A mark that dies midway fails the run, and the next run collects the rest."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from tests.clock import MovableClock
from tests.functional.jobs.conftest import API, GcRegistry
from tests.functional.jobs.test_gc import _gc_service, _layer_bytes, _state, pulls


def _garbage(gc: GcRegistry, n: int) -> list[str]:
    """`n` pushed blobs no manifest references (garbage once their association is released)."""
    return sorted(gc.push_blob("library/loose", _layer_bytes(bytes([65 + i]))) for i in range(n))


def _one_chunk_per_call(gc: GcRegistry, n: int) -> tuple[list[str], Any]:
    """`n` garbage blobs, and the GC service with no time budget: each Mark call marks one chunk."""
    service = _gc_service()
    service.mark_budget = 0
    return _garbage(gc, n), service


@pytest.fixture
def marks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Small mark chunks, and a count of the conditional marks written per digest."""
    from chalicelib.services import gc as gc_service
    from chalicelib.stores.gc import GcStore

    monkeypatch.setattr(gc_service, "_MARK_CHUNK", 2)
    written: Counter[str] = Counter()
    original = GcStore.mark

    def counted(digest: str, state: str, version: int, cutoff: int) -> int | None:
        written[digest] += 1
        return original(digest, state, version, cutoff)

    monkeypatch.setattr(GcStore, "mark", staticmethod(counted))
    return written


def test_a_mark_over_its_budget_resumes_and_counts_nothing_twice(gc: GcRegistry, marks: Counter[str]) -> None:
    digests, service = _one_chunk_per_call(gc, 7)  # 2 blobs per call
    gc.push_image("library/kept", "v1", layers=2)
    calls: list[int] = []
    service.pause = lambda phase, job_id: calls.append(job_id) if phase == "mark" else None

    job = gc.run_gc(delete_untagged=False)

    assert len(calls) == 4  # 2 + 2 + 2 + 1
    assert gc.gc_log(job["id"]).count("marking goes on in the next invocation") == 3
    assert marks == Counter(digests)  # a resumed call writes no mark again
    assert job["result"]["purged_blobs"] == 7 and job["result"]["candidates"] == 7
    assert all(_state(gc, d) == "deleted" for d in digests)
    assert pulls(gc, "library/kept", "v1")
    assert gc.run_gc(delete_untagged=False)["result"]["purged_blobs"] == 0


def test_a_blob_used_between_two_mark_calls_is_kept(gc: GcRegistry, marks: Counter[str], clock: MovableClock) -> None:
    digests, service = _one_chunk_per_call(gc, 5)
    calls: list[str] = []

    def pause(phase: str, job_id: int) -> None:
        if phase != "mark":
            return
        calls.append(phase)
        if len(calls) == 2:  # the first call marked the two first digests
            assert _state(gc, digests[0]) == "delete"
            clock.advance(1)  # the touch lands after the run's cutoff second (window 0: its start)
            assert gc.clone().head(f"/v2/library/loose/blobs/{digests[0]}").status_code == 200

    service.pause = pause
    job = gc.run_gc(delete_untagged=False)

    assert job["result"]["purged_blobs"] == 4
    assert _state(gc, digests[0]) == "none"
    assert gc.head(f"/v2/library/loose/blobs/{digests[0]}").status_code == 200
    assert all(_state(gc, d) == "deleted" for d in digests[1:])
    assert marks[digests[0]] == 1  # touched since: not a candidate of the later calls
    assert f"kept blob {digests[0]}" in gc.gc_log(job["id"])


def test_a_mark_that_dies_midway_fails_the_run_and_the_next_run_collects_all(
    gc: GcRegistry, marks: Counter[str]
) -> None:
    digests = _garbage(gc, 5)
    died = threading.Event()

    def pause(phase: str, job_id: int) -> None:
        if phase == "marked" and not died.is_set():
            died.set()
            raise RuntimeError("the Lambda was killed")

    _gc_service().pause = pause
    failed = gc.wait_gc(gc.start_gc(delete_untagged=False))
    assert failed["job_status"] == "Error" and "the Lambda was killed" in gc.gc_log(failed["id"])
    assert sorted(_state(gc, d) for d in digests) == ["delete", "delete", "none", "none", "none"]

    job = gc.run_gc(delete_untagged=False)

    assert job["result"]["purged_blobs"] == 5
    assert all(_state(gc, d) == "deleted" for d in digests)
    history = gc.get(f"{API}/system/gc").get_json()
    assert [h["job_status"] for h in history][:2] == ["Success", "Error"]
    assert gc.run_gc(delete_untagged=False)["result"]["purged_blobs"] == 0


def test_a_dry_run_ignores_the_budget_and_marks_nothing(gc: GcRegistry, marks: Counter[str]) -> None:
    digests, service = _one_chunk_per_call(gc, 5)
    calls: list[Any] = []
    service.pause = lambda phase, job_id: calls.append(phase) if phase == "mark" else None

    job = gc.run_gc(dry_run=True, delete_untagged=False)

    assert len(calls) == 1 and not marks
    assert job["result"]["purged_blobs"] == 5
    assert all(_state(gc, d) == "none" for d in digests)


def test_blobs_a_stopped_sweep_left_deleting_are_taken_over_once(gc: GcRegistry, marks: Counter[str]) -> None:
    digests = _garbage(gc, 6)
    service = _gc_service()
    service.sweep_batch = 2
    claimed: list[int] = []

    def stop_at_second_claim(phase: str, job_id: int) -> None:
        if phase == "claimed":
            claimed.append(job_id)
            if len(claimed) == 2:
                assert gc.clone().put(f"{API}/system/gc/{job_id}").status_code == 200

    service.pause = stop_at_second_claim
    assert gc.wait_gc(gc.start_gc(delete_untagged=False))["job_status"] == "Stopped"
    states = Counter(_state(gc, d) for d in digests)
    assert states == Counter({"deleted": 2, "deleting": 2, "delete": 2})
    service.pause = lambda phase, job_id: None
    service.mark_budget = 0
    marks.clear()

    job = gc.run_gc(delete_untagged=False)

    assert job["result"]["purged_blobs"] == 4
    assert sorted(marks.values()) == [1, 1, 1, 1]  # the 2 left `deleting` and the 2 left `delete`
    assert all(_state(gc, d) == "deleted" for d in digests)
