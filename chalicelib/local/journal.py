"""The embedded runner's write-ahead journal: framed records in numbered segment files.

A record is `length (4 bytes) | CRC-32 of length and payload (4 bytes) | payload`, big-endian. A
crash can leave the last record of the last segment torn (cut short, or followed by garbage the
filesystem had allocated): reading stops at the first record whose length or checksum does not
hold, and the runner cuts the segment back to its last whole record before writing again. The
length is part of the checksum and 0 is no valid length, so a run of zero bytes never reads as a
record.

Appends are group-committed: `append` (called in the order the writes were applied) only queues
the frame; `wait` makes it durable. The first waiter writes every queued frame and calls
`fdatasync` once, the others wait for it, so one flush covers every write that arrived meanwhile,
and a record is never durable before one appended earlier (segments are written in order).

Files are created 0600: the journal holds what the table holds (password hashes, webhook auth
headers). `write_private` is the one way this package creates such a file.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

_HEADER = struct.Struct(">II")
MAX_RECORD = 256 * 1024**2
_SEGMENT = re.compile(r"journal-(\d{12})\.log")


class JournalDamaged(Exception):
    """A record in the middle of the journal does not check out (not a torn tail)."""


class JournalFailed(Exception):
    """Writing or syncing the journal failed: nothing more can be acknowledged."""


def frame(payload: bytes) -> bytes:
    prefix = len(payload).to_bytes(4, "big")
    return prefix + zlib.crc32(payload, zlib.crc32(prefix)).to_bytes(4, "big") + payload


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """The whole records at the start of `data`, and how many bytes they span."""
    records: list[bytes] = []
    offset, end = 0, len(data)
    view = memoryview(data)
    while offset + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length == 0 or length > MAX_RECORD or start + length > end:
            break
        payload = view[start : start + length]
        if zlib.crc32(payload, zlib.crc32(data[offset : offset + 4])) != crc:
            break
        records.append(bytes(payload))
        offset = start + length
    return records, offset


def segment_name(number: int) -> str:
    return f"journal-{number:012d}.log"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The journal segments in `directory`, oldest first."""
    found = []
    for path in directory.iterdir():
        match = _SEGMENT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_segment(path: Path, *, last: bool) -> Iterator[bytes]:
    """The records of one segment. A torn tail is cut off the newest segment (`last`), on disk
    too; anywhere else a bad record means lost writes, which is refused."""
    data = path.read_bytes()
    records, good = read_frames(data)
    if good != len(data):
        if not last:
            raise JournalDamaged(f"{path} is damaged at byte {good} of {len(data)} (not its newest segment)")
        with path.open("r+b") as segment:
            segment.truncate(good)
            os.fsync(segment.fileno())
    yield from records


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> Path:
    """`directory`, created if needed, readable by its owner only (0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)
    fsync_dir(directory.parent)  # its entry, when this start created it
    return directory


def write_private(path: Path, chunks: Iterator[bytes]) -> None:
    """Write a file atomically: a 0600 temporary file, fsync'ed, renamed over `path`, directory fsync'ed."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older temporary file may have had other bits
        with os.fdopen(fd, "wb", closefd=False) as out:
            for chunk in chunks:
                out.write(chunk)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Journal:
    """The writer: appends to the newest segment, group commit, rotation for compaction."""

    def __init__(self, directory: Path, number: int, *, before_commit: Callable[[], None] | None = None) -> None:
        """`before_commit`: called before each commit writes its records, after they are taken
        (so whatever a write did before its record was queued is covered): the file store's owed
        fsyncs, which must be on disk before any record naming those files is."""
        self._dir = directory
        self._before_commit = before_commit
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._appended = 0  # sequence number of the last queued record
        self._durable = 0  # ... and of the last one on disk
        self._flushing = False
        self._failed: BaseException | None = None
        self._bytes = 0
        self.number = number
        self._fd = self._open(number)

    def _open(self, number: int) -> int:
        fd = os.open(self._dir / segment_name(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fsync_dir(self._dir)
        return fd

    @property
    def appended(self) -> int:
        """The sequence number of the last record queued."""
        return self._appended

    @property
    def segment_bytes(self) -> int:
        """Bytes written to the current segment."""
        return self._bytes

    def append(self, payload: bytes) -> int:
        """Queue one record (in apply order); returns its sequence number for `wait`."""
        record = frame(payload)
        with self._cond:
            if self._failed is not None:
                raise JournalFailed("the journal failed earlier") from self._failed
            self._pending.append(record)
            self._appended += 1
            return self._appended

    def wait(self, sequence: int) -> None:
        """Return once record `sequence` (and every one before it) is on disk."""
        with self._cond:
            while self._durable < sequence:
                if self._failed is not None:
                    raise JournalFailed("the journal failed; the write is not durable") from self._failed
                if self._flushing:
                    self._cond.wait()
                else:
                    self._flush()

    def rotate(self) -> int:
        """Make everything queued durable in the current segment, continue in a new one; returns
        the number of the segment just closed (complete on disk)."""
        with self._cond:
            while self._flushing:
                self._cond.wait()
            self._flush()
            if self._failed is not None:
                raise JournalFailed("the journal failed") from self._failed
            closed, old = self.number, self._fd
            self._fd = self._open(closed + 1)
            self.number, self._bytes = closed + 1, 0
            os.close(old)
            return closed

    def _flush(self) -> None:
        """With the condition held: write and sync what is queued, the lock released meanwhile."""
        self._flushing = True
        batch, self._pending = self._pending, []
        upto, fd = self._appended, self._fd
        data = b"".join(batch)
        self._cond.release()
        error: BaseException | None = None
        try:
            if self._before_commit is not None:
                self._before_commit()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        except BaseException as exc:  # recorded: every waiter raises it
            error = exc
        finally:
            self._cond.acquire()
            self._flushing = False
            self._cond.notify_all()
        if error is not None:
            # What is applied in memory can no longer be made durable: refuse every later write.
            self._failed = error
            raise JournalFailed(f"writing the journal failed: {error}") from error
        self._durable = upto
        self._bytes += len(data)
