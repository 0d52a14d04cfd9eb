"""A file-like `read(n)` over an iterator of byte chunks.

The upload service consumes request bodies through `read(n)`; a replication copy and a
proxy-cache fetch have the bytes as an iterator of chunks from a download whose digest the
iterator itself verifies at its end. The reader lets such a download be pushed through the same
path a client's body takes, and drives the iterator to its end so a mismatch raises there.
"""

from __future__ import annotations

from collections.abc import Iterator

_DEFAULT_READ = 1024 * 1024  # what `read()` / `read(-1)` returns at most in one call


class ChunkReader:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1, /) -> bytes:
        size = size if size > 0 else _DEFAULT_READ
        while len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer.extend(chunk)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        if not out:
            next(self._chunks, None)  # let a verifying iterator finish (it raises on a mismatch)
        return out
