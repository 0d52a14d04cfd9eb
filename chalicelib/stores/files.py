"""Local object store: the bucket's keys as files under one directory (the embedded runner only).

Why not moto's S3 for `make serve` (on AWS the same keys are S3 objects), measured with
`python -m tests.bench apptime transfer` on the 2-CPU dev machine: through moto, a layer PATCH cost
5.3 ms of server CPU per MB, because moto copies the body into a spooled temporary file and hashes
it twice more (ETag, ChecksumSHA256 check), and the snapshot later read every object back out into
a file of its own. Here (one SHA-256 pass in the upload service, one O_DIRECT write) it costs
1.6 ms per MB, and the skopeo push of the ~50 MB image went from 1.9x CNCF distribution's time to
1.1-1.3x (runs interleaved under the same load). Blob bytes are files, so snapshots copy none.
On AWS (and in the functional tests) the registry uses `S3ObjectStore`; both satisfy `ObjectStore`.

The S3 guarantees the upload path relies on hold here too, but one:
- `put` does not hash the bytes a second time to check the caller's SHA-256. On S3 that check
  guards bytes that crossed a network; here they are the same immutable `bytes` the upload service
  hashed a moment before to name them (its digest check is what makes a blob visible), and a
  second pass cost 0.5 ms per MB, a third of a layer PATCH's CPU;
- every write goes to a temporary file first and is renamed into place, so a key is absent or
  complete, never partial (a reader never sees a half-written blob, a crash leaves only `.tmp/`);
- multipart staging appends each part to one data file per upload, with an index line naming the
  part's number, the tag returned to the caller and where its bytes lie; completion uses only the
  parts the caller lists (a rename when they are the whole data file, in order);
- `copy` is a hard link (objects are never rewritten in place, only replaced by rename), falling
  back to a byte copy where the filesystem has no links.
- a write is durable when it returns (`sync`, the default): the file is fsync'ed before its rename,
  and the directory that now names it (and any directory created for it) after, so the row that
  makes a blob visible, written after the call returns, never outlives a crash that its bytes do
  not. The same holds for staged chunks and multipart parts, which an upload session row names.
  Deletions are not synced: a file that comes back after a crash is garbage that GC removes. But
  a deletion waits for whatever the caller wrote before it to be durable (`before_deleting`: the
  local runner's journal), so no crash brings back a row naming a file that is gone.
  `sync=False` skips the fsyncs (`REGISTRY_UNSAFE_NO_JOURNAL`, benchmarks only).
  Under the local runner's journal the fsyncs are owed instead of made (`defer_syncs`): a write
  returns once its bytes are written, and the journal's next commit makes every owed file and
  directory durable (all at once, in parallel) before the records it commits are on disk. A row
  naming a file is journaled after the write returns, so the file is durable before the row is,
  and a crash can lose only what was never acknowledged. On a loaded disk this is one round of
  syncs per request instead of ten to twenty one after the other (a layer's parts, its index,
  staging and blob directories). Owed syncs are unordered among themselves: an index line durable
  before its part's bytes names a part that no durable row names.
Bodies of 1 MiB and more go past the page cache to the device (O_DIRECT, `_write_direct`).

Downloads: `presigned_get` returns a relative URL under `DOWNLOAD_PREFIX`, signed with HMAC-SHA256
over the key and its expiry with a key kept in this directory (created on first use, mode 0600);
the local WSGI adapter serves it through `open_signed`, which checks both before opening the file.
Being relative, the URL works under whichever host and port the client reached the registry on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import mmap
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import BlobUploadUnknown
from chalicelib.stores.objects import StoredObject

DOWNLOAD_PREFIX = "/_local/objects/"
_READ_BLOCK = 8 * 1024**2
# Keys the registry writes (`stores/keys.py`): slash-separated segments of URL-safe characters.
# Dot-led segments are refused, which keeps `..` out and leaves dot names for this store's own use.
_KEY = re.compile(r"[A-Za-z0-9_\-=:][A-Za-z0-9_.\-=:]*(/[A-Za-z0-9_\-=:][A-Za-z0-9_.\-=:]*)*")
# Bodies from this size on are written with O_DIRECT (`_write_direct`), in blocks of this size.
_DIRECT_MIN = 1024**2
_DIRECT_BLOCK = 4 * 1024**2
# A part written while it arrives (`upload_part_stream`) goes to the disk in blocks of this size.
_STREAM_BLOCK = 1024**2
_ALIGN = 4096
_per_thread = threading.local()
# The bucket's lifecycle rules for staging (`infra/resources.json`), applied by `expire_staging`.
_STAGED_TTL = 2 * 86400
_MULTIPART_TTL = 86400


_before_deleting: list[Callable[[], None]] = []


def before_deleting(callback: Callable[[], None]) -> None:
    """Run `callback` before any file is deleted (the local runner: make the journal durable)."""
    if callback not in _before_deleting:
        _before_deleting.append(callback)


def _deleting() -> None:
    for callback in _before_deleting:
        callback()


class OwedSyncs:
    """fsyncs that writes owe (`defer_syncs`), made together by `sync` (parallel, serialised).

    Group commit as in the journal: `sync()` makes every sync owed before the call; one call's
    round covers every file and directory that waited for it (one fsync per inode)."""

    _WORKERS = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the owed table
        self._rounds = threading.Lock()  # one round of syncs at a time
        self._owed: dict[tuple[int, int], int] = {}  # (device, inode) -> a descriptor of it
        self._registered = 0
        self._synced = 0
        self._failed: OSError | None = None
        self._pool: ThreadPoolExecutor | None = None

    def owe(self, fd: int) -> None:
        """Note that `fd`'s file (or directory) must be synced; the caller may close `fd`."""
        # A descriptor of its own, not a `dup`: a duplicate would share the open file, and with it
        # an flock the caller releases by closing `fd` (multipart parts are written under one).
        held = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        info = os.fstat(held)
        with self._lock:
            key = (info.st_dev, info.st_ino)
            if key in self._owed:
                os.close(held)
            else:
                self._owed[key] = held
            self._registered += 1
            _per_thread.owed = self._registered

    def sync(self, upto: int | None = None) -> None:
        """Make durable every sync owed before this call (`upto`: only those up to that number)."""
        with self._rounds:
            if self._failed is not None:  # what that round held may never reach the disk
                raise OSError(self._failed.errno, f"an earlier fsync failed: {self._failed}")
            with self._lock:
                target = self._registered if upto is None else upto
                if self._synced >= target:
                    return
                batch, self._owed = list(self._owed.values()), {}
                reached = self._registered
            try:
                if len(batch) == 1:
                    os.fsync(batch[0])
                elif batch:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(self._WORKERS, thread_name_prefix="fsync")
                    list(self._pool.map(os.fsync, batch))
            except OSError as exc:
                self._failed = exc
                raise
            finally:
                for fd in batch:
                    os.close(fd)
            self._synced = reached

    def sync_mine(self) -> None:
        """Make durable what this thread's writes owe (nothing to do: no wait)."""
        mine = getattr(_per_thread, "owed", 0)
        if mine > self._synced:
            self.sync(mine)


