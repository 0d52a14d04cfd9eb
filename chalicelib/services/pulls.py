"""Pull bookkeeping off the request path: artifact and tag pull times, repository pull counts.

A pull never writes to DynamoDB: `ManifestService.get` publishes PULL_ARTIFACT and the bus
delivers it off the request path (a worker thread locally, the consumer Lambda on AWS). Here the
pulls collect in memory (the latest time per artifact and per tag, a count and latest time per
repository) and are written in one flush at most once per `window` seconds: the first pull after
a quiet window flushes at once, later ones are flushed by a timer when the window closes (or, in
a Lambda whose timer was frozen, by the first pull after it). So an artifact pulled a thousand
times a minute costs one UpdateItem a minute, its tag one more and its repository one more.
Time writes only move forward and skip deleted artifacts and moved tags (conditions); counts are
atomic ADDs, and counts a failed flush could not write wait for the next one.

A process that dies with pulls pending loses at most one window of them: pull times and counts
are advisory in Harbor too.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chalicelib.core.clock import Clock, system_clock
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.repositories import RepositoryStore


class PullCoalescer:
    def __init__(self, artifacts: ArtifactStore, repositories: RepositoryStore, window: float,
                 clock: Clock = system_clock) -> None:  # fmt: skip
        self._artifacts = artifacts
        self._repositories = repositories
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._pulled: dict[tuple[str, str], int] = {}  # (repository, digest) -> latest pull
        self._tags: dict[tuple[str, str], tuple[str, int]] = {}  # (repository, tag) -> (digest, latest)
        self._counts: dict[str, tuple[int, int]] = {}  # repository -> (pulls, latest)
        self._last_flush = float("-inf")
        self._timer: threading.Timer | None = None

    def observe(self, event: Event) -> None:
        """Event subscriber."""
        if event.type is not EventType.PULL_ARTIFACT or not event.repository or not event.digest:
            return
        repository, at = event.repository, int(event.occurred_at)
        with self._lock:
            self._pulled[repository, event.digest] = max(self._pulled.get((repository, event.digest), 0), at)
            if event.tag:
                self._tags[repository, event.tag] = (event.digest, at)
            count, latest = self._counts.get(repository, (0, 0))
            self._counts[repository] = (count + 1, max(latest, at))
            wait = self._last_flush + self._window - self._clock()
            if wait > 0 and (self._timer is None or not self._timer.is_alive()):
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if wait <= 0:
            self.flush()

    def flush(self) -> None:
        """Write everything pending now (the timer, shutdown and tests call this)."""
        with self._lock:
            pulled, tags, counts = self._pulled, self._tags, self._counts
            self._pulled, self._tags, self._counts = {}, {}, {}
            self._last_flush = self._clock()
        try:
            if pulled or tags:
                self._artifacts.record_pulls(pulled, tags)
        except Exception:  # a timer thread has no caller to report to
            logger.exception("pull times not recorded")
        for repository, (count, latest) in counts.items():
            try:
                self._repositories.add_pulls(repository, count, latest)
            except Exception:
                logger.exception("pull count not recorded", extra={"repository": repository})
                with self._lock:  # counted again with the next flush rather than lost
                    held, held_latest = self._counts.get(repository, (0, 0))
                    self._counts[repository] = (held + count, max(held_latest, latest))
