"""What a small per-project document (immutable-tag rules, webhook policies) needs around its item:
an optimistic read-modify-write, and a per-process cache that the request path can trust briefly.

The document is one item with a `version`; the store's `save` writes only if the version is still
the one read (Conflict otherwise), so concurrent writers re-read and re-check their rule (limits,
unique names) instead of overwriting each other. The cache also remembers "nothing configured",
and a `forget` bumps the project's generation so a load that raced with a change is not cached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import Conflict

T = TypeVar("T")
_WRITE_ATTEMPTS = 4
_CACHE_MAX_PROJECTS = 10_000


def change_versioned(
    load: Callable[[], tuple[T, int]],
    save: Callable[[T, int], None],
    change: Callable[[T], T],
    forget: Callable[[], None],
    what: str,
) -> None:
    """Apply `change` to the document read at some version and save it at that version; retry a
    few times when another writer got there first."""
    for _attempt in range(_WRITE_ATTEMPTS):
        current, version = load()
        changed = change(current)
        try:
            save(changed, version)
        except Conflict:
            continue
        finally:
            forget()
        return
    raise Conflict(f"{what} are changing concurrently; retry")


class ProjectCache(Generic[T]):
    def __init__(self, seconds: float, clock: Clock = system_clock) -> None:
        self._seconds = seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, T]] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def forget(self, project: str) -> None:
        with self._lock:
            self._cache.pop(project, None)
            self._generation[project] = self._generation.get(project, 0) + 1

    def get(self, project: str, load: Callable[[], T]) -> T:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(project)
            generation = self._generation.get(project, 0)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = load()
        if self._seconds > 0:
            with self._lock:
                if len(self._cache) >= _CACHE_MAX_PROJECTS:
                    self._cache.clear()
                    self._generation.clear()
                if self._generation.get(project, 0) == generation:
                    self._cache[project] = (now + self._seconds, value)
        return value
