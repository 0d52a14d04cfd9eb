"""The pull recorder coalesces: at most one write per window, whatever the number of pulls."""

from __future__ import annotations

from typing import Any

from chalicelib.events import Event, EventType
from chalicelib.services.artifacts import PullRecorder


class FakeStore:
    def __init__(self) -> None:
        self.writes: list[dict[tuple[str, str], int]] = []
        self.tags: list[dict[tuple[str, str], tuple[str, int]]] = []

    def record_pulls(self, pulled: dict[tuple[str, str], int], tags: dict[tuple[str, str], tuple[str, int]]) -> None:
        self.writes.append(dict(pulled))
        self.tags.append(dict(tags))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pull(repository: str, digest: str, at: float, tag: str | None = None) -> Event:
    return Event(EventType.PULL_ARTIFACT, "someone", at, project="library", repository=repository, digest=digest,
                 tag=tag)  # fmt: skip


def recorder(window: float = 60.0) -> tuple[PullRecorder, FakeStore, Clock]:
    store, clock = FakeStore(), Clock()
    return PullRecorder(store, window=window, clock=clock), store, clock  # type: ignore[arg-type]


def test_the_first_pull_after_a_quiet_window_is_written_at_once() -> None:
    rec, store, _ = recorder()
    rec.observe(pull("library/a", "sha256:1", 5000.0))
    assert store.writes == [{("library/a", "sha256:1"): 5000}]


def test_pulls_within_the_window_wait_and_are_written_once_with_the_latest_time() -> None:
    rec, store, clock = recorder(window=3600.0)  # the timer will not fire during the test
    rec.observe(pull("library/a", "sha256:1", 5000.0))
    for second in range(1, 101):
        clock.now += 0.1
        rec.observe(pull("library/a", "sha256:1", 5000.0 + second))
    rec.observe(pull("library/b", "sha256:2", 5050.0))
    assert len(store.writes) == 1  # only the first
    rec.flush()  # what the timer does when the window closes
    assert store.writes[1] == {("library/a", "sha256:1"): 5100, ("library/b", "sha256:2"): 5050}
    rec.flush()
    assert len(store.writes) == 2  # nothing pending, nothing written


def test_the_timer_flushes_when_the_window_closes() -> None:
    rec, store, _ = recorder(window=0.05)
    rec.observe(pull("library/a", "sha256:1", 1.0))
    rec.observe(pull("library/a", "sha256:1", 2.0))  # within the window: waits for the timer
    timer: Any = rec._timer
    assert timer is not None
    timer.join(5)
    assert store.writes[-1] == {("library/a", "sha256:1"): 2}


def test_other_events_are_ignored() -> None:
    rec, store, _ = recorder()
    rec.observe(Event(EventType.PUSH_ARTIFACT, "x", 1.0, repository="library/a", digest="sha256:1"))
    assert store.writes == []


def test_pulls_by_tag_record_the_tag_too() -> None:
    rec, store, _ = recorder(window=3600.0)
    rec.observe(pull("library/a", "sha256:1", 10.0, tag="v1"))
    rec.observe(pull("library/a", "sha256:1", 20.0, tag="v1"))
    rec.observe(pull("library/a", "sha256:1", 30.0))
    rec.flush()
    assert store.tags == [{("library/a", "v1"): ("sha256:1", 10)}, {("library/a", "v1"): ("sha256:1", 20)}]
