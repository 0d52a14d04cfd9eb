"""PullCounter: at most one write per repository per window, and nothing lost while pulls go on."""

from __future__ import annotations

import pytest

from chalicelib.services.repositories import PullCounter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    writes: list[tuple[str, int, int]] = []
    clock = Clock()
    return PullCounter(lambda r, n, t: writes.append((r, n, t)), 60, clock), writes, clock


def test_first_pull_is_written_and_a_burst_is_coalesced(setup):
    counter, writes, clock = setup
    for second in range(5):
        counter.add("p/a", 100 + second)
    assert writes == [("p/a", 1, 100)]
    clock.now += 59
    counter.add("p/a", 200)
    assert writes == [("p/a", 1, 100)]
    clock.now += 1
    counter.add("p/a", 201)
    assert writes == [("p/a", 1, 100), ("p/a", 6, 201)]


def test_a_pull_elsewhere_writes_what_waited_a_window(setup):
    counter, writes, clock = setup
    counter.add("p/a", 1)
    counter.add("p/a", 2)
    clock.now += 61
    counter.add("p/b", 3)
    assert sorted(writes) == [("p/a", 1, 1), ("p/a", 1, 2), ("p/b", 1, 3)]


def test_flush_all_and_failed_writes_keep_counts():
    writes: list[tuple[str, int, int]] = []
    failing = {"on": True}

    def write(repository: str, count: int, last: int) -> None:
        if failing["on"]:
            raise RuntimeError("throttled")
        writes.append((repository, count, last))

    counter = PullCounter(write, 60, Clock())
    with pytest.raises(RuntimeError):
        counter.add("p/a", 5)
    failing["on"] = False
    counter.add("p/a", 6)  # within the window: held with the failed one
    counter.flush_all()
    assert writes == [("p/a", 2, 6)]
    counter.flush_all()
    assert writes == [("p/a", 2, 6)]


def test_zero_window_writes_every_pull():
    writes: list[tuple[str, int, int]] = []
    counter = PullCounter(lambda r, n, t: writes.append((r, n, t)), 0, Clock())
    counter.add("p/a", 1)
    counter.add("p/a", 2)
    assert writes == [("p/a", 1, 1), ("p/a", 1, 2)]
