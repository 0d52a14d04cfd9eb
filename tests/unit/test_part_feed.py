"""The part a relay request writes while its bytes arrive (`services/uploads._PartFeed`): the writer
thread gets the blocks in order; a writer that fails is reported to the request instead of leaving
it waiting on a full queue; an aborted part ends its write without a part."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.services.uploads import _FeedAborted, _PartFeed


class Store:
    """`upload_part_stream` only: keeps what it was given, or fails after `fail_after` blocks."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.received: list[bytes] = []
        self.started = threading.Event()

    def upload_part_stream(self, key: str, upload_id: str, number: int, blocks: Iterable[bytes]) -> str:
        self.started.set()
        for index, block in enumerate(blocks):
            if index == self.fail_after:
                raise OSError(28, "No space left on device")
            self.received.append(block)
        return f"etag-{number}-{len(self.received)}"


@pytest.fixture
def writer() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


def _feed(writer: ThreadPoolExecutor, store: Any, max_blocks: int = 2) -> _PartFeed:
    return _PartFeed(writer, store, "uploads/u/data", "mp", 3, max_blocks=max_blocks)


def test_blocks_reach_the_writer_in_order(writer: ThreadPoolExecutor) -> None:
    store = Store()
    feed = _feed(writer, store)
    blocks = [bytes([i]) * 10 for i in range(20)]  # many more than the queue holds
    for block in blocks:
        feed.put(block)
    assert feed.close().result(timeout=10) == "etag-3-20"
    assert store.received == blocks


def test_a_failed_writer_is_reported_to_the_request(writer: ThreadPoolExecutor) -> None:
    store = Store(fail_after=0)
    feed = _feed(writer, store)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(50):  # the queue fills once the writer is gone: `put` must not wait forever
            feed.put(b"x" * 10)
    with pytest.raises(OSError):
        feed.close().result(timeout=10)


def test_an_aborted_part_ends_its_write_without_a_part(writer: ThreadPoolExecutor) -> None:
    store = Store()
    feed = _feed(writer, store)
    feed.put(b"first")
    feed.abort()
    assert store.started.is_set()
    assert store.received == [b"first"]
    with pytest.raises(_FeedAborted):
        feed._write.result(timeout=10)
