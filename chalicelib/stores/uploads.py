"""Upload sessions in DynamoDB, guarded by a lease so that one writer at a time appends.

A writer first *claims* the session at the offset it expects (a conditional update that also
reserves part numbers), writes its bytes to S3 under those reserved numbers, then *commits* the new
state on the condition that it still holds the lease. Two writers can therefore never interleave
bytes: the second gets a failed claim (416 to the client), and a writer whose lease expired cannot
commit, while the part numbers it used are never listed in the final CompleteMultipartUpload.
A session that closes successfully is deleted by the transaction that makes its blob visible
(`BlobMetaStore.record(closing=...)`), not here.
"""

from __future__ import annotations

import secrets
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.models import Chunk, Part, Upload
from chalicelib.stores import keys
from chalicelib.stores.tables import ChunkAttr, PartAttr, UploadRow, delete_where


class LeaseLost(Exception):
    """The session changed under us (another writer, expiry or cancel)."""


class UploadStore:
    def __init__(self, ttl_seconds: int, lease_seconds: int, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._lease = lease_seconds

    def create(self, repository: str, hash_algorithm: str) -> Upload:
        now = int(self._clock())
        upload = Upload(
            id=secrets.token_urlsafe(24),
            repository=repository,
            hash_algorithm=hash_algorithm,
            expires_at=now + self._ttl,
        )
        UploadRow(
            keys.upload_pk(upload.id),
            keys.UPLOAD_SK,
            repository=repository,
            hash_algorithm=hash_algorithm,
            created_at=now,
            expires_at=upload.expires_at,
        ).save(condition=UploadRow.pk.does_not_exist())
        return upload

    def get(self, upload_id: str) -> Upload | None:
        """The session, or None when unknown or past its TTL (DynamoDB deletes expired rows lazily)."""
        try:
            row = UploadRow.get(keys.upload_pk(upload_id), keys.UPLOAD_SK, consistent_read=True)
        except UploadRow.DoesNotExist:
            return None
        if row.expires_at < self._clock():
            return None
        return _to_upload(upload_id, row)

    def claim(self, upload_id: str, offset: int | None, part_numbers: int) -> tuple[Upload, int, str]:
        """Take the lease at `offset` (None: at whatever offset the session has) and reserve
        `part_numbers` part numbers.

        Returns the session as the claim left it, the first reserved number and the lease token;
        raises LeaseLost when the offset moved, another writer holds the lease, or the session is
        gone or expired.
        """
        now = int(self._clock())
        token = secrets.token_hex(8)
        row = UploadRow(keys.upload_pk(upload_id), keys.UPLOAD_SK)
        # `expires_at > now` also fails on a missing row (an absent attribute compares false), so
        # the update never creates one.
        condition = (UploadRow.expires_at > now) & (
            UploadRow.lease_token.does_not_exist() | (UploadRow.lease_until < now)
        )
        if offset is not None:
            condition &= UploadRow.offset == offset
        try:
            row.update(
                actions=[
                    UploadRow.lease_token.set(token),
                    UploadRow.lease_until.set(now + self._lease),
                    UploadRow.next_seq.add(part_numbers),
                ],
                condition=condition,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise LeaseLost(upload_id) from None
            raise
        upload = _to_upload(upload_id, row)
        return upload, upload.next_seq - part_numbers, token

    def commit(self, upload: Upload, token: str) -> None:
        """Persist the new offset, parts and hash state, releasing the lease we hold."""
        self._update_held(upload, token, [UploadRow.lease_token.remove(), UploadRow.lease_until.remove()])

    def checkpoint(self, upload: Upload, token: str, part_numbers: int) -> int:
        """Persist progress made under the lease and keep holding it (a long streamed body): the new
        offset, parts and hash state become durable, the lease is renewed and `part_numbers` more
        part numbers are reserved; returns the first of them. Raises LeaseLost as `commit` does."""
        row = self._update_held(
            upload,
            token,
            [UploadRow.lease_until.set(int(self._clock()) + self._lease), UploadRow.next_seq.add(part_numbers)],
        )
        return int(row.next_seq) - part_numbers

    def _update_held(self, upload: Upload, token: str, lease_actions: list[Any]) -> UploadRow:
        row = UploadRow(keys.upload_pk(upload.id), keys.UPLOAD_SK)
        try:
            row.update(
                actions=[
                    UploadRow.offset.set(upload.offset),
                    UploadRow.parts.set([PartAttr(number=p.number, etag=p.etag, size=p.size) for p in upload.parts]),
                    UploadRow.pending.set([ChunkAttr(key=c.key, size=c.size) for c in upload.pending]),
                    *([UploadRow.multipart_id.set(upload.multipart_id)] if upload.multipart_id else []),
                    *(
                        [UploadRow.hash_state.set(upload.hash_state)]
                        if upload.hash_state
                        else [UploadRow.hash_state.remove()]
                    ),
                    UploadRow.expires_at.set(int(self._clock()) + self._ttl),
                    *lease_actions,
                ],
                condition=UploadRow.lease_token == token,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise LeaseLost(upload.id) from None
            raise
        return row

    def release(self, upload_id: str, token: str) -> None:
        """Give the lease back after a failed write, leaving the committed state untouched."""
        try:
            UploadRow(keys.upload_pk(upload_id), keys.UPLOAD_SK).update(
                actions=[UploadRow.lease_token.remove(), UploadRow.lease_until.remove()],
                condition=UploadRow.lease_token == token,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def delete(self, upload_id: str, token: str | None = None) -> bool:
        condition = UploadRow.pk.exists() if token is None else UploadRow.lease_token == token
        return delete_where(UploadRow(keys.upload_pk(upload_id), keys.UPLOAD_SK), condition)


def _to_upload(upload_id: str, row: UploadRow) -> Upload:
    return Upload(
        id=upload_id,
        repository=row.repository,
        offset=int(row.offset),
        next_seq=int(row.next_seq),
        parts=[Part(int(p.number), p.etag, int(p.size)) for p in row.parts or []],
        pending=[Chunk(c.key, int(c.size)) for c in row.pending or []],
        multipart_id=row.multipart_id,
        hash_algorithm=row.hash_algorithm,
        hash_state=bytes(row.hash_state) if row.hash_state else None,
        expires_at=int(row.expires_at),
    )
