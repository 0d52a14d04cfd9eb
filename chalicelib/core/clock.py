"""Time as a dependency: every service and store that reads the time takes a `Clock`.

A clock is a function returning seconds since the epoch, like `time.time`. Production wires
`system_clock`; tests wire a clock they move forward (`tests/clock.py`), so a test that needs a
later second, an expired token or a passed schedule slot moves the clock instead of sleeping.

Only domain time goes through the clock: timestamps written to rows, expiries, cache lifetimes,
schedule slots. Budgets that bound real work (a GC phase's seconds, an upload's checkpoint
interval, a wait for a thread) measure elapsed real time and keep using `time.monotonic`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


def system_clock() -> float:
    """The wall clock (seconds since the epoch)."""
    return time.time()
