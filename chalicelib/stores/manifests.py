"""Manifests (with their artifact records), tags, referrer and index edges, and repository rows
(keys in `keys.py`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.core.artifacts import ArtifactRecord
from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.core.models import Manifest, Referrer
from chalicelib.core.reference import project_of
from chalicelib.errors import Conflict, ManifestBlobUnknown, ManifestUnknown
from chalicelib.stores import keys
from chalicelib.stores.objects import ObjectStore
from chalicelib.stores.tables import (
    ManifestRow,
    ParentRow,
    ReferrerRow,
    RepositoryRow,
    TagRow,
    delete_where,
)

# Annotations up to this size (JSON) are copied into the manifest and referrer rows.
_ANNOTATIONS_COPY_MAX = 64_000
# Children of an index written inside its push transaction (2 items each; DynamoDB allows 100).
_TX_CHILDREN = 45


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    blobs: list[str]
    children: list[str]
    subject: str | None
    tags: list[str]


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

    def put(
        self,
        repository: str,
        manifest: ParsedManifest,
        body: bytes,
        tag: str | None,
        record: ArtifactRecord,
        *,
        tag_may_move: bool = True,
    ) -> None:
        """Store the manifest (its artifact record included), its referrer and index edges, the
        repository row and the tag in one transaction.

        A reader therefore never sees a tag whose manifest is missing. A body too big to inline goes
        to S3 first (content-addressed, so a retry rewrites identical bytes). The row is updated, not
        replaced, so a re-push keeps what only later writes set (pull time, being a child). Each
        child of an index must still exist when the transaction commits (a condition), gets its
        `ref_version` bumped (so a concurrent delete of it fails its own condition) and leaves the
        artifact list (`ARTX#`). Past `_TX_CHILDREN` children the transaction would exceed
        DynamoDB's 100 items, so those writes go first, outside it: a failed push then leaves
        edges to an index that does not exist, which readers ignore. Without `tag_may_move` (an
        immutable tag) the tag is written only if it is new or already on this manifest, and Conflict
        is raised otherwise: nothing of the transaction is then written.
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
        extra = json.dumps(record.extra_attrs, separators=(",", ":"))
        copied = (annotations_size if copy_annotations else 0) + (refs_size if copy_refs else 0) + len(extra)
        in_s3 = len(body) + copied > self._inline_max
        if in_s3:
            self._objects.put(keys.manifest_object_key(manifest.digest), body)
        row = ManifestRow(pk, keys.manifest_sk(manifest.digest))
        listing = keys.artifacts_pk(repository, listed=record.listed)
        actions: list[Any] = [
            ManifestRow.media_type.set(manifest.media_type),
            ManifestRow.size.set(manifest.size),
            ManifestRow.body.remove() if in_s3 else ManifestRow.body.set(body),
            ManifestRow.in_s3.set(in_s3),
            ManifestRow.blobs.set(cast(Any, list(manifest.blobs) if copy_refs else [])),
            ManifestRow.children.set(cast(Any, list(manifest.children) if copy_refs else [])),
            ManifestRow.refs_in_body.set(not copy_refs),
            ManifestRow.annotations_in_body.set(not copy_annotations),
            ManifestRow.created_at.set(ManifestRow.created_at | now),
            ManifestRow.kind.set(record.kind),
            ManifestRow.extra_attrs.set(extra),
            ManifestRow.icon.set(record.icon),
            ManifestRow.total_size.set(record.total_size),
            ManifestRow.push_time.set(now),
            # A child stays out of the list when pushed again: only a hidden accessory forces it.
            ManifestRow.gsi1pk.set(listing if not record.listed else ManifestRow.gsi1pk | listing),
            ManifestRow.gsi1sk.set(keys.artifacts_sk(now, manifest.digest)),
        ]
        optional: list[tuple[Any, Any]] = [
            (ManifestRow.subject, manifest.subject),
            (ManifestRow.artifact_type, manifest.artifact_type),
            (ManifestRow.config_media_type, manifest.config_media_type),
            (ManifestRow.annotations, annotations),
            (ManifestRow.accessory_type, record.accessory_type),
        ]
        actions += [attribute.set(value) for attribute, value in optional if value]
        children = list(manifest.children)
        early, in_tx = (children, []) if len(children) > _TX_CHILDREN else ([], children)
        for child in early:
            self._adopt(repository, child, manifest.digest, None)
        try:
            with TransactWrite(connection=self._connection()) as tx:
                tx.update(row, actions=actions)
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
                    kept = None if tag_may_move else TagRow.pk.does_not_exist() | (TagRow.digest == manifest.digest)
                    tx.save(self._tag_row(repository, tag, manifest.digest, now), condition=kept)
                for child in in_tx:
                    self._adopt(repository, child, manifest.digest, tx)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            # The tag's place among the items: PynamoDB sends condition checks, deletes, puts, then
            # updates, so the puts (referrer edge, tag, index edges) come first.
            tag_at = 1 if manifest.subject else 0
            if tag and not tag_may_move and len(reasons) > tag_at and _failed(reasons[tag_at]):
                raise Conflict(f"tag {tag} points at another manifest") from exc
            if any(_failed(r) for r in reasons):
                raise ManifestBlobUnknown("a manifest the index references was deleted meanwhile") from exc
            if exc.cause_response_code == "TransactionCanceledException":
                raise Conflict("a concurrent write to this artifact won; retry") from exc
            raise

    @staticmethod
    def _adopt(repository: str, child: str, parent: str, tx: TransactWrite | None) -> None:
        """The index edge to `child`, and the child's `ref_version` bump and exit from the list."""
        pk = keys.repo_pk(repository)
        edge = ParentRow(pk, keys.parent_sk(child, parent))
        actions: list[Action] = [
            ManifestRow.ref_version.add(1),
            ManifestRow.gsi1pk.set(keys.artifacts_pk(repository, listed=False)),
        ]
        condition = ManifestRow.pk.exists()
        if tx is None:
            edge.save()
            try:
                ManifestRow(pk, keys.manifest_sk(child)).update(actions=actions, condition=condition)
            except UpdateError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    raise ManifestBlobUnknown("a manifest the index references was deleted meanwhile") from exc
                raise
            return
        tx.save(edge)
        tx.update(ManifestRow(pk, keys.manifest_sk(child)), actions=actions, condition=condition)

    def delete_tag(self, repository: str, tag: str, digest: str | None = None) -> bool:
        """Delete the tag (only while it points at `digest`, when given); False if it did not."""
        condition = TagRow.pk.exists() if digest is None else TagRow.digest == digest
        return delete_where(TagRow(keys.repo_pk(repository), keys.tag_sk(tag)), condition)

    def add_tag(self, repository: str, tag: str, digest: str) -> None:
        """A new tag on an existing manifest, in one transaction: 404 if the manifest is gone,
        409 if the name is taken (Harbor creates tags; moving one is a push)."""
        pk = keys.repo_pk(repository)
        try:
            with TransactWrite(connection=self._connection()) as tx:
                tx.condition_check(ManifestRow, pk, keys.manifest_sk(digest), condition=ManifestRow.pk.exists())
                tx.save(self._tag_row(repository, tag, digest, int(time.time())), condition=TagRow.pk.does_not_exist())
        except TransactWriteError as exc:
            reasons = [r.code if r else None for r in exc.cancellation_reasons]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise ManifestUnknown(detail={"digest": digest}) from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise Conflict(f"tag {tag} already exists", {"tag": tag}) from exc
            if exc.cause_response_code == "TransactionCanceledException":
                raise Conflict("a concurrent write to this tag won; retry", {"tag": tag}) from exc
            raise

    def delete(self, repository: str, digest: str) -> DeletedManifest | None:
        """Delete a manifest, then its tags, referrer edge and the index edges it holds; None if it
        did not exist. Blob bytes and S3 bodies are left to GC.

        The row's delete is conditioned on the `ref_version` read first, so an index that adopted
        the manifest meanwhile makes it fail (Conflict; the caller checks the parents again), and on
        the row still existing, so of two concurrent deletes exactly one succeeds.
        """
        pk = keys.repo_pk(repository)
        try:
            row = ManifestRow.get(pk, keys.manifest_sk(digest), consistent_read=True)
        except ManifestRow.DoesNotExist:
            return None
        blobs = [str(b) for b in row.blobs or []]
        children = [str(c) for c in row.children or []]
        if row.refs_in_body:
            stored = self.get(repository, digest)
            parsed = parse_manifest(stored.body, row.media_type, digest) if stored else None
            blobs, children = (list(parsed.blobs), list(parsed.children)) if parsed else ([], [])
        version = row.ref_version
        unchanged = (
            ManifestRow.ref_version == version if version is not None else ManifestRow.ref_version.does_not_exist()
        )
        if not delete_where(ManifestRow(pk, keys.manifest_sk(digest)), ManifestRow.pk.exists() & unchanged):
            raise Conflict("the artifact changed while it was being deleted; retry", {"digest": digest})
        tags = self.tags_of(repository, digest)
        for tag in tags:
            # Only remove the tag if it still points here: a concurrent push may have moved it.
            delete_where(TagRow(pk, keys.tag_sk(tag)), TagRow.digest == digest)
        if row.subject:
            ReferrerRow(pk, keys.referrer_sk(row.subject, digest)).delete()
        with ParentRow.batch_write() as batch:
            for child in children:
                batch.delete(ParentRow(pk, keys.parent_sk(child, digest)))
        return DeletedManifest(blobs=blobs, children=children, subject=row.subject, tags=tags)

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


def _failed(reason: Any) -> bool:
    return reason is not None and reason.code == "ConditionalCheckFailed"
