"""Spools: the bytes of a blob while it streams in from an upstream registry, readable by clients
as they arrive (the local runner's tee of a proxy-cache pull).

A spool is an unlinked temporary file written once, front to back, and read by any number of
readers at their own offsets (`os.pread`), each waiting for the bytes it has not got yet. It is
published under an unguessable token (`/_tee/<token>` on the local server, which serves it as
it serves a signed download URL); a finished spool stays readable for a minute, so a client that
follows its redirect late still gets it, and is then dropped. A spool that ends broken (the
upstream stopped, or the bytes did not match their digest) ends every reader with an error, so
their responses stay short of their Content-Length and clients refuse them.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator

TEE_PREFIX = "/_tee/"
_READ = 1024 * 1024
# A reader that hears nothing new for this long gives up (the upstream stalled).
_STALL_SECONDS = 120.0
# How long a finished spool can still be opened.
_KEEP_SECONDS = 60.0


class SpoolBroken(Exception):
    """The spool's writer failed: what was read so far is not the blob."""


class Spool:
    def __init__(self, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the last holder lets it go)
        self._written = 0
        self._state = "open"  # open | done | broken
        self._changed = threading.Condition()
        self.ended_at: float | None = None

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            moved = os.write(self._file.fileno(), view)
            view = view[moved:]
        with self._changed:
            self._written += len(chunk)
            self._changed.notify_all()

    def end(self, *, ok: bool) -> None:
        with self._changed:
            if self._state == "open":
                self._state = "done" if ok and self._written == self.size else "broken"
            self.ended_at = time.monotonic()
            self._changed.notify_all()

    def chunks(self) -> Iterator[bytes]:
        """The blob's bytes from the start, as they arrive; raises SpoolBroken if the writer failed."""
        offset = 0
        while offset < self.size:
            with self._changed:
                while self._written <= offset and self._state == "open":
                    if not self._changed.wait(_STALL_SECONDS):
                        raise SpoolBroken(f"blob {self.digest}: the upstream stalled")
                if self._state == "broken":
                    raise SpoolBroken(f"blob {self.digest}: the upstream download failed")
                available = self._written
            if available <= offset:  # done with fewer bytes than announced
                raise SpoolBroken(f"blob {self.digest}: the upstream sent too few bytes")
            data = os.pread(self._file.fileno(), min(_READ, available - offset), offset)
            offset += len(data)
            yield data
        with self._changed:  # the last bytes are only good once the digest has been checked
            while self._state == "open":
                if not self._changed.wait(_STALL_SECONDS):
                    raise SpoolBroken(f"blob {self.digest}: the upstream stalled")
            if self._state == "broken":
                raise SpoolBroken(f"blob {self.digest}: the bytes did not match the digest")


class SpoolRegistry:
    """The spools being written or just finished in this process, by token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spools: dict[str, Spool] = {}

    def publish(self, spool: Spool) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            self._spools[token] = spool
        return token

    def open(self, token: str) -> Spool | None:
        with self._lock:
            return self._spools.get(token)

    def _expire(self) -> None:
        now = time.monotonic()
        for token, spool in list(self._spools.items()):
            if spool.ended_at is not None and now - spool.ended_at > _KEEP_SECONDS:
                del self._spools[token]  # readers still holding it keep the file open


SPOOLS = SpoolRegistry()
