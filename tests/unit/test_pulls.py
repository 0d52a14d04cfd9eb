"""The pull coalescer: at most one flush per window whatever the number of pulls, the latest times,
exact counts, and counts a failed write could not store kept for the next flush."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.events import Event, EventType
from chalicelib.services.pulls import PullCoalescer


class FakeArtifacts:
    def __init__(self) -> None:
        self.writes: list[tuple[dict[tuple[str, str], int], dict[tuple[str, str], tuple[str, int]]]] = []

    def record_pulls(self, pulled: dict[tuple[str, str], int], tags: dict[tuple[str, str], tuple[str, int]]) -> None:
        self.writes.append((dict(pulled), dict(tags)))


class FakeRepositories:
    def __init__(self) -> None:
        self.counts: list[tuple[str, int, int]] = []
        self.failing = False

    def add_pulls(self, name: str, count: int, last_pull_time: int) -> bool:
        if self.failing:
            raise RuntimeError("throttled")
        self.counts.append((name, count, last_pull_time))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pull(repository: str, digest: str, at: float, tag: str | None = None) -> Event:
    return Event(EventType.PULL_ARTIFACT, "someone", at, project="library", repository=repository, digest=digest,
                 tag=tag)  # fmt: skip


@pytest.fixture
def setup() -> tuple[PullCoalescer, FakeArtifacts, FakeRepositories, Clock]:
    artifacts, repositories, clock = FakeArtifacts(), FakeRepositories(), Clock()
    coalescer = PullCoalescer(artifacts, repositories, 3600.0, clock)  # type: ignore[arg-type]
    return coalescer, artifacts, repositories, clock


def test_the_first_pull_after_a_quiet_window_is_written_at_once(setup: Any) -> None:
    coalescer, artifacts, repositories, _ = setup
    coalescer.observe(pull("library/a", "sha256:1", 5000.0, tag="v1"))
    assert artifacts.writes == [({("library/a", "sha256:1"): 5000}, {("library/a", "v1"): ("sha256:1", 5000)})]
    assert repositories.counts == [("library/a", 1, 5000)]


def test_pulls_within_the_window_wait_and_are_written_once_with_the_latest_time_and_the_count(setup: Any) -> None:
    coalescer, artifacts, repositories, clock = setup  # a one-hour window: the timer will not fire
    coalescer.observe(pull("library/a", "sha256:1", 5000.0))
    for second in range(1, 101):
        clock.now += 0.1
        coalescer.observe(pull("library/a", "sha256:1", 5000.0 + second))
    coalescer.observe(pull("library/b", "sha256:2", 5050.0))
    assert len(artifacts.writes) == 1 and len(repositories.counts) == 1  # only the first
    coalescer.flush()  # what the timer does when the window closes
    assert artifacts.writes[1][0] == {("library/a", "sha256:1"): 5100, ("library/b", "sha256:2"): 5050}
    assert sorted(repositories.counts[1:]) == [("library/a", 100, 5100), ("library/b", 1, 5050)]
    coalescer.flush()
    assert len(artifacts.writes) == 2 and len(repositories.counts) == 3  # nothing pending, nothing written


def test_the_timer_flushes_when_the_window_closes() -> None:
    artifacts, repositories = FakeArtifacts(), FakeRepositories()
    coalescer = PullCoalescer(artifacts, repositories, 0.05)  # type: ignore[arg-type]
    coalescer.observe(pull("library/a", "sha256:1", 1.0))
    coalescer.observe(pull("library/a", "sha256:1", 2.0))  # within the window: waits for the timer
    timer: Any = coalescer._timer
    assert timer is not None
    timer.join(5)
    assert artifacts.writes[-1][0] == {("library/a", "sha256:1"): 2}
    assert repositories.counts == [("library/a", 1, 1), ("library/a", 1, 2)]


def test_a_pull_after_the_window_writes_what_waited_even_without_the_timer(setup: Any) -> None:
    coalescer, _, repositories, clock = setup
    coalescer.observe(pull("library/a", "sha256:1", 1.0))
    coalescer.observe(pull("library/a", "sha256:1", 2.0))
    clock.now += 3601  # a frozen Lambda's timer never ran
    coalescer.observe(pull("library/b", "sha256:2", 3.0))
    assert sorted(repositories.counts) == [("library/a", 1, 1), ("library/a", 1, 2), ("library/b", 1, 3)]


def test_counts_a_failed_write_could_not_store_are_written_with_the_next_flush(setup: Any) -> None:
    coalescer, _, repositories, _ = setup
    repositories.failing = True
    coalescer.observe(pull("library/a", "sha256:1", 5.0))  # flushed at once, and the write fails
    repositories.failing = False
    coalescer.observe(pull("library/a", "sha256:1", 6.0))  # within the window: held with the failed one
    coalescer.flush()
    assert repositories.counts == [("library/a", 2, 6)]


def test_zero_window_writes_every_pull() -> None:
    artifacts, repositories = FakeArtifacts(), FakeRepositories()
    coalescer = PullCoalescer(artifacts, repositories, 0, Clock())  # type: ignore[arg-type]
    coalescer.observe(pull("library/a", "sha256:1", 1.0))
    coalescer.observe(pull("library/a", "sha256:1", 2.0))
    assert repositories.counts == [("library/a", 1, 1), ("library/a", 1, 2)]
    assert len(artifacts.writes) == 2


def test_other_events_are_ignored(setup: Any) -> None:
    coalescer, artifacts, repositories, _ = setup
    coalescer.observe(Event(EventType.PUSH_ARTIFACT, "x", 1.0, repository="library/a", digest="sha256:1"))
    assert artifacts.writes == [] and repositories.counts == []
