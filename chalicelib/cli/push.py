"""Copy one image (or index, children first) into a registry repository, blob by blob.

Per blob: HEAD (already there: done); POST `?mount=` with `from=` each repository the blob may
already be in (the source repository when it is on the same registry, then `--mount-from`): a 201
means mounted, a 202 is an ordinary session, used for the upload (a failed mount costs nothing).
The upload is PATCH chunks of at most min(`--chunk-size`, `OCI-Chunk-Max-Length`) bytes, each
with `Content-Range`, following the Location each answer gives. A chunk that fails (network
error, 5xx, 416, 429) does not restart the blob: the session is read back with GET, its `Range`
says how much the registry holds, and the source is re-read from there. Only a session the
registry no longer knows (`BLOB_UPLOAD_UNKNOWN`, e.g. expired) starts the blob again, once. The closing PUT
`?digest=` has no body; the registry verifies the digest.

Blobs go through a thread pool (`--jobs`), every unique blob once even when several platforms of
an index share it; manifests are written after all blobs, children before the index that lists
them and the tag last, so a reader never sees a tag whose content is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests

from chalicelib.cli.progress import Progress, Silent
from chalicelib.cli.registry import RegistryClient, RegistryResponseError, UploadSession
from chalicelib.cli.sources import Manifest, Source, SourceError

MIB = 1024 * 1024
_RETRYABLE_STATUS = {408, 416, 429, 500, 502, 503, 504}
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class PushError(RuntimeError):
    """A push that could not finish (after the retries it was allowed)."""


class _SessionGone(PushError):
    """The registry no longer knows the upload session (expired, or cleaned up): start the blob again."""


@dataclass(frozen=True)
class PushOptions:
    chunk_size: int = 16 * MIB
    jobs: int = 4
    retries: int = 5
    backoff_seconds: float = 0.5
    mount_from: tuple[str, ...] = ()


@dataclass
class PushResult:
    digest: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)  # blob digest -> uploaded | mounted | exists
    manifests: list[str] = field(default_factory=list)  # in the order they were written
    chunks: int = 0
    resumes: int = 0
    restarts: int = 0  # blobs started again after their session was gone


def push(
    source: Source,
    dest: RegistryClient,
    repository: str,
    reference: str,
    *,
    options: PushOptions | None = None,
    progress: Progress | None = None,
) -> PushResult:
    options = options or PushOptions()
    progress = progress or Silent()
    root = source.root()
    manifests = _children_first(source, root)
    blobs = {str(d["digest"]): d for m in manifests for d in m.blobs()}
    result = PushResult(digest=root.digest)
    progress.begin(sum(int(d.get("size", 0)) for d in blobs.values()))
    candidates = _mount_candidates(source, dest, repository, options)
    dest.add_scopes(f"repository:{r}:pull" for r in candidates)  # a mount needs pull on its source
    copier = _BlobCopier(
        source, dest, repository, options=options, progress=progress, candidates=candidates, result=result
    )
    with ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="push") as pool:
        futures = [pool.submit(copier.copy, descriptor) for descriptor in blobs.values()]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()  # the first failure, raised here
    for manifest in manifests[:-1]:
        dest.put_manifest(repository, manifest.digest, manifest.media_type, manifest.data)
        result.manifests.append(manifest.digest)
    dest.put_manifest(repository, reference, root.media_type, root.data)
    result.manifests.append(root.digest)
    return result


def _children_first(source: Source, manifest: Manifest, depth: int = 0) -> list[Manifest]:
    if depth > 4:
        raise SourceError("indexes nested deeper than 4 levels")
    ordered: list[Manifest] = []
    for child in manifest.children():
        ordered += _children_first(source, source.manifest(child), depth + 1)
    return [*ordered, manifest]


def _mount_candidates(source: Source, dest: RegistryClient, repository: str, options: PushOptions) -> list[str]:
    found = []
    origin = source.mount_repository
    if origin is not None and origin[0] == dest.host:
        found.append(origin[1])
    found += options.mount_from
    return [r for r in dict.fromkeys(found) if r != repository]


class _BlobCopier:
    def __init__(
        self,
        source: Source,
        dest: RegistryClient,
        repository: str,
        *,
        options: PushOptions,
        progress: Progress,
        candidates: list[str],
        result: PushResult,
    ) -> None:
        self._source = source
        self._dest = dest
        self._repository = repository
        self._options = options
        self._progress = progress
        self._candidates = candidates
        self._result = result
        self._lock = threading.Lock()

    def copy(self, descriptor: dict[str, Any]) -> None:
        digest, size = str(descriptor["digest"]), int(descriptor["size"])
        if self._dest.blob_exists(self._repository, digest):
            outcome = "exists"
        else:
            session = self._mount_or_start(digest)
            try:
                outcome = "mounted" if session is None else self._upload(session, descriptor, digest, size)
            except _SessionGone as gone:  # once: a fresh session from byte 0
                self._progress.note(f"{digest}: {gone}; starting the blob again")
                with self._lock:
                    self._result.restarts += 1
                session = self._mount_or_start(digest)
                outcome = "mounted" if session is None else self._upload(session, descriptor, digest, size)
        self._result.outcomes[digest] = outcome
        self._progress.finish_blob(digest, size, outcome)

    def _mount_or_start(self, digest: str) -> UploadSession | None:
        """None when a mount worked, else the session of the last attempt (the others are cancelled)."""
        attempts: list[str | None] = list(self._candidates) or [None]
        session: UploadSession | None = None
        for source in attempts:
            if session is not None:
                self._dest.cancel(session.location)
            session = self._dest.start_upload(self._repository, digest, source)
            if session is None:
                return None
        return session

    def _upload(self, session: UploadSession, descriptor: dict[str, Any], digest: str, size: int) -> str:
        chunk = self._chunk_size(session)
        location, offset, failures = session.location, 0, 0
        self._progress.start_blob(digest, size)
        reader = _Chunks(self._source.read_blob(descriptor, 0))
        try:
            while offset < size:
                data = reader.take(min(chunk, size - offset))
                try:
                    location, end = self._dest.patch(location, data, offset)
                    with self._lock:
                        self._result.chunks += 1
                    if end == offset + len(data) or (end == 0 and offset + len(data) == 1):
                        offset += len(data)
                        failures = 0
                        self._progress.at(digest, offset)
                        continue
                    problem = f"the registry holds {end} bytes after a chunk ending at {offset + len(data)}"
                except (*_NETWORK_ERRORS, RegistryResponseError) as exc:
                    problem = _retryable(exc, digest)
                failures += 1
                location, offset = self._resume(location, digest, failures, problem)
                reader.close()
                reader = _Chunks(self._source.read_blob(descriptor, offset))
                self._progress.at(digest, offset)
        finally:
            reader.close()
        self._finish(location, digest)
        return "uploaded"

    def _chunk_size(self, session: UploadSession) -> int:
        chunk = self._options.chunk_size
        if session.max_chunk is not None:
            chunk = min(chunk, session.max_chunk)
        if session.min_chunk is not None:
            chunk = max(chunk, min(session.min_chunk, session.max_chunk or session.min_chunk))
        return max(1, chunk)

    def _resume(self, location: str, digest: str, failures: int, problem: str) -> tuple[str, int]:
        """Wait, then read the session's Range: (location, offset to go on from)."""
        while True:
            if failures > self._options.retries:
                raise PushError(f"{digest}: gave up after {self._options.retries} retries: {problem}")
            time.sleep(self._options.backoff_seconds * 2 ** (failures - 1))
            with self._lock:
                self._result.resumes += 1
            try:
                return self._dest.upload_offset(location)
            except (*_NETWORK_ERRORS, RegistryResponseError) as exc:
                problem = _retryable(exc, digest)
            failures += 1

    def _finish(self, location: str, digest: str) -> None:
        """PUT ?digest=; when its answer is lost, a HEAD tells whether it landed."""
        for failures in range(1, self._options.retries + 2):
            try:
                self._dest.finish(location, digest)
                return
            except (*_NETWORK_ERRORS, RegistryResponseError) as exc:
                retryable = not isinstance(exc, RegistryResponseError) or exc.status in _RETRYABLE_STATUS | {404}
                if self._dest.blob_exists(self._repository, digest):
                    return
                if not retryable or failures > self._options.retries:
                    raise PushError(f"{digest}: closing the upload failed: {exc}") from exc
                time.sleep(self._options.backoff_seconds * 2 ** (failures - 1))


def _retryable(exc: Exception, digest: str) -> str:
    """What went wrong, when trying again may help (network trouble, 5xx, 416, 429); else PushError."""
    if isinstance(exc, RegistryResponseError) and exc.code == "BLOB_UPLOAD_UNKNOWN":
        raise _SessionGone(f"the upload session is gone ({exc})") from exc
    if isinstance(exc, RegistryResponseError) and exc.status not in _RETRYABLE_STATUS:
        raise PushError(f"{digest}: {exc}") from exc
    return str(exc)


class _Chunks:
    """Exact-size chunks out of a source's stream of pieces."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()

    def take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            piece = next(self._pieces, None)
            if piece is None:
                raise SourceError(f"the source ended {size - len(self._buffer)} bytes before the blob's size")
            self._buffer += piece
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
