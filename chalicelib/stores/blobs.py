"""Blob metadata: global blob rows, repository links and project-blob rows (keys in `keys.py`).

The GC side of every blob write lives here (Harbor's non-blocking protocol, docs/operations.md):
a blob row moves between `none`, `delete` (GC candidate), `deleting` (claimed by a
sweep), `deletefailed` and `deleted` (a tombstone) only by conditional writes on `state` and
`version`. Clients "touch" a blob (back to `none`, version + 1) before they rely on it, so a sweep
that marked it earlier loses its conditional claim; a blob already claimed is reported missing
and the client uploads it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import UNLIMITED
from chalicelib.errors import BlobUnknown
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    BlobRow,
    LinkRow,
    UploadRow,
    batch_get_raw,
    condition_failed,
    delete_where,
    raw_storage_limit,
    write_transaction,
)

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore

# Blobs in these GC states are invisible: a sweep has claimed them (Harbor's GC protocol).
_HIDDEN_STATES = frozenset({"deleting", "deletefailed", "deleted"})
# States whose bytes may be gone: an upload that lands on one checks the object before reviving it.
_MAYBE_GONE = frozenset({"deletefailed", "deleted"})


class BlobMetaStore:
    def __init__(self, objects: ObjectStore | None = None, touch_older_than_seconds: int = 3600,
                 clock: Clock = system_clock) -> None:  # fmt: skip
        self._clock = clock
        self._objects = objects
        # A manifest PUT touches a referenced blob only when it is a GC candidate or has not been
        # touched for this long (half the GC window): a GC run marks only blobs untouched for a whole
        # window, so a fresher blob cannot be claimed while the PUT that read it is still running.
        self._touch_age = touch_older_than_seconds

    def stat(self, repository: str, digest: str) -> int | None:
        """The blob's size if `repository` may see it; one BatchGetItem (link + blob row).

        A blob a GC run has marked (`delete`) is touched, which takes it out of that run; any other
        state costs no write, so HEAD normally stays write-free."""
        items = batch_get_raw([(keys.repo_pk(repository), keys.link_sk(digest)), (keys.blob_pk(digest), keys.BLOB_SK)])
        if len(items) != 2:
            return None
        blob = BlobRow.from_raw_data(next(i for i in items if i["sk"]["S"] == keys.BLOB_SK))
        if blob.state == "delete" and not self._touch(blob):
            return self.global_size(digest)
        return None if blob.state in _HIDDEN_STATES else int(blob.size)

    def protect(self, digests: list[str]) -> list[str]:
        """Make sure no GC sweep deletes these blobs (a manifest about to reference them); returns
        those already gone or being deleted. One BatchGetItem per 100; a write only for blobs that
        are GC candidates or were not touched for half a window."""
        stale = int(self._clock()) - self._touch_age
        items = batch_get_raw([(keys.blob_pk(d), keys.BLOB_SK) for d in digests])
        rows = {i["pk"]["S"].removeprefix(keys.BLOB_PREFIX): BlobRow.from_raw_data(i) for i in items}
        missing: list[str] = []
        for digest in dict.fromkeys(digests):
            row = rows.get(digest)
            if row is None or row.state in _HIDDEN_STATES or not self._fresh(row, stale):
                missing.append(digest)
        return missing

    def _fresh(self, row: BlobRow, stale: int) -> bool:
        """True once the row is safe from any GC run in progress (touched now if it had to be)."""
        if row.state == "none" and int(row.updated_at) > stale:
            return True
        return self._touch(row) or self._touch_current(row.pk.removeprefix(keys.BLOB_PREFIX))

    def _touch_current(self, digest: str) -> bool:
        try:
            row = BlobRow.get(keys.blob_pk(digest), keys.BLOB_SK, consistent_read=True)
        except BlobRow.DoesNotExist:
            return False
        return row.state not in _HIDDEN_STATES and self._touch(row)

    def _touch(self, row: BlobRow) -> bool:
        """Back to `none` with a new version and update time, if nobody changed the row meanwhile."""
        try:
            row.update(
                actions=[
                    BlobRow.state.set("none"),
                    BlobRow.version.set(int(row.version) + 1),
                    BlobRow.updated_at.set(int(self._clock())),
                    BlobRow.expires_at.remove(),
                ],
                condition=(BlobRow.state == row.state) & (BlobRow.version == int(row.version)),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def probe(self, digest: str, project: str) -> tuple[int | None, bool]:
        """What closing an upload needs to know, in one BatchGetItem: the size of the verified blob
        if the registry holds it (as `global_size`), and whether `project` is known to have no
        storage limit (its quota warning then needs no read after the charge; a project not found
        counts as limited, so the charge decides as it would without this read)."""
        items = batch_get_raw([(keys.blob_pk(digest), keys.BLOB_SK), (keys.project_pk(project), keys.ENTITY_SK)])
        size: int | None = None
        unlimited = False
        for item in items:
            if item["sk"]["S"] == keys.BLOB_SK:
                blob = BlobRow.from_raw_data(item)
                size = None if blob.state in _HIDDEN_STATES else int(blob.size)
            else:
                unlimited = raw_storage_limit(item) == UNLIMITED
        return size, unlimited

    def global_size(self, digest: str) -> int | None:
        """Size of a verified blob anywhere in the registry (dedupe and automatic mount)."""
        try:
            blob = BlobRow.get(keys.blob_pk(digest), keys.BLOB_SK)
        except BlobRow.DoesNotExist:
            return None
        return None if blob.state in _HIDDEN_STATES else int(blob.size)

    def icon_size(self, digest: str) -> int | None:
        """Size of a visible blob that some pushed artifact uses as its icon (one GetItem)."""
        try:
            blob = BlobRow.get(keys.blob_pk(digest), keys.BLOB_SK)
        except BlobRow.DoesNotExist:
            return None
        return None if blob.state in _HIDDEN_STATES or not blob.icon else int(blob.size)

    def mark_icon(self, digest: str) -> None:
        """Flag a blob as an artifact's icon; a blob GC already removed stays removed."""
        try:
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK).update(
                actions=[BlobRow.icon.set(True)], condition=BlobRow.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def linked(self, repository: str, digests: list[str]) -> dict[str, int]:
        """Digest -> size of those of `digests` the repository can see, in batches of 100."""
        pk = keys.repo_pk(repository)
        items = batch_get_raw([(pk, keys.link_sk(d)) for d in digests])
        return {item["sk"]["S"].removeprefix(keys.BLOB_PREFIX): int(item["size"]["N"]) for item in items}

    def record(self, digest: str, size: int, repository: str, *, closing: str | None = None,
               present: bool = False) -> None:  # fmt: skip
        """Make a verified blob visible in `repository`: the global blob row (once) and the link;
        with `closing`, that upload session's row goes in the same transaction (the one write
        that ends a push's blob PUT: the session is gone exactly when the blob is visible).

        An existing row is touched (Harbor's probe on blob PUT). While a sweep is deleting the blob
        the upload is refused (404, the client uploads again); over a tombstone, the bytes this
        upload wrote may have been deleted by that sweep, so the object is checked first.
        `present` (a read in this request found the row) skips the insert that would fail."""
        if not present and self._insert(digest, size, repository, closing):
            return
        self._revive(digest)
        self.link(repository, digest, size)
        if closing is not None:
            delete_where(UploadRow(keys.upload_pk(closing), keys.UPLOAD_SK), UploadRow.pk.exists())

    def _insert(self, digest: str, size: int, repository: str, closing: str | None) -> bool:
        """The new blob's row, its link and the session's delete in one transaction; False when
        the blob row exists (the insert is the transaction's only condition). A conflict with
        another transaction on these items is retried, then answered 429 (`write_transaction`)."""

        def writes(tx: TransactWrite) -> None:
            now = int(self._clock())
            tx.save(BlobRow(keys.blob_pk(digest), keys.BLOB_SK, size=size, created_at=now, updated_at=now),
                    condition=BlobRow.pk.does_not_exist())  # fmt: skip
            tx.save(LinkRow(keys.repo_pk(repository), keys.link_sk(digest), size=size, created_at=now))
            if closing is not None:
                tx.delete(UploadRow(keys.upload_pk(closing), keys.UPLOAD_SK))

        try:
            write_transaction(writes, busy="another write to this blob is in progress; retry")
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def _revive(self, digest: str) -> None:
        lost_to: int | None = None  # the version our touch lost against
        for _attempt in range(5):
            try:
                row = BlobRow.get(keys.blob_pk(digest), keys.BLOB_SK, consistent_read=True)
            except BlobRow.DoesNotExist:  # a tombstone expired meanwhile: the bytes may be gone
                break
            if lost_to is not None and row.state == "none" and int(row.version) != lost_to:
                # Another upload of the same blob touched it between our read and our write: that
                # touch protects the blob as well as ours would (a GC mark conditioned on the old
                # version fails), so many concurrent uploads need not all win their own touch.
                return
            if row.state == "deleting":
                raise BlobUnknown("blob is being garbage collected; upload it again", {"digest": digest})
            if row.state in _MAYBE_GONE and (
                self._objects is None or not self._objects.exists(keys.blob_object_key(digest))
            ):
                raise BlobUnknown("blob was garbage collected during the upload; upload it again", {"digest": digest})
            if self._touch(row):
                return
            lost_to = int(row.version)
        raise BlobUnknown("blob changed during the upload; upload it again", {"digest": digest})

    def link(self, repository: str, digest: str, size: int) -> None:
        LinkRow(keys.repo_pk(repository), keys.link_sk(digest), size=size, created_at=int(self._clock())).save()

    def unlink(self, repository: str, digest: str) -> bool:
        """Remove the repository's link; the bytes stay for GC. False when there was none."""
        return delete_where(LinkRow(keys.repo_pk(repository), keys.link_sk(digest)), LinkRow.pk.exists())