_owed: OwedSyncs | None = None


def defer_syncs(owed: OwedSyncs | None) -> None:
    """From now on, writes owe their fsyncs to `owed` instead of making them (None: make them
    again). Only for a process whose every acknowledgement waits for `owed.sync()`: the local
    runner's journal calls it before each commit."""
    global _owed  # noqa: PLW0603 (one process, one journal)
    _owed = owed


def _fsync(fd: int) -> None:
    """fsync `fd` now, or owe it to the journal's next commit (`defer_syncs`)."""
    owed = _owed
    if owed is None:
        os.fsync(fd)
    else:
        owed.owe(fd)


class DownloadRefused(Exception):
    """A download URL that is malformed, tampered with or expired."""


class FileObjectStore:
    """`ObjectStore` over a directory; thread-safe through atomic renames (no locks)."""

    # Parts are appended to one data file in whatever sizes they come.
    min_part_bytes = 0

    def __init__(self, root: Path, *, sync: bool = True, clock: Clock = system_clock) -> None:
        self.root = root
        self._clock = clock
        self._sync = sync
        self._durable_dirs: set[Path] = set()
        self._tmp = root / ".tmp"
        self._multipart = root / ".multipart"
        for directory in (root, self._tmp, self._multipart):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (root.parent, root):  # the entries just made (a first start), on disk
            self._sync_dir(directory)
        self._url_key = _url_key(root / ".url-key")
        self._direct_ok = hasattr(os, "O_DIRECT")

    def clear_scratch(self) -> int:
        """Remove temporary files a crash left behind (call before serving); returns how many."""
        removed = 0
        for leftover in self._tmp.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)  # a completed upload's parts
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def expire_staging(self, now: float | None = None) -> int:
        """What the bucket's lifecycle rules do on AWS (`infra/resources.json`): staged chunks under
        `uploads/` go after 2 days, multipart staging 1 day after its last part. Returns how many
        files and directories were removed. Walks only the staging areas."""
        now = time.time() if now is None else now
        removed = 0
        uploads = self.root / "uploads"
        for session in list(uploads.iterdir()) if uploads.is_dir() else []:
            for staged in list(session.iterdir()):
                if staged.stat().st_mtime < now - _STAGED_TTL:
                    staged.unlink(missing_ok=True)
                    removed += 1
            with contextlib.suppress(OSError):
                session.rmdir()  # only when empty
        for upload in list(self._multipart.iterdir()):
            if upload.stat().st_mtime < now - _MULTIPART_TTL:
                shutil.rmtree(upload, ignore_errors=True)
                removed += 1
        return removed

    def path(self, key: str) -> Path:
        """The file that holds `key`; refuses keys that could leave the directory."""
        if len(key) > 1024 or not _KEY.fullmatch(key):
            raise ValueError(f"invalid object key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes, *, sha256_hex: str | None = None) -> None:
        """Write an object. `sha256_hex` is not computed again here (see `ObjectStore.put`)."""
        target = self.path(key)
        tmp = self._write_new(data)
        self._publish(tmp, target)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def get_head(self, key: str, max_bytes: int) -> bytes:
        with self.path(key).open("rb") as body:
            return body.read(max(max_bytes, 1))

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as body:
            yield from iter(lambda: body.read(_READ_BLOCK), b"")

    def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"object directory {self.root} is missing")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, *keys: str) -> None:
        _deleting()
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def presigned_get(self, key: str, ttl_seconds: int) -> str:
        self.path(key)  # validates
        expires = int(self._clock()) + ttl_seconds
        return f"{DOWNLOAD_PREFIX}{quote(key)}?expires={expires}&signature={self._sign(key, expires)}"

    def open_signed(self, key: str, expires: str, signature: str) -> BinaryIO:
        """Open the object a download URL names, after checking its signature and expiry.

        Raises DownloadRefused (bad URL) or FileNotFoundError (the object is gone)."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 18 or not _KEY.fullmatch(key):
            raise DownloadRefused("malformed download URL")
        if not hmac.compare_digest(self._sign(key, int(expires)), signature):
            raise DownloadRefused("bad signature")
        if int(expires) < self._clock():
            raise DownloadRefused("download URL expired")
        return self.path(key).open("rb")

    # Inventory (garbage collection only).

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix` (a whole path segment or more)."""
        start = self.root / prefix.rstrip("/") if prefix.rstrip("/") else self.root
        if not start.is_dir():
            return
        for directory, subdirs, names in os.walk(start):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                with contextlib.suppress(FileNotFoundError):  # deleted while listed
                    stat = path.stat()
                    yield StoredObject(key, stat.st_size, int(stat.st_mtime))

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, int]]:
        """None: staging directories are not keyed by object key here; `expire_staging` removes
        abandoned ones, as the bucket's lifecycle rule does on AWS."""
        return iter(())

    # Multipart staging: one directory per upload, one data file and its index.

    def start_multipart(self, key: str) -> str:
        self.path(key)
        upload_id = secrets.token_hex(16)
        (self._multipart / upload_id).mkdir()
        self._sync_dir(self._multipart)
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        """Append the part to the upload's one data file and note where it lies in its index.

        Parts usually arrive in order (a streamed body, chunks folded one after the other), so the
        data file is then already the object and completion is a rename. Writers of one upload are
        serialised by a lock on the data file; a part is in the index only once its bytes are."""
        return self._append_part(upload_id, number, lambda path, fd, offset: self._write_at(path, fd, offset, data))

    def upload_part_stream(self, key: str, upload_id: str, number: int, blocks: Iterable[bytes]) -> str:
        """`upload_part` with each block written as it comes (past the page cache from an aligned
        offset), so a body is on disk moments after its last byte. Bytes of a stream that fails
        stay in the data file unindexed: no part names them."""
        return self._append_part(upload_id, number, lambda path, fd, offset: self._stream_at(path, fd, offset, blocks))

    def _append_part(self, upload_id: str, number: int, write: Callable[[Path, int, int], int]) -> str:
        directory = self._upload_dir(upload_id)
        etag = secrets.token_hex(8)
        data_file = directory / "data"
        try:
            fd = os.open(data_file, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            raise BlobUploadUnknown("upload staging was lost; restart the upload") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            offset = os.fstat(fd).st_size
            size = write(data_file, fd, offset)
            self._sync_file(fd)  # the bytes before the index line that names them
            with (directory / "index").open("a", encoding="ascii") as index:
                # Led by a newline too, so that a line a crash tore off ends before this one starts.
                index.write(f"\n{number} {etag} {offset} {size}\n")
                index.flush()
                self._sync_file(index.fileno())
            if offset == 0:
                self._sync_dir(directory)  # the data and index files' entries, made by the first part
        finally:
            os.close(fd)  # and with it the lock
        return etag

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Assemble the listed parts, in order, into `key`; other parts are ignored.

        When the listed parts are the data file from its first byte to its last (the usual case),
        the data file becomes the object (a rename, no copy). Otherwise (parts of a writer that
        lost its lease lie between them) their byte ranges are copied past the page cache into a
        new file, and what is left is removed on a thread of its own."""
        directory = self._upload_dir(upload_id)
        target = self.path(key)
        data_file = directory / "data"
        spans = _read_index(directory / "index")
        pieces: list[tuple[Path, int, int]] = []
        for number, etag in parts:
            if (number, etag) not in spans:
                raise BlobUploadUnknown("upload staging was lost; restart the upload")
            pieces.append((data_file, *spans[(number, etag)]))
        tmp = self._tmp / secrets.token_hex(16)
        if _whole_file(pieces, data_file):
            os.rename(data_file, tmp)  # its bytes were synced part by part
        else:
            try:
                with _output(tmp, self._direct_ok, sync=self._sync) as out:
                    for path, first, size in pieces:
                        _copy_range(path, first, size, out)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        self._publish(tmp, target)
        _deleting()
        # Out of `.multipart/` at once (a rename); `clear_scratch` removes what a crash leaves in `.tmp/`.
        trash = self._tmp / f"{upload_id}.parts"
        os.rename(directory, trash)
        threading.Thread(target=shutil.rmtree, args=(trash, True), name="multipart-cleanup", daemon=True).start()

    def abort_multipart(self, key: str, upload_id: str) -> None:
        _deleting()
        if re.fullmatch(r"[0-9a-f]{32}", upload_id):
            shutil.rmtree(self._multipart / upload_id, ignore_errors=True)

    def copy(self, source: str, target: str, size: int) -> None:
        """A hard link under a temporary name, renamed into place (a byte copy without links)."""
        src, dst = self.path(source), self.path(target)
        tmp = self._tmp / secrets.token_hex(16)
        try:
            os.link(src, tmp)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            shutil.copyfile(src, tmp)
        self._publish(tmp, dst)

    # Internals.

    def _sign(self, key: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def _upload_dir(self, upload_id: str) -> Path:
        directory = self._multipart / upload_id
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not directory.is_dir():
            raise BlobUploadUnknown("upload staging was lost; restart the upload")
        return directory

    def _write_new(self, data: bytes | bytearray) -> Path:
        """A new file under `.tmp/` holding `data`; large bodies bypass the page cache (see below)."""
        tmp = self._tmp / secrets.token_hex(16)
        if len(data) >= _DIRECT_MIN and self._direct_ok:
            try:
                _write_direct(tmp, data, sync=self._sync)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if exc.errno != errno.EINVAL:
                    raise
                self._direct_ok = False  # this filesystem refuses O_DIRECT (tmpfs): plain writes from now on
            else:
                return tmp
        try:
            with tmp.open("xb") as out:
                out.write(data)
                out.flush()
                self._sync_file(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _write_at(self, path: Path, fd: int, offset: int, data: bytes | bytearray) -> int:
        """Write `data` at `offset` of the open file `path`: past the page cache when it is large
        and the offset is aligned (as `_write_new` does), else with plain writes; returns its size."""
        if self._direct_ok and len(data) >= _DIRECT_MIN and offset % _ALIGN == 0:
            try:
                with _DirectWriter(path, at=offset) as out:
                    out.write(data)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct_ok = False
                os.ftruncate(fd, offset)
            else:
                return len(data)
        _pwrite_all(fd, data, offset)
        return len(data)

    def _stream_at(self, path: Path, fd: int, offset: int, blocks: Iterable[bytes]) -> int:
        """Write the blocks from `offset` on as they come; returns how many bytes they held. A
        filesystem that refuses O_DIRECT refuses it when the file is opened, before any block is
        taken; a refusal after that fails the part (and later parts write plainly)."""
        size = 0
        writer = None
        if self._direct_ok and offset % _ALIGN == 0:
            try:
                # Written a block at a time: what is left when the last byte arrives is one block.
                writer = _DirectWriter(path, at=offset, block=_STREAM_BLOCK)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct_ok = False
        if writer is not None:
            try:
                with writer:
                    for block in blocks:
                        writer.write(block)
                        size += len(block)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    self._direct_ok = False
                raise
            return size
        for block in blocks:
            _pwrite_all(fd, block, offset + size)
            size += len(block)
        return size

    def _publish(self, tmp: Path, target: Path) -> None:
        """Rename a complete (synced) temporary file to `target`; the rename is synced too."""
        try:
            self._make_dirs(target.parent)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_dir(target.parent)

    def _make_dirs(self, directory: Path) -> None:
        """`mkdir -p`, each directory's entry in its parent made durable. A directory another thread
        has just created may not be synced in its parent yet, so the first use of each directory
        in this process syncs its parent whoever created it; later uses cost nothing."""
        if directory in self._durable_dirs or directory == self.root:
            return
        self._make_dirs(directory.parent)
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        self._sync_dir(directory.parent)
        if len(self._durable_dirs) > 10_000:
            self._durable_dirs.clear()  # upload sessions each add one: bounded, re-synced when needed
        self._durable_dirs.add(directory)

    def _sync_file(self, fd: int) -> None:
        if self._sync:
            _fsync(fd)

    def _sync_dir(self, directory: Path) -> None:
        if self._sync:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _fsync(fd)
            finally:
                os.close(fd)


def _pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        view = view[os.pwrite(fd, view, offset + len(data) - len(view)) :]


def _write_direct(path: Path, data: bytes | bytearray, *, sync: bool) -> None:
    """Write `data` to a new file with O_DIRECT (see `_DirectWriter`)."""
    with _DirectWriter(path, sync=sync) as out:
        out.write(data)


class _DirectWriter:
    """A new file written with O_DIRECT, through a page-aligned buffer reused per thread.

    Why: a buffered write must find fresh page-cache pages for every byte, which here (a VM) costs
    ~2.4 ms per MB, most of a layer PATCH; the same bytes go to the disk with O_DIRECT in ~0.4 ms
    per MB. Writes are gathered into 4 MiB blocks; the last one is padded to 4 KiB and the file
    truncated to its real length. A filesystem that refuses O_DIRECT raises OSError(EINVAL)."""

    def __init__(self, path: Path, *, at: int | None = None, sync: bool = False, block: int = _DIRECT_BLOCK) -> None:
        """A new file, or (`at`, a multiple of 4 KiB) the existing file from that byte on; `sync`:
        fsync'ed on close (O_DIRECT skips the page cache, not the device's cache or the file's size);
        `block`: bytes gathered per write (a multiple of 4 KiB, at most `_DIRECT_BLOCK`)."""
        self._sync = sync
        self._block = block
        self._buffer = _direct_buffer()
        self._filled = 0
        self._length = 0
        self._start = at or 0
        flags = os.O_WRONLY | os.O_DIRECT | (os.O_CREAT | os.O_EXCL if at is None else 0)
        self._fd = os.open(path, flags, 0o600)

    def __enter__(self) -> _DirectWriter:
        return self

    def write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._block - self._filled)
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._block:
                self._flush()

    def _flush(self) -> None:
        padded = -(-self._filled // _ALIGN) * _ALIGN
        self._buffer[self._filled : padded] = bytes(padded - self._filled)
        if os.pwrite(self._fd, memoryview(self._buffer)[:padded], self._start + self._length) != padded:
            raise OSError(errno.EINVAL, "short O_DIRECT write")  # then a plain write, as for tmpfs
        self._length += self._filled
        self._filled = 0

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                if self._filled:
                    self._flush()
                os.ftruncate(self._fd, self._start + self._length)
                if self._sync:
                    _fsync(self._fd)
                if hasattr(os, "posix_fadvise"):
                    # Let the kernel read it back into the page cache in the background: a pull
                    # often follows a push, and cold reads make waitress's loop wait on the disk.
                    os.posix_fadvise(self._fd, self._start, self._length, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(self._fd)


@contextlib.contextmanager
def _output(path: Path, direct: bool, *, sync: bool) -> Iterator[_DirectWriter | BinaryIO]:
    """A new file to write a large object into: O_DIRECT where the filesystem takes it; `sync`:
    on disk when the block ends."""
    writer = None
    if direct:
        try:
            writer = _DirectWriter(path, sync=sync)
        except OSError as exc:
            path.unlink(missing_ok=True)
            if exc.errno != errno.EINVAL:
                raise
    if writer is not None:
        with writer:
            yield writer
        return
    with path.open("xb") as plain:
        yield plain
        plain.flush()
        if sync:
            _fsync(plain.fileno())


def _direct_buffer() -> mmap.mmap:
    buffer: mmap.mmap | None = getattr(_per_thread, "buffer", None)
    if buffer is None:
        buffer = _per_thread.buffer = mmap.mmap(-1, _DIRECT_BLOCK)
    return buffer


def _read_index(path: Path) -> dict[tuple[int, str], tuple[int, int]]:
    """(part number, tag) -> (offset, size) in the data file. A line a crash tore off is skipped, or
    names a part that was never acknowledged (so never listed): only whole lines are looked up."""
    spans: dict[tuple[int, str], tuple[int, int]] = {}
    with contextlib.suppress(FileNotFoundError), path.open(encoding="ascii") as index:
        for line in index:
            fields = line.split()
            if len(fields) == 4 and line.endswith("\n") and all(f.isdigit() for f in (fields[0], *fields[2:])):
                spans[(int(fields[0]), fields[1])] = (int(fields[2]), int(fields[3]))
    return spans


def _whole_file(pieces: list[tuple[Path, int, int]], data_file: Path) -> bool:
    """True when the pieces are `data_file` from its first byte to its last, in order."""
    offset = 0
    for path, first, size in pieces:
        if path != data_file or first != offset:
            return False
        offset += size
    try:
        return bool(pieces) and data_file.stat().st_size == offset
    except FileNotFoundError:
        return False


def _copy_range(path: Path, first: int, size: int, out: _DirectWriter | BinaryIO) -> None:
    with path.open("rb") as source:
        source.seek(first)
        while size > 0:
            block = source.read(min(size, _DIRECT_BLOCK))
            if not block:
                raise BlobUploadUnknown("upload staging was lost; restart the upload")
            out.write(block)
            size -= len(block)


def _url_key(path: Path) -> bytes:
    """The download-URL signing key: read, or created once. Written whole to a temporary file,
    synced, then linked into place (the link fails if another start won the race), so a crash
    never leaves a short key behind."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        if len(key) >= 32:
            return key
        raise OSError(f"{path} is not a signing key")
    tmp = path.with_name(f".url-key-{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path.read_bytes()
