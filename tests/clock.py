"""A clock tests move instead of sleeping (see `chalicelib/core/clock.py`)."""

from __future__ import annotations

import threading
import time


class MovableClock:
    """Real time plus an offset that only grows: `advance(seconds)` jumps ahead, time still flows.

    Flowing time keeps code that waits on real threads (job executions, the event worker) working;
    the offset gives a test the later second, expired token or passed schedule slot it needs at once.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0 if start is None else start - time.time()

    def __call__(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds
