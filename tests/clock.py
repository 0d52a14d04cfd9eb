"""A clock tests move instead of sleeping (see `chalicelib/core/clock.py`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class MovableClock:
    """Real time plus an offset: `advance(seconds)` jumps ahead, and time still flows.

    Flowing time keeps code that waits on real threads (job executions, the event worker) working;
    the offset gives a test the later second, expired token or passed schedule slot it needs at once.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = self._start = 0.0 if start is None else start - time.time()
        self._moved = False
        self._frozen_at: float | None = None

    def __call__(self) -> float:
        frozen = self._frozen_at
        return time.time() + self._offset if frozen is None else frozen

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Time stands still inside (in-process caches cannot expire between two requests a test
        compares, however slow the machine); afterwards it flows on from real time."""
        self._frozen_at = self()
        try:
            yield
        finally:
            self._frozen_at = None

    @property
    def moved(self) -> bool:
        """Whether `advance` was called since the start or the last `rewind`."""
        return self._moved

    def advance(self, seconds: float) -> None:
        """Jump ahead (a negative step goes back: a test of something stamped by a clock that ran fast)."""
        with self._lock:
            self._offset += seconds
            self._moved = True

    def rewind(self) -> None:
        """Back to where it started, for the next test. Whoever read the moved clock must be rebuilt."""
        with self._lock:
            self._offset = self._start
            self._moved = False
