"""Blob uploads: sessions, chunked appends, verification and the move into content-addressed storage.

Design (docs/architecture.md, "The upload data plane"):
- A chunk smaller than a part is staged as its own S3 object; once staged bytes plus the new chunk
  reach `part_size_bytes` (>= S3's 5 MiB minimum), they are read back and uploaded as one multipart
  part. Lambda bodies are capped near 4.5 MB, so this is how chunked pushes become one object.
- The digest is computed incrementally with a resumable hash (`core/hashing.py`) whose state is
  stored with the session, so the closing PUT verifies without reading the blob back. When that is
  unavailable (or the client picked another algorithm at the end), the assembled object is re-hashed
  from S3 instead.
- Bytes reach `blobs/<alg>/<hex>` only after verification, and a blob row is written only after the
  bytes are there: nothing unverified is ever visible.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

from chalicelib.core.digest import Digest
from chalicelib.core.hashing import ResumableHash, available
from chalicelib.core.models import Chunk, Part, Upload
from chalicelib.core.reference import project_of
from chalicelib.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, QuotaExceeded, RangeInvalid
from chalicelib.stores import keys

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.services.quotas import QuotaService
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.objects import ObjectStore
    from chalicelib.stores.uploads import UploadStore

_MAX_PART_NUMBER = 10_000
# How much of a streamed body is read (and hashed) at a time.
_STREAM_BLOCK = 1024**2
# A streamed body's progress is made durable (and its lease renewed) after each part once this much
# has arrived since the last time, or this many seconds have passed: one write per part cost 20 ms
# of moto's CPU per 8 MiB locally, and resuming 32 MiB earlier costs a client little.
_CHECKPOINT_BYTES = 32 * 1024**2
_CHECKPOINT_SECONDS = 10.0
# How often a request waiting to hand a block to a full part feed checks that its writer still runs.
_FEED_POLL_SECONDS = 0.05
# S3 parts are at most 5 GiB; a larger single request body is split into parts of this size.
_MAX_PART_BYTES = 1024**3


class UploadService:
    def __init__(
        self,
        uploads: UploadStore,
        objects: ObjectStore,
        blobs: BlobMetaStore,
        quota: QuotaService,
        settings: Settings,
    ) -> None:
        self._uploads = uploads
        self._objects = objects
        self._blobs = blobs
        self._quota = quota
        self._part_size = settings.part_size_bytes
        self._auto_mount = settings.auto_mount

    def start(self, repository: str, hash_algorithm: str = "sha256") -> Upload:
        if hash_algorithm not in ("sha256", "sha512"):
            raise DigestInvalid(f"unsupported digest algorithm {hash_algorithm!r}")
        return self._uploads.create(repository, hash_algorithm)

    def status(self, repository: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.repository != repository:
            raise BlobUploadUnknown(detail={"upload": upload_id})
        return upload

    def append(
        self, repository: str, upload_id: str, data: bytes, *, content_range: tuple[int, int] | None, location: str
    ) -> Upload:
        """Append one chunk (PATCH). `content_range` is inclusive; None means "at the current end".

        The session is not read first: the claim (one conditional write) returns it, and what it
        shows (repository, offset) is checked under the lease, which is given back on a mismatch.
        """
        if not data:
            return self._append(self.status(repository, upload_id), data, content_range, location)
        pieces = max(1, -(-len(data) // _MAX_PART_BYTES))
        claimed, seq, token = self._claim(upload_id, None, pieces, location, repository)
        if content_range is not None:
            try:
                self._check_range(claimed, data, content_range, location)
            except RangeInvalid:
                self._uploads.release(upload_id, token)
                raise
        return self._write_under_lease(claimed, seq, token, data, location, streamed=content_range is None)

    def _append(self, upload: Upload, data: bytes, content_range: tuple[int, int] | None, location: str) -> Upload:
        if content_range is not None:
            self._check_range(upload, data, content_range, location)
        if not data:
            return upload
        return self._append_claimed(upload, data, location, streamed=content_range is None)

    def finish(
        self,
        repository: str,
        upload_id: str,
        digest_text: str,
        data: bytes,
        *,
        content_range: tuple[int, int] | None,
        location: str,
    ) -> str:
        """Close the upload (PUT ?digest=): verify, move into place, make the blob visible.

        A PUT that carries the whole blob (containerd's monolithic push) is verified in memory and
        written once, without staging.
        """
        digest = Digest.parse(digest_text)
        whole_body = False
        if data or content_range is not None:
            upload = self.status(repository, upload_id)
            whole_body = upload.offset == 0 and bool(data)
            if not whole_body:
                upload = self._append(upload, data, content_range, location)
            elif content_range is not None:
                self._check_range(upload, data, content_range, location)
            upload, seq, token = self._claim(upload.id, upload.offset, 1, location)
        else:
            # The common close (docker, podman, skopeo): no body, so no read before the claim.
            upload, seq, token = self._claim(upload_id, None, 1, location, repository)
        completed = False
        try:
            # Making the blob visible also deletes the session row, in the same write.
            if whole_body:
                self._store_verified_bytes(repository, digest, _checked(data, digest), closing=upload.id)
            else:
                completed = self._verify_and_store(upload, digest, seq)
        except (DigestInvalid, QuotaExceeded):
            # Neither can succeed on a retry of this session (the multipart upload may already be
            # complete): its bytes go now, not when the TTL and the lifecycle rule come.
            self._discard(upload)
            self._uploads.delete(upload.id)
            raise
        except BaseException:
            self._uploads.release(upload.id, token)
            raise
        self._discard(upload, completed=completed)
        return str(digest)

    def append_stream(
        self,
        repository: str,
        upload_id: str,
        body: BodyReader,
        *,
        length: int | None,
        content_range: tuple[int, int] | None,
        location: str,
    ) -> Upload:
        """Append a body of any size (the relay's PATCH), read from `body` in bounded memory.

        The bytes are hashed as they arrive and written as multipart parts of `part_size_bytes`;
        after each part the session's offset, parts and hash state are made durable (the lease is
        kept and renewed), so a body cut off midway leaves a session that resumes from the last
        whole part. The tail (less than a part) is staged like a Lambda chunk when the body ends.
        `length` is the body's announced length (None: chunked transfer encoding); a `body` that
        ends early raises, and nothing after the last durable part is kept.
        """
        if length is not None and content_range is not None and content_range[1] - content_range[0] + 1 != length:
            current = self.status(repository, upload_id)
            raise RangeInvalid("Content-Range does not match the body length", location=location, offset=current.offset)
        offset = content_range[0] if content_range is not None else None
        reserve = _StreamWriter.parts_between_checkpoints(self._part_size)
        claimed, seq, token = self._claim(upload_id, offset, reserve, location, repository)
        return _StreamWriter(self, claimed, seq, token, location).run(body)

    def finish_stream(
        self,
        repository: str,
        upload_id: str,
        digest_text: str,
        body: BodyReader,
        *,
        length: int | None,
        content_range: tuple[int, int] | None,
        location: str,
    ) -> str:
        """Close an upload whose PUT may carry a body of any size (containerd's one-PUT push):
        stream the body in as `append_stream` does, then verify and publish as `finish` does."""
        Digest.parse(digest_text)  # a malformed digest is refused before any byte is read
        if length != 0 or content_range is not None:
            self.append_stream(
                repository, upload_id, body, length=length, content_range=content_range, location=location
            )
        return self.finish(repository, upload_id, digest_text, b"", content_range=None, location=location)

    def put_monolithic(self, repository: str, digest_text: str, data: bytes) -> str:
        """POST ?digest= (single-request upload): verify in memory, write once."""
        digest = Digest.parse(digest_text)
        if hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
            raise DigestInvalid("content does not match digest", {"digest": str(digest)})
        self._store_verified_bytes(repository, digest, data)
        return str(digest)

    def cancel(self, repository: str, upload_id: str) -> None:
        upload = self.status(repository, upload_id)
        self._discard(upload)
        self._uploads.delete(upload.id)

    def mount(self, repository: str, digest_text: str, source: str | None) -> bool:
        """Cross-repository mount: link an existing blob without copying bytes.

        With `from`, only a blob the source repository can see is mounted; without it, any
        verified blob is, if automatic content discovery is enabled.
        """
        digest = str(Digest.parse(digest_text))
        if source is not None:
            size = self._blobs.stat(source, digest)
        elif self._auto_mount:
            size = self._blobs.global_size(digest)
        else:
            return False
        if size is None:
            return False
        self._make_visible(repository, digest, size, None, present=True)
        return True

    def link_existing(self, repository: str, digest_text: str) -> bool:
        """Link a blob this registry already holds (for any repository) into `repository`, quota
        charged; False when it holds none. For callers that checked the repository may see it
        (a proxy-cache pull the upstream confirmed), never for a client's mount request."""
        digest = str(Digest.parse(digest_text))
        size = self._blobs.global_size(digest)
        if size is None:
            return False
        self._make_visible(repository, digest, size, None, present=True)
        return True

    # Internals.

    @staticmethod
    def _check_range(upload: Upload, data: bytes, content_range: tuple[int, int], location: str) -> None:
        first, last = content_range
        if last - first + 1 != len(data):
            raise RangeInvalid("Content-Range does not match the body length", location=location, offset=upload.offset)
        if first != upload.offset:
            raise RangeInvalid(
                f"chunk starts at {first} but the upload holds {upload.offset} bytes",
                location=location,
                offset=upload.offset,
            )

    def _claim(
        self, upload_id: str, offset: int | None, parts: int, location: str, repository: str | None = None
    ) -> tuple[Upload, int, str]:
        """Take the session's lease (at `offset`, or wherever it stands when None) and reserve part
        numbers; with `repository`, a session of another repository is given back and unknown."""
        from chalicelib.stores.uploads import LeaseLost  # noqa: PLC0415 (exception type only)

        try:
            claimed, seq, token = self._uploads.claim(upload_id, offset, parts)
        except LeaseLost:
            current = self._uploads.get(upload_id)
            if current is None or (repository is not None and current.repository != repository):
                raise BlobUploadUnknown(detail={"upload": upload_id}) from None
            raise RangeInvalid(
                "another request is writing to this upload or it moved on; check its status",
                location=location,
                offset=current.offset,
            ) from None
        if repository is not None and claimed.repository != repository:
            self._uploads.release(upload_id, token)
            raise BlobUploadUnknown(detail={"upload": upload_id})
        if seq + parts - 1 > _MAX_PART_NUMBER:
            self._uploads.release(upload_id, token)
            raise BlobUploadInvalid("too many chunks in one upload; send larger chunks")
        return claimed, seq, token

    def _append_claimed(self, upload: Upload, data: bytes, location: str, *, streamed: bool) -> Upload:
        pieces = max(1, -(-len(data) // _MAX_PART_BYTES))
        claimed, seq, token = self._claim(upload.id, upload.offset, pieces, location)
        return self._write_under_lease(claimed, seq, token, data, location, streamed=streamed)

    def _write_under_lease(
        self, claimed: Upload, seq: int, token: str, data: bytes, location: str, *, streamed: bool
    ) -> Upload:
        from chalicelib.stores.uploads import LeaseLost  # noqa: PLC0415

        try:
            updated = self._write(claimed, seq, data, streamed=streamed)
            self._uploads.commit(updated, token)
        except LeaseLost:
            raise RangeInvalid(
                "the upload changed during this request", location=location, offset=claimed.offset
            ) from None
        except BaseException:
            self._uploads.release(claimed.id, token)
            raise
        # Staged chunks folded into the part are no longer referenced by the committed state.
        folded = [c.key for c in claimed.pending if c not in updated.pending]
        _delete_staging(self._objects, folded)
        return updated

    def _write(self, upload: Upload, seq: int, data: bytes, *, streamed: bool) -> Upload:
        """Stage or upload `data` under reserved part numbers; returns the new (uncommitted) state."""
        hash_state = self._advance_hash(upload, data)
        parts = list(upload.parts)
        pending = list(upload.pending)
        multipart_id = upload.multipart_id
        if upload.offset == 0 and streamed:
            # A first chunk sent without Content-Range is how docker, podman and skopeo stream a
            # whole blob in one request: it goes to the content address of its own bytes, and the
            # closing PUT only has to check that this is the digest it names (no copy). The object
            # is invisible until a blob row exists, and its bytes match its key by construction (S3
            # checks the SHA-256 on write). Chunked clients (Content-Range) stage as usual.
            pending.append(self._stage_content_addressed(upload.hash_algorithm, hash_state, data))
        elif upload.pending_bytes + len(data) < self._part_size:
            key = f"{keys.upload_prefix(upload.id)}chunk-{seq}"
            self._objects.put(key, data)
            pending.append(Chunk(key, len(data)))
        else:
            body = b"".join(self._objects.get(c.key) for c in pending) + data
            pending = []
            data_key = _data_key(upload.id)
            if multipart_id is None:
                multipart_id = self._objects.start_multipart(data_key)
            for index, first in enumerate(range(0, len(body), _MAX_PART_BYTES)):
                piece = body[first : first + _MAX_PART_BYTES]
                etag = self._objects.upload_part(data_key, multipart_id, seq + index, piece)
                parts.append(Part(seq + index, etag, len(piece)))
        return replace(
            upload,
            offset=upload.offset + len(data),
            parts=parts,
            pending=pending,
            multipart_id=multipart_id,
            hash_state=hash_state,
        )

    def _stage_content_addressed(self, algorithm: str, hash_state: bytes | None, data: bytes) -> Chunk:
        # The running hash already covers exactly these bytes: no second pass over them.
        restored = ResumableHash.restore(algorithm, hash_state) if hash_state else None
        hexdigest = restored.hexdigest() if restored else hashlib.new(algorithm, data).hexdigest()
        digest = f"{algorithm}:{hexdigest}"
        key = keys.blob_object_key(digest)
        if self._blobs.global_size(digest) is None:
            self._objects.put(key, data, sha256_hex=digest.partition(":")[2] if algorithm == "sha256" else None)
        return Chunk(key, len(data))

    @staticmethod
    def _advance_hash(upload: Upload, data: bytes) -> bytes | None:
        algorithm = upload.hash_algorithm
        if not available(algorithm):
            return None
        if upload.hash_state is None:
            if upload.offset:
                return None  # an earlier chunk could not be hashed: re-hash at the end
            hasher: ResumableHash | None = ResumableHash(algorithm)
        else:
            hasher = ResumableHash.restore(algorithm, upload.hash_state)
        if hasher is None:
            return None
        hasher.update(data)
        return hasher.state()

    def _verify_and_store(self, upload: Upload, digest: Digest, tail_part: int) -> bool:
        """Verify the upload against `digest` and make the blob visible, deleting the session row in
        the same write; True if the multipart upload was completed (nothing left to abort)."""
        closing = upload.id
        if upload.offset == 0:
            self._store_verified_bytes(upload.repository, digest, _checked(b"", digest), closing=closing)
            return False
        incremental = None
        if upload.hash_state and upload.hash_algorithm == digest.algorithm:
            restored = ResumableHash.restore(digest.algorithm, upload.hash_state)
            incremental = restored.hexdigest() if restored else None
        if incremental is not None and incremental != digest.hex:
            raise DigestInvalid("content does not match digest", {"digest": str(digest)})
        if not upload.parts and len(upload.pending) == 1 and upload.pending[0].key == keys.blob_object_key(str(digest)):
            # One chunk, already at this digest's address: its bytes hash to the digest by construction.
            self._make_visible(upload.repository, str(digest), upload.offset, None, closing=closing)
            return False
        if not upload.parts:
            # Everything is staged in small chunks (< one part): assemble in memory.
            body = b"".join(self._objects.get(c.key) for c in upload.pending)
            self._store_verified_bytes(upload.repository, digest, _checked(body, digest), closing=closing)
            return False
        if incremental is not None:
            held, unlimited = self._blobs.probe(str(digest), project_of(upload.repository))
            if held is not None:
                # Deduplicated: the bytes are already stored under this digest.
                self._make_visible(upload.repository, str(digest), upload.offset, None, closing=closing,
                                   unlimited=unlimited, present=True)  # fmt: skip
                return False
        else:
            unlimited = False
        data_key = _data_key(upload.id)
        self._complete_multipart(upload, data_key, tail_part)
        if incremental is None:
            _checked_stream(self._objects.iter_bytes(data_key), digest)
        self._make_visible(
            upload.repository, str(digest), upload.offset,
            lambda: self._objects.copy(data_key, keys.blob_object_key(str(digest)), upload.offset),
            closing=closing, unlimited=unlimited,
        )  # fmt: skip
        return True

    def _complete_multipart(self, upload: Upload, data_key: str, tail_part: int) -> None:
        assert upload.multipart_id is not None
        parts = [(p.number, p.etag) for p in upload.parts]
        if upload.pending:
            # The remainder becomes the last part (S3 allows a short last part).
            tail = b"".join(self._objects.get(c.key) for c in upload.pending)
            parts.append((tail_part, self._objects.upload_part(data_key, upload.multipart_id, tail_part, tail)))
        self._objects.complete_multipart(data_key, upload.multipart_id, parts)

    def _store_verified_bytes(
        self, repository: str, digest: Digest, data: bytes, *, closing: str | None = None
    ) -> None:
        digest_text = str(digest)
        write = None
        held, unlimited = self._blobs.probe(digest_text, project_of(repository))
        if held is None:
            sha256 = digest.hex if digest.algorithm == "sha256" else None
            write = partial(self._objects.put, keys.blob_object_key(digest_text), data, sha256_hex=sha256)
        self._make_visible(repository, digest_text, len(data), write, closing=closing, unlimited=unlimited,
                           present=held is not None)  # fmt: skip

    def _make_visible(self, repository: str, digest: str, size: int, write: Callable[[], None] | None, *,
                      closing: str | None = None, unlimited: bool = False, present: bool = False) -> None:  # fmt: skip
        """Charge the project's quota, write the bytes if needed, then the blob row and link (and,
        with `closing`, delete that upload session in the same transaction).

        The quota is charged first so a push over the limit costs no S3 write; a failure after the
        charge gives it back. `unlimited` and `present` are what a read earlier in this request
        found (the project has no limit, the blob row exists): they save the reads or the failed
        insert that would find out again.
        """
        project = project_of(repository)
        charged = self._quota.charge(project, digest, size, repository, unlimited=unlimited)
        try:
            if write is not None:
                write()
            self._blobs.record(digest, size, repository, closing=closing, present=present)
        except BaseException:
            if charged:
                self._quota.release(project, digest)
            raise

    def _discard(self, upload: Upload, *, completed: bool = False) -> None:
        """Drop the session's staging objects (the bucket lifecycle rule is the safety net).

        A completed multipart upload has nothing left to abort; an unfinished one must be aborted
        or S3 keeps (and bills) its parts.
        """
        staged = [c.key for c in upload.pending]
        if upload.multipart_id:
            if not completed:
                self._objects.abort_multipart(_data_key(upload.id), upload.multipart_id)
            staged.append(_data_key(upload.id))
        _delete_staging(self._objects, staged)


class BodyReader(Protocol):
    """A request body as a server hands it over: `read(n)` gives at most n bytes, b"" at its end."""

    def read(self, size: int, /) -> bytes: ...


class _StreamWriter:
    """One streamed body under one lease: fill a part, write it, checkpoint, repeat.

    Parts are written by a thread of their own while the next bytes are read from the client, so
    the network and the object store work at the same time (one part in flight at most). Where the
    store takes parts of any size (`min_part_bytes` 0: the local file store), each part is written
    while it arrives (a `_PartFeed`), so the body is on disk moments after its last byte. Where it
    does not (S3), a part's bytes are gathered first, because bytes left after the last full part
    may have to be staged instead. Memory is about two parts either way (plus staged bytes carried
    over from earlier chunks, less than a part)."""

    def __init__(self, service: UploadService, claimed: Upload, seq: int, token: str, location: str) -> None:
        self._service = service
        self._uploads = service._uploads
        self._objects = service._objects
        self._part_size = service._part_size
        self._streams_parts = self._objects.min_part_bytes == 0
        self._state = claimed
        self._number = seq
        self._reserved_end = seq + self.parts_between_checkpoints(self._part_size)
        self._token = token
        self._location = location
        self._hasher = _resume_hasher(claimed)
        self._carried = list(claimed.pending)  # staged bytes this stream folds into its first part
        self._folded: list[Chunk] = []  # those of them in a part that is not durable yet
        self._buffer = bytearray()  # the part's bytes, when they are gathered before it is written
        self._feed: _PartFeed | None = None  # the part being written as it arrives, when streamed
        self._filled = 0  # bytes in the current part
        self._fresh = 0  # of them, bytes that arrived in this request
        self._durable_offset = claimed.offset
        self._durable_at = time.monotonic()
        self._writer: ThreadPoolExecutor | None = None
        # The part being written: (its write, number, size, new bytes in it, hash state after it).
        self._inflight: tuple[Future[str], int, int, int, bytes | None] | None = None

    @staticmethod
    def parts_between_checkpoints(part_size: int) -> int:
        """Part numbers reserved at a time: enough for the parts between two checkpoints."""
        return max(1, -(-_CHECKPOINT_BYTES // part_size))

    def run(self, body: BodyReader) -> Upload:
        from chalicelib.stores.uploads import LeaseLost  # noqa: PLC0415 (exception type only)

        try:
            # Staged chunks lead the first part, read once the body is known to bring bytes.
            unread = sum(chunk.size for chunk in self._carried)
            while True:
                if self._filled >= self._part_size:
                    self._flush_part()
                # At least a byte: staged chunks can outgrow a part size lowered since they were staged.
                block = body.read(max(1, min(_STREAM_BLOCK, self._part_size - self._filled - unread)))
                if not block:
                    break
                if unread:
                    for chunk in self._carried:
                        self._add(self._objects.get(chunk.key))
                    unread = 0
                if self._hasher is not None:
                    self._hasher.update(block)
                self._add(block)
                self._fresh += len(block)
            self._await_part()
            self._end_tail()
            self._uploads.commit(self._state, self._token)
        except LeaseLost:
            raise RangeInvalid(
                "the upload changed during this request", location=self._location, offset=self._durable_offset
            ) from None
        except BaseException:
            if self._feed is not None:
                self._feed.abort()
            if self._inflight is not None:
                self._inflight[0].exception()  # let the write end; the part is not listed anywhere
            self._uploads.release(self._state.id, self._token)
            raise
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
        self._drop_folded()
        return self._state

    def _add(self, data: bytes) -> None:
        """Bytes of the current part: to its feed (the part's write starts with its first bytes),
        or to the buffer."""
        if self._streams_parts:
            if self._feed is None:
                self._feed = _PartFeed(
                    self._writer_pool(), self._objects, _data_key(self._state.id), self._multipart_id(), self._number,
                    max_blocks=max(2, self._part_size // _STREAM_BLOCK),
                )  # fmt: skip
            self._feed.put(data)
        else:
            self._buffer += data
        self._filled += len(data)

    def _flush_part(self, *, last: bool = False) -> None:
        """End the current part: its write is handed to (or finished by) the writer thread, after the
        part before it is written; then a checkpoint when one is due, unless this is the request's
        `last` part (its commit follows)."""
        if self._number > _MAX_PART_NUMBER:
            raise BlobUploadInvalid("too many chunks in one upload; send larger chunks")
        self._await_part()
        if self._feed is not None:
            write, self._feed = self._feed.close(), None
        else:
            write = self._writer_pool().submit(
                self._objects.upload_part, _data_key(self._state.id), self._multipart_id(), self._number, self._buffer
            )
        hash_state = self._hasher.state() if self._hasher is not None else None
        self._inflight = (write, self._number, self._filled, self._fresh, hash_state)
        queued = self._state.offset + self._fresh
        self._buffer = bytearray()
        self._filled = self._fresh = 0
        self._number += 1
        self._folded, self._carried = self._folded + self._carried, []
        if not last and (
            self._number >= self._reserved_end
            or queued - self._durable_offset >= _CHECKPOINT_BYTES
            or time.monotonic() - self._durable_at >= _CHECKPOINT_SECONDS
        ):
            self._checkpoint()

    def _await_part(self) -> None:
        """Wait for the part in flight and add it to the session's state."""
        if self._inflight is None:
            return
        write, number, size, fresh, hash_state = self._inflight
        self._inflight = None
        etag = write.result()
        state = self._state
        self._state = replace(
            state,
            offset=state.offset + fresh,
            parts=[*state.parts, Part(number, etag, size)],
            pending=[],
            hash_state=hash_state,
        )

    def _checkpoint(self) -> None:
        """Make the parts so far durable, renew the lease and reserve the next part numbers."""
        self._await_part()
        reserve = self.parts_between_checkpoints(self._part_size)
        self._number = self._uploads.checkpoint(self._state, self._token, reserve)
        self._reserved_end = self._number + reserve
        self._durable_offset, self._durable_at = self._state.offset, time.monotonic()
        self._drop_folded()

    def _drop_folded(self) -> None:
        """Staged chunks folded into a part that is now durable are no longer referenced."""
        if self._folded:
            _delete_staging(self._objects, [c.key for c in self._folded])
            self._folded = []

    def _end_tail(self) -> None:
        """Keep the bytes after the last full part: as one more part when the store takes a part
        that small in the middle of an upload (the file store takes any size; S3 from 5 MiB), so
        the closing PUT has nothing left to copy; else staged, as the Lambda path stages a small
        chunk. A part number is always left for it: a full part that uses the last one reserved
        ends in a checkpoint, which reserves more."""
        if not self._fresh:
            return
        if self._feed is not None or len(self._buffer) >= max(1, self._objects.min_part_bytes):
            self._flush_part(last=True)
            self._await_part()
            return
        state = self._state
        tail = memoryview(self._buffer)[len(self._buffer) - self._fresh :]
        key = f"{keys.upload_prefix(state.id)}chunk-{self._number}"
        self._objects.put(key, bytes(tail))
        self._state = replace(
            state,
            offset=state.offset + self._fresh,
            pending=[*state.pending, Chunk(key, self._fresh)],
            hash_state=self._hasher.state() if self._hasher is not None else None,
        )

    def _writer_pool(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-writer")
        return self._writer

    def _multipart_id(self) -> str:
        """The session's multipart upload, started on its first part."""
        if self._state.multipart_id is None:
            started = self._objects.start_multipart(_data_key(self._state.id))
            self._state = replace(self._state, multipart_id=started)
        return str(self._state.multipart_id)


class _FeedAborted(Exception):
    """The request ended before its part did: the part is not written (nothing lists it)."""


class _PartFeed:
    """A part written while its bytes arrive: the request thread puts blocks, the writer thread's
    `upload_part_stream` takes them. The queue is bounded, so a disk slower than the client slows
    the reading instead of filling memory; a writer that failed is reported to the next `put`."""

    _END = object()
    _ABORT = object()

    def __init__(
        self, writer: ThreadPoolExecutor, objects: ObjectStore, key: str, multipart_id: str, number: int, *,
        max_blocks: int,
    ) -> None:  # fmt: skip
        self._queue: queue.Queue[object] = queue.Queue(max_blocks)
        self._write = writer.submit(objects.upload_part_stream, key, multipart_id, number, self._blocks())

    def _blocks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if item is self._ABORT:
                raise _FeedAborted
            assert isinstance(item, bytes)
            yield item

    def put(self, block: bytes) -> None:
        self._put(block)

    def close(self) -> Future[str]:
        """No more bytes: the part's write, which ends once the writer has taken them all."""
        self._put(self._END)
        return self._write

    def abort(self) -> None:
        """Stop the write without a part; waits for the writer to let go of it."""
        with contextlib.suppress(Exception):
            self._put(self._ABORT)
        with contextlib.suppress(BaseException):
            self._write.exception()

    def _put(self, item: object) -> None:
        while True:
            try:
                self._queue.put(item, timeout=_FEED_POLL_SECONDS)
                return
            except queue.Full:
                if self._write.done():
                    self._write.result()  # the writer's failure
                    raise BlobUploadInvalid("the part writer stopped before its part ended") from None


def _resume_hasher(upload: Upload) -> ResumableHash | None:
    """The running hash of a session's bytes so far, or None when it cannot be kept (the closing
    PUT then re-hashes the assembled object)."""
    if not available(upload.hash_algorithm):
        return None
    if upload.hash_state is None:
        return ResumableHash(upload.hash_algorithm) if upload.offset == 0 else None
    return ResumableHash.restore(upload.hash_algorithm, upload.hash_state)


def _delete_staging(objects: ObjectStore, staged: list[str]) -> None:
    """Delete staging objects, never a content-addressed one: another upload or a blob may own it
    (an unreferenced one is garbage collection's to remove)."""
    removable = [k for k in staged if not k.startswith(keys.BLOBS_PREFIX)]
    if removable:
        objects.delete(*removable)


def _data_key(upload_id: str) -> str:
    return f"{keys.upload_prefix(upload_id)}data"


def _checked(data: bytes, digest: Digest) -> bytes:
    if hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
        raise DigestInvalid("content does not match digest", {"digest": str(digest)})
    return data


def _checked_stream(blocks: Iterable[bytes], digest: Digest) -> None:
    hasher = hashlib.new(digest.algorithm)
    for block in blocks:
        hasher.update(block)
    if hasher.hexdigest() != digest.hex:
        raise DigestInvalid("content does not match digest", {"digest": str(digest)})
