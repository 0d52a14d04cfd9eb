"""Progress of a push: a bar per blob being sent and one for the whole image (rich.progress).

The copy reports through the small `Progress` protocol, so it runs the same with bars on a
terminal and silently in scripts and tests (`Silent`).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBars


class Progress(Protocol):
    def begin(self, total_bytes: int) -> None: ...

    def start_blob(self, digest: str, size: int) -> None: ...

    def at(self, digest: str, offset: int) -> None:
        """The blob's bytes the registry holds (goes back after a resume from an earlier offset)."""

    def finish_blob(self, digest: str, size: int, outcome: str) -> None:
        """Done: `uploaded`, or `exists`/`mounted` for a blob whose bytes were never sent."""

    def note(self, text: str) -> None: ...


class Silent:
    def begin(self, total_bytes: int) -> None:
        pass

    def start_blob(self, digest: str, size: int) -> None:
        pass

    def at(self, digest: str, offset: int) -> None:
        pass

    def finish_blob(self, digest: str, size: int, outcome: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class Bars:
    """rich bars on stderr: one per blob in flight (kept, with its outcome, when done) and a total."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._total: TaskID | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Bars:
        self._bars.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bars.stop()

    def begin(self, total_bytes: int) -> None:
        self._total = self._bars.add_task("[bold]total", total=total_bytes)

    def start_blob(self, digest: str, size: int) -> None:
        with self._lock:
            self._tasks[digest] = self._bars.add_task(_short(digest), total=size)
            self._done[digest] = 0

    def at(self, digest: str, offset: int) -> None:
        with self._lock:
            moved = offset - self._done.get(digest, 0)
            self._done[digest] = offset
            self._bars.update(self._tasks[digest], completed=offset)
            if self._total is not None:
                self._bars.advance(self._total, moved)

    def finish_blob(self, digest: str, size: int, outcome: str) -> None:
        with self._lock:
            task = self._tasks.get(digest)
            if task is None:  # never sent: it existed or was mounted
                task = self._tasks[digest] = self._bars.add_task(_short(digest), total=size)
                self._done[digest] = 0
            if self._total is not None:
                self._bars.advance(self._total, size - self._done[digest])
            self._done[digest] = size
            self._bars.update(task, completed=size, description=f"{_short(digest)} {outcome}")

    def note(self, text: str) -> None:
        self._bars.console.print(text)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]
