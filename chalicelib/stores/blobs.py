"""Blob metadata: global blob rows, repository links and project-blob rows (keys in `keys.py`)."""

from __future__ import annotations

import time

from pynamodb.exceptions import PutError, UpdateError

from chalicelib.stores import keys
from chalicelib.stores.tables import BlobRow, LinkRow, batch_get_raw, delete_where

# Blobs in these GC states are invisible: a sweep has claimed them (reference/harbor.md section 2).
_HIDDEN_STATES = frozenset({"deleting", "deletefailed"})


class BlobMetaStore:
    def stat(self, repository: str, digest: str) -> int | None:
        """The blob's size if `repository` may see it; one BatchGetItem (link + blob row)."""
        items = batch_get_raw([(keys.repo_pk(repository), keys.link_sk(digest)), (keys.blob_pk(digest), keys.BLOB_SK)])
        if len(items) != 2:
            return None
        blob = BlobRow.from_raw_data(next(i for i in items if i["sk"]["S"] == keys.BLOB_SK))
        return None if blob.state in _HIDDEN_STATES else int(blob.size)

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
        return {item["sk"]["S"].removeprefix("BLOB#"): int(item["size"]["N"]) for item in items}

    def record(self, digest: str, size: int, repository: str) -> None:
        """Make a verified blob visible in `repository`: the global blob row (once) and the link."""
        now = int(time.time())
        try:
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK, size=size, created_at=now, updated_at=now).save(
                condition=BlobRow.pk.does_not_exist()
            )
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK).update(actions=[BlobRow.updated_at.set(now)])
        self.link(repository, digest, size)

    def link(self, repository: str, digest: str, size: int) -> None:
        LinkRow(keys.repo_pk(repository), keys.link_sk(digest), size=size, created_at=int(time.time())).save()

    def unassociated(self, project: str, digests: list[str]) -> list[str]:
        """Which digests the project does not count yet (one BatchGetItem per 100)."""
        pk = keys.project_pk(project)
        found = {i["sk"]["S"].removeprefix("BLOB#") for i in batch_get_raw([(pk, keys.link_sk(d)) for d in digests])}
        return [d for d in dict.fromkeys(digests) if d not in found]

    def unlink(self, repository: str, digest: str) -> bool:
        """Remove the repository's link; the bytes stay for GC. False when there was none."""
        return delete_where(LinkRow(keys.repo_pk(repository), keys.link_sk(digest)), LinkRow.pk.exists())
