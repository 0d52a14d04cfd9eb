"""GC's parallel Scan reader (`stores/gc.py`) against a fake DynamoDB client: every page of every
segment once, a reader's error reaches the consumer, and a consumer that stops stops the readers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chalicelib.stores import gc


class FakeScans:
    """`scan` answers `pages` pages per segment (None: without end), 3 items each."""

    def __init__(self, pages: int | None, fail_segment: int | None = None) -> None:
        self.pages, self.fail_segment = pages, fail_segment
        self.calls = 0
        self._lock = threading.Lock()

    def scan(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        segment = request["Segment"]
        page = int(request.get("ExclusiveStartKey", {}).get("page", 0))
        if segment == self.fail_segment and page == 1:
            raise RuntimeError(f"segment {segment} broke")
        items = [{"segment": segment, "page": page, "n": n} for n in range(3)]
        if self.pages is not None and page + 1 >= self.pages:
            return {"Items": items}
        return {"Items": items, "LastEvaluatedKey": {"page": page + 1}}


def _requests(segments: int) -> list[dict[str, Any]]:
    return [{"TableName": "t", "Segment": n, "TotalSegments": segments} for n in range(segments)]


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gc-scan-")]


def test_every_item_of_every_segment_once() -> None:
    fake = FakeScans(pages=40)
    items = list(gc._parallel_pages(fake, _requests(5)))
    seen = [(i["segment"], i["page"], i["n"]) for i in items]
    assert len(seen) == 5 * 40 * 3
    assert set(seen) == {(s, p, n) for s in range(5) for p in range(40) for n in range(3)}
    assert fake.calls == 5 * 40
    assert not _readers()


def test_a_readers_error_is_raised_to_the_consumer_and_the_others_stop() -> None:
    fake = FakeScans(pages=None, fail_segment=2)
    with pytest.raises(RuntimeError, match="segment 2 broke"):
        for _ in gc._parallel_pages(fake, _requests(4)):
            pass
    assert not _readers()
    calls = fake.calls
    time.sleep(0.3)
    assert fake.calls == calls  # nothing goes on scanning


def test_a_consumer_that_stops_stops_the_readers() -> None:
    fake = FakeScans(pages=None)  # endless: only the consumer can end it
    pages = gc._parallel_pages(fake, _requests(3))
    first = [next(pages) for _ in range(10)]
    assert len(first) == 10
    pages.close()
    assert not _readers()
    calls = fake.calls
    time.sleep(0.3)
    assert fake.calls == calls
    assert calls <= 3 * (gc._SCAN_QUEUE + 2)  # the queue bounds how far the readers ran ahead
