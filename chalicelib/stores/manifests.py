"""Manifests, tags, referrer edges and repository rows (keys in `keys.py`)."""

from __future__ import annotations

import json
import time
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError
from pynamodb.transactions import TransactWrite

from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.core.models import Manifest, Referrer
from chalicelib.core.reference import project_of
from chalicelib.stores import keys
from chalicelib.stores.objects import ObjectStore
from chalicelib.stores.tables import ManifestRow, ReferrerRow, RepositoryRow, TagRow, batch_get_raw, delete_where

# Annotations up to this size (JSON) are copied into the manifest and referrer rows.
_ANNOTATIONS_COPY_MAX = 64_000


class ManifestStore:
    def __init__(self, objects: ObjectStore, inline_max_bytes: int, refs_max_bytes: int) -> None:
        self._objects = objects
        self._inline_max = inline_max_bytes
        self._refs_max = refs_max_bytes

    # Reads.

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        try:
            return str(TagRow.get(keys.repo_pk(repository), keys.tag_sk(tag)).digest)
        except TagRow.DoesNotExist:
            return None

    def get(self, repository: str, digest: str, *, with_body: bool = True) -> Manifest | None:
        """The manifest; without `with_body` (HEAD) a body kept in S3 is not fetched."""
        try:
            row = ManifestRow.get(keys.repo_pk(repository), keys.manifest_sk(digest))
        except ManifestRow.DoesNotExist:
            return None
        if not with_body:
            body = b""
        elif row.in_s3:
            body = self._objects.get(keys.manifest_object_key(digest))
        else:
            body = bytes(row.body or b"")
        return Manifest(digest=digest, media_type=row.media_type, size=int(row.size), body=body, subject=row.subject)

    def existing(self, repository: str, digests: list[str]) -> set[str]:
        pk = keys.repo_pk(repository)
        items = batch_get_raw([(pk, keys.manifest_sk(d)) for d in digests])
        return {item["sk"]["S"].removeprefix("MANIFEST#") for item in items}

    def repository_exists(self, repository: str) -> bool:
        try:
            RepositoryRow.get(keys.REPOS_PK, repository)
        except RepositoryRow.DoesNotExist:
            return False
        return True

    def list_tags(self, repository: str, limit: int, last: str | None) -> tuple[list[str], bool]:
        """Up to `limit` tags after `last`, in sort-key order, and whether more follow."""
        start = {"pk": {"S": keys.repo_pk(repository)}, "sk": {"S": keys.tag_sk(last)}} if last else None
        rows = TagRow.query(
            keys.repo_pk(repository),
            TagRow.sk.startswith(keys.TAG_PREFIX),
            limit=limit + 1,
            last_evaluated_key=start,
            attributes_to_get=["sk"],
        )
        tags = [row.sk.removeprefix(keys.TAG_PREFIX) for row in rows]
        return tags[:limit], len(tags) > limit

    def tags_of(self, repository: str, digest: str) -> list[str]:
        rows = TagRow.by_digest.query(keys.tags_by_digest_pk(repository, digest))
        return [row.gsi1sk.removeprefix(keys.TAG_PREFIX) for row in rows]

    def list_repositories(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        start = {"pk": {"S": keys.REPOS_PK}, "sk": {"S": last}} if last else None
        rows = RepositoryRow.query(keys.REPOS_PK, limit=limit + 1, last_evaluated_key=start, attributes_to_get=["sk"])
        names = [row.sk for row in rows]
        return names[:limit], len(names) > limit

    def referrers(self, repository: str, subject: str) -> list[Referrer]:
        rows = ReferrerRow.query(keys.repo_pk(repository), ReferrerRow.sk.startswith(keys.referrer_prefix(subject)))
        return [
            Referrer(
                digest=row.digest,
                media_type=row.media_type,
                size=int(row.size),
                artifact_type=row.artifact_type,
                annotations=self._body_annotations(repository, row.digest)
                if row.annotations_in_body
                else (row.annotations.as_dict() if row.annotations else None),
            )
            for row in rows
        ]

    def _body_annotations(self, repository: str, digest: str) -> dict[str, Any] | None:
        manifest = self.get(repository, digest)
        if manifest is None:
            return None
        annotations = json.loads(manifest.body).get("annotations")
        return annotations if isinstance(annotations, dict) else None

    # Writes.

    def put(self, repository: str, manifest: ParsedManifest, body: bytes, tag: str | None) -> None:
        """Store the manifest, its referrer edge, the repository row and the tag in one transaction.

        A reader therefore never sees a tag whose manifest is missing. A body too big to inline goes
        to S3 first (content-addressed, so a retry rewrites identical bytes).
        """
        now = int(time.time())
        pk = keys.repo_pk(repository)
        # DynamoDB items stop at 400 KB: big annotations stay only in the body, big bodies go to S3.
        annotations_size = len(json.dumps(manifest.annotations))
        copy_annotations = annotations_size <= _ANNOTATIONS_COPY_MAX
        annotations = (manifest.annotations or None) if copy_annotations else None
        # A manifest may list thousands of blobs (an oras push of a directory): past a limit the
        # list is read from the body when needed instead of being copied into the row.
        refs_size = sum(len(d) + 3 for d in (*manifest.blobs, *manifest.children))
        copy_refs = refs_size <= self._refs_max
        copied = (annotations_size if copy_annotations else 0) + (refs_size if copy_refs else 0)
        in_s3 = len(body) + copied > self._inline_max
        if in_s3:
            self._objects.put(keys.manifest_object_key(manifest.digest), body)
        row = ManifestRow(
            pk,
            keys.manifest_sk(manifest.digest),
            media_type=manifest.media_type,
            size=manifest.size,
            body=None if in_s3 else body,
            in_s3=in_s3,
            blobs=list(manifest.blobs) if copy_refs else [],
            children=list(manifest.children) if copy_refs else [],
            refs_in_body=not copy_refs,
            subject=manifest.subject,
            artifact_type=manifest.artifact_type,
            config_media_type=manifest.config_media_type,
            annotations=annotations,
            annotations_in_body=not copy_annotations,
            created_at=now,
        )
        with TransactWrite(connection=self._connection()) as tx:
            tx.save(row)
            tx.update(
                RepositoryRow(keys.REPOS_PK, repository),
                actions=[
                    RepositoryRow.project.set(project_of(repository)),
                    RepositoryRow.created_at.set(RepositoryRow.created_at | now),
                    RepositoryRow.updated_at.set(now),
                ],
            )
            if manifest.subject:
                tx.save(
                    ReferrerRow(
                        pk,
                        keys.referrer_sk(manifest.subject, manifest.digest),
                        digest=manifest.digest,
                        media_type=manifest.media_type,
                        size=manifest.size,
                        artifact_type=manifest.referrer_artifact_type,
                        annotations=annotations,
                        annotations_in_body=not copy_annotations,
                    )
                )
            if tag:
                tx.save(self._tag_row(repository, tag, manifest.digest, now))

    def delete_tag(self, repository: str, tag: str) -> bool:
        return delete_where(TagRow(keys.repo_pk(repository), keys.tag_sk(tag)), TagRow.pk.exists())

    def delete(self, repository: str, digest: str) -> list[str] | None:
        """Delete a manifest with its tags and referrer edge; returns the blobs it referenced, or None
        if it did not exist. Blob bytes and S3 bodies are left to GC."""
        pk = keys.repo_pk(repository)
        try:
            row = ManifestRow.get(pk, keys.manifest_sk(digest))
        except ManifestRow.DoesNotExist:
            return None
        blobs = [str(b) for b in row.blobs or []]
        if row.refs_in_body:
            stored = self.get(repository, digest)
            blobs = list(parse_manifest(stored.body, row.media_type, digest).blobs) if stored else []
        for tag in self.tags_of(repository, digest):
            # Only remove the tag if it still points here: a concurrent push may have moved it.
            try:
                TagRow(pk, keys.tag_sk(tag)).delete(condition=TagRow.digest == digest)
            except DeleteError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
        if row.subject:
            ReferrerRow(pk, keys.referrer_sk(row.subject, digest)).delete()
        ManifestRow(pk, keys.manifest_sk(digest)).delete()
        return blobs

    @staticmethod
    def _tag_row(repository: str, tag: str, digest: str, now: int) -> TagRow:
        return TagRow(
            keys.repo_pk(repository),
            keys.tag_sk(tag),
            digest=digest,
            updated_at=now,
            gsi1pk=keys.tags_by_digest_pk(repository, digest),
            gsi1sk=keys.tag_sk(tag),
        )

    @staticmethod
    def _connection() -> Connection:
        """The models' cached connection, so a transaction does not build a new botocore client."""
        return ManifestRow._get_connection().connection
