"""The image's file system, rebuilt from its layers for the few files the analysers read.

Layers are applied in order as streams (gzip, zstd or plain tar, told apart by their first bytes,
not by the media type a pusher chose). Only files an analyser asks for (`wanted` says READ) are
kept, with the layer that last wrote them, and files whose presence is all that matters (MARK) are
kept empty; whiteouts of the OCI layer spec apply to the layers below: a
`.wh.<name>` entry deletes `<name>` (and all under it), a `.wh..wh..opq` entry empties its
directory. Paths are normalised (`./` and `/` prefixes dropped); an entry that climbs out with
`..` is ignored.

A layer is untrusted input, so a walk is capped (`Limits`): entries per image, bytes of tar
stream per image, the size of one kept file and of all of them, and the ratio of tar bytes to compressed bytes
(past a floor, so a small layer of zeros is fine). Past a cap the walk stops with LayerRejected:
a scan of a tar bomb fails; it never reports the part it managed to read as the whole.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
RATIO_FLOOR_BYTES = 16 * 1024 * 1024


READ = "read"
MARK = "mark"


class LayerRejected(Exception):
    """A layer that is not a tar stream this walk can read, or that breaks a cap."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_entries: int = 500_000
    max_tar_bytes: int = 8 * 1024**3
    max_file_bytes: int = 64 * 1024 * 1024
    max_kept_bytes: int = 256 * 1024 * 1024
    max_ratio: int = 100


@dataclass(frozen=True, slots=True)
class FoundFile:
    data: bytes
    layer_digest: str
    diff_id: str


@dataclass
class FileSystem:
    """The kept files of the image, by normalised path."""

    files: dict[str, FoundFile] = field(default_factory=dict)
    entries: int = 0
    tar_bytes: int = 0
    kept_bytes: int = 0  # read into memory over the whole walk

    def get(self, path: str) -> FoundFile | None:
        return self.files.get(path)

    def matching(self, predicate: Callable[[str], bool]) -> Iterator[tuple[str, FoundFile]]:
        for path in sorted(self.files):
            if predicate(path):
                yield path, self.files[path]


def normalise(name: str) -> str | None:
    """`./usr/lib/x` -> `usr/lib/x`; None for a path that climbs out of the root."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return None if ".." in parts else "/".join(parts)


def apply_layer(
    filesystem: FileSystem,
    stream: IO[bytes],
    layer_digest: str,
    wanted: Callable[[str], str | None],
    limits: Limits,
) -> str:
    """Apply one layer (a readable stream of its blob) on top of `filesystem`; the layer's
    diff_id (sha256 of its tar stream)."""
    counted = _Counting(stream)
    tar_stream = _Hashing(_decompressed(counted), counted, filesystem, limits)
    changes = _LayerChanges(filesystem, wanted, limits)
    try:
        with tarfile.open(fileobj=tar_stream, mode="r|") as archive:
            for member in archive:
                filesystem.entries += 1
                if filesystem.entries > limits.max_entries:
                    raise LayerRejected(f"the image has more than {limits.max_entries} file entries")
                changes.take(member, archive)
        tar_stream.drain()
    except (tarfile.TarError, EOFError, zlib.error, OSError, zstandard.ZstdError) as failure:
        raise LayerRejected(f"layer {layer_digest} is not a readable tar stream: {failure}") from None
    diff_id = "sha256:" + tar_stream.hexdigest()
    changes.apply(layer_digest, diff_id)
    return diff_id


@dataclass
class _LayerChanges:
    """What one layer does to the kept files; applied once the whole layer has been read (its
    whiteouts act on the layers below, never on its own entries)."""

    filesystem: FileSystem
    wanted: Callable[[str], str | None]
    limits: Limits
    kept: dict[str, bytes] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)

    def take(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        path = normalise(member.name)
        if not path:
            return
        directory, base = posixpath.split(path)
        if base == OPAQUE:
            self.opaque.append(directory)
        elif base.startswith(WHITEOUT):
            self.deleted.append(posixpath.join(directory, base[len(WHITEOUT) :]))
        elif (mode := self.wanted(path) if member.isfile() else None) == MARK:
            self.kept[path] = b""
        elif mode == READ:
            if member.size > self.limits.max_file_bytes:
                raise LayerRejected(f"{path} is larger than {self.limits.max_file_bytes} bytes")
            self.filesystem.kept_bytes += member.size
            if self.filesystem.kept_bytes > self.limits.max_kept_bytes:
                raise LayerRejected(f"the image's package databases exceed {self.limits.max_kept_bytes} bytes")
            reader = archive.extractfile(member)
            self.kept[path] = reader.read() if reader else b""
        else:  # a directory, link or other file now stands where a kept file may have been
            self.kept.pop(path, None)
            if path in self.filesystem.files:
                self.replaced.append(path)

    def apply(self, layer_digest: str, diff_id: str) -> None:
        files = self.filesystem.files
        for directory in self.opaque:
            _remove_under(files, directory, keep_self=True)
        for path in self.deleted:
            _remove_under(files, path, keep_self=False)
        for path in self.replaced:
            files.pop(path, None)
        files.update((path, FoundFile(data, layer_digest, diff_id)) for path, data in self.kept.items())


def _remove_under(files: dict[str, FoundFile], path: str, keep_self: bool) -> None:
    prefix = path + "/" if path else ""
    for name in [n for n in files if n.startswith(prefix) or (not keep_self and n == path)]:
        del files[name]


def _decompressed(raw: _Counting) -> Any:
    """A reader of the tar stream inside the blob (any object with `read(n)`)."""
    head = raw.peek(4)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=cast(Any, raw), mode="rb")
    if head.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(cast(Any, raw), read_across_frames=True)
    return raw


class _Counting:
    """A blob stream that counts what was read and lets the first bytes be looked at."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._head = b""
        self.count = 0

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._stream.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            data = self._stream.read(size)
        elif size < 0:
            data, self._head = self._head + self._stream.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True


class _Hashing:
    """The tar stream: hashed for the diff_id, and checked against the caps as it is read."""

    def __init__(self, stream: Any, raw: _Counting, filesystem: FileSystem, limits: Limits) -> None:
        self._stream = stream
        self._layer_bytes = 0
        self._raw = raw
        self._filesystem = filesystem
        self._limits = limits
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size if size >= 0 else 1024 * 1024)
        self._hash.update(data)
        filesystem, limits = self._filesystem, self._limits
        filesystem.tar_bytes += len(data)
        self._layer_bytes += len(data)
        if filesystem.tar_bytes > limits.max_tar_bytes:
            raise LayerRejected(f"the image's layers unpack to more than {limits.max_tar_bytes} bytes")
        if self._layer_bytes > RATIO_FLOOR_BYTES and self._layer_bytes > limits.max_ratio * max(self._raw.count, 1):
            raise LayerRejected(f"a layer unpacks to more than {limits.max_ratio} times its size")
        return data

    def drain(self) -> None:
        """Read what tarfile left (the end-of-archive padding) so the diff_id covers the whole stream."""
        while self.read(1024 * 1024):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
