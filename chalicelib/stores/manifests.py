"""Manifests (with their artifact records), tags, referrer and index edges, and repository rows
(keys in `keys.py`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.core.artifacts import ArtifactRecord
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.core.models import Manifest, Referrer
from chalicelib.core.reference import project_of
from chalicelib.core.scans import ReportSummary
from chalicelib.errors import Conflict, ManifestBlobUnknown, ManifestUnknown
from chalicelib.stores import keys
from chalicelib.stores.artifacts import scan_summaries
from chalicelib.stores.objects import ObjectStore
from chalicelib.stores.tables import (
    ManifestRow,
    ParentRow,
    ReferrerRow,
    RepositoryRow,
    TagRow,
    batch_get_raw,
    cancellation_codes,
    condition_failed,
    delete_where,
    write_transaction,
)

# Annotations up to this size (JSON) are copied into the manifest and referrer rows.
_ANNOTATIONS_COPY_MAX = 64_000
# Children of an index written inside its push transaction (2 items each; DynamoDB allows 100).
_TX_CHILDREN = 45
# What a pull reads of a tag row and of a manifest row (and `body`, unless it is a HEAD).
_TAG_ATTRIBUTES = ("digest", "media_type", "size", "in_s3")
_MANIFEST_ATTRIBUTES = ("media_type", "size", "in_s3", "subject")
# Tags deleted in the same transaction as their manifest's row (DynamoDB allows 100 items).
_TX_TAGS = 90

# A raw DynamoDB item (attribute name -> typed value) by its (pk, sk).
RawItems = Mapping[tuple[str, str], dict[str, Any]]
_M = TypeVar("_M", bound=Model)


class StillReferenced(Exception):
    """A delete found an index (one that exists) referencing the manifest."""


class StillTagged(Exception):
    """A delete of untagged manifests only (GC) found tags pointing at the manifest."""

    def __init__(self, tags: list[str]) -> None:
        super().__init__(", ".join(tags))
        self.tags = tags


@dataclass(frozen=True, slots=True)
class _Copy:
    """What a tag row carries of its manifest: all a pull by tag answers with."""

    media_type: str
    size: int
    body: bytes | None  # None when the body is kept in S3
    in_s3: bool


@dataclass(frozen=True, slots=True)
class AlsoRead:
    """Rows a caller wants read in the same BatchGetItem as a pulled manifest (the pull gate's
    policy rows): their keys, and the attributes wanted of them (one projection covers every key
    of a request, so the pull adds its own to these)."""

    keys: tuple[tuple[str, str], ...]
    attributes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pulled:
    """A pull's read: the manifest (None: not there) and the raw items it read (`AlsoRead`)."""

    manifest: Manifest | None
    found: RawItems


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    blobs: list[str]
    children: list[str]
    subject: str | None
    tags: list[str]
    # The report summaries the row carried (the security hub takes their share back).
    scans: dict[str, ReportSummary] = field(default_factory=dict)


class ManifestStore:
    def __init__(self, objects: ObjectStore, inline_max_bytes: int, refs_max_bytes: int,
                 clock: Clock = system_clock) -> None:  # fmt: skip
        self._clock = clock
        self._objects = objects
        self._inline_max = inline_max_bytes
        self._refs_max = refs_max_bytes

    # Reads.

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        try:
            row = TagRow.get(keys.repo_pk(repository), keys.tag_sk(tag), attributes_to_get=["digest"])
        except TagRow.DoesNotExist:
            return None
        return str(row.digest)

    def get_by_tag(self, repository: str, tag: str, *, with_body: bool = True) -> Manifest | None:
        return self.pull_by_tag(repository, tag, with_body=with_body).manifest

    def get(self, repository: str, digest: str, *, with_body: bool = True) -> Manifest | None:
        return self.pull(repository, digest, with_body=with_body).manifest

    def pull_by_tag(self, repository: str, tag: str, *, with_body: bool = True, also: AlsoRead | None = None) -> Pulled:
        """The manifest a tag points at, from the tag row alone (the row carries a copy written by
        the same write that moved the tag, so digest and body always belong together), and the rows
        `also` names, in one call. A body kept in S3 is fetched by its digest when `with_body`;
        without it (HEAD) no body is read at all. A row written before the copy existed falls back
        to the manifest row."""
        key = (keys.repo_pk(repository), keys.tag_sk(tag))
        row, found = _read_with(TagRow, key, _wanted(_TAG_ATTRIBUTES, with_body), also)
        if row is None:
            return Pulled(None, found)
        digest = str(row.digest)
        if row.media_type is None:
            return Pulled(self.get(repository, digest, with_body=with_body), found)
        manifest = Manifest(
            digest=digest, media_type=row.media_type, size=int(row.size or 0),
            body=self._body(digest, bool(row.in_s3), row.body, with_body),
        )  # fmt: skip
        return Pulled(manifest, found)

    def pull(self, repository: str, digest: str, *, with_body: bool = True, also: AlsoRead | None = None) -> Pulled:
        """The manifest from its row, and the rows `also` names, in one call (the row itself is
        among the raw items then); without `with_body` (HEAD) no body is read at all."""
        key = (keys.repo_pk(repository), keys.manifest_sk(digest))
        row, found = _read_with(ManifestRow, key, _wanted(_MANIFEST_ATTRIBUTES, with_body), also)
        if row is None:
            return Pulled(None, found)
        body = self._body(digest, bool(row.in_s3), row.body, with_body)
        return Pulled(Manifest(digest=digest, media_type=row.media_type, size=int(row.size), body=body,
                               subject=row.subject), found)  # fmt: skip

    def _body(self, digest: str, in_s3: bool, inline: bytes | None, with_body: bool) -> bytes:
        if not with_body:
            return b""
        if in_s3:
            return self._objects.get(keys.manifest_object_key(digest))
        return bytes(inline or b"")

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
        now = int(self._clock())
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
        if tag:
            actions += [ManifestRow.tags.add({tag}), ManifestRow.ref_version.add(1)]
        children = list(manifest.children)
        early, in_tx = (children, []) if len(children) > _TX_CHILDREN else ([], children)
        for child in early:
            self._adopt(repository, child, manifest.digest, None)

        def writes(tx: TransactWrite) -> None:
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
                copy = _Copy(manifest.media_type, manifest.size, None if in_s3 else body, in_s3)
                tx.save(self._tag_row(repository, tag, manifest.digest, now, copy), condition=kept)
            for child in in_tx:
                self._adopt(repository, child, manifest.digest, tx)

        try:
            # Every push to the repository updates its row: concurrent pushes may conflict, and retry.
            write_transaction(writes, busy="another push to this repository is being written; retry")
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            # The tag's place among the items: PynamoDB sends condition checks, deletes, puts, then
            # updates, so the puts (referrer edge, tag, index edges) come first.
            tag_at = 1 if manifest.subject else 0
            if tag and not tag_may_move and len(reasons) > tag_at and reasons[tag_at] == "ConditionalCheckFailed":
                raise Conflict(f"tag {tag} points at another manifest") from exc
            if condition_failed(exc):
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
        409 if the name is taken (Harbor creates tags; moving one is a push). The tag's copy of the
        manifest is read first; the transaction names the tag on the manifest row (and bumps its
        `ref_version`) on condition that it still exists, so a concurrent delete either sees the tag
        or fails its own condition."""
        pk = keys.repo_pk(repository)
        try:
            row = ManifestRow.get(pk, keys.manifest_sk(digest), consistent_read=True,
                                  attributes_to_get=["media_type", "size", "body", "in_s3"])  # fmt: skip
        except ManifestRow.DoesNotExist:
            raise ManifestUnknown(detail={"digest": digest}) from None
        copy = _Copy(row.media_type, int(row.size), None if row.in_s3 else row.body, bool(row.in_s3))
        try:
            with TransactWrite(connection=self._connection()) as tx:
                tx.save(
                    self._tag_row(repository, tag, digest, int(self._clock()), copy),
                    condition=TagRow.pk.does_not_exist(),
                )
                tx.update(
                    ManifestRow(pk, keys.manifest_sk(digest)),
                    actions=[ManifestRow.tags.add({tag}), ManifestRow.ref_version.add(1)],
                    condition=ManifestRow.pk.exists(),
                )
        except TransactWriteError as exc:
            # PynamoDB sends the put (the tag) before the update (the manifest row).
            reasons = cancellation_codes(exc)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise ManifestUnknown(detail={"digest": digest}) from exc
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise Conflict(f"tag {tag} already exists", {"tag": tag}) from exc
            if exc.cause_response_code == "TransactionCanceledException":
                raise Conflict("a concurrent write to this tag won; retry", {"tag": tag}) from exc
            raise

    def delete(
        self,
        repository: str,
        digest: str,
        *,
        untagged_only: bool = False,
        referenced: Callable[[], bool] | None = None,
    ) -> DeletedManifest | None:
        """Delete a manifest and every tag still pointing at it, then its referrer edge and the index
        edges it holds; None if it did not exist. Blob bytes and S3 bodies are left to GC. With
        `untagged_only`, StillTagged is raised instead when a tag points at it.

        The tags come from the row's `tags` (strongly consistent, unlike the tags index, which may
        not show a tag pushed a moment ago) and are checked with one consistent batch read. The row
        and those tags are deleted in one transaction, conditioned on the row's `ref_version` (so a
        tag written or an index adopting the manifest meanwhile makes it fail: Conflict, the caller
        looks again) and on each tag still pointing here (a tag moved away meanwhile is kept): no
        tag is ever left naming a deleted manifest, whose copy a pull by tag would serve. Of two
        concurrent deletes exactly one succeeds. Past `_TX_TAGS` tags the transaction would exceed
        DynamoDB's 100 items, so the tags beyond it are deleted first, each only while it still
        points here (a delete that then fails has untagged those).
        """
        pk = keys.repo_pk(repository)
        try:
            row = ManifestRow.get(pk, keys.manifest_sk(digest), consistent_read=True)
        except ManifestRow.DoesNotExist:
            return None
        # Asked after the row is read: an index adopting the manifest from now on bumps `ref_version`
        # and fails the transaction below; one that adopted it before this point is seen here.
        if referenced is not None and referenced():
            raise StillReferenced
        # Rows written before `tags` existed are found through the tags index as well.
        tags = self._tags_pointing_at(
            repository, digest, {str(t) for t in row.tags or ()} | set(self.tags_of(repository, digest))
        )
        if tags and untagged_only:
            raise StillTagged(tags)
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
        early, in_tx = tags[_TX_TAGS:], tags[:_TX_TAGS]
        for tag in early:
            delete_where(TagRow(pk, keys.tag_sk(tag)), TagRow.digest == digest)
        try:
            with TransactWrite(connection=self._connection()) as tx:
                tx.delete(ManifestRow(pk, keys.manifest_sk(digest)), condition=ManifestRow.pk.exists() & unchanged)
                for tag in in_tx:
                    tx.delete(TagRow(pk, keys.tag_sk(tag)), condition=TagRow.digest == digest)
        except TransactWriteError as exc:
            if exc.cause_response_code == "TransactionCanceledException":
                raise Conflict("the artifact changed while it was being deleted; retry", {"digest": digest}) from exc
            raise
        if row.subject:
            ReferrerRow(pk, keys.referrer_sk(row.subject, digest)).delete()
        with ParentRow.batch_write() as batch:
            for child in children:
                batch.delete(ParentRow(pk, keys.parent_sk(child, digest)))
        return DeletedManifest(blobs=blobs, children=children, subject=row.subject, tags=tags,
                               scans=scan_summaries(row))  # fmt: skip

    @staticmethod
    def _tags_pointing_at(repository: str, digest: str, names: set[str]) -> list[str]:
        """Those of `names` whose tag row points at `digest` now (one consistent batch read per 100)."""
        pk = keys.repo_pk(repository)
        items = batch_get_raw([(pk, keys.tag_sk(n)) for n in sorted(names)], attributes=["sk", "digest"])
        return sorted(i["sk"]["S"].removeprefix(keys.TAG_PREFIX) for i in items if i["digest"]["S"] == digest)

    @staticmethod
    def _tag_row(repository: str, tag: str, digest: str, now: int, copy: _Copy) -> TagRow:
        return TagRow(
            keys.repo_pk(repository),
            keys.tag_sk(tag),
            digest=digest,
            updated_at=now,
            media_type=copy.media_type,
            size=copy.size,
            body=copy.body,
            in_s3=copy.in_s3,
            gsi1pk=keys.tags_by_digest_pk(repository, digest),
            gsi1sk=keys.tag_sk(tag),
        )

    @staticmethod
    def _connection() -> Connection:
        """The models' cached connection, so a transaction does not build a new botocore client."""
        return ManifestRow._get_connection().connection


def _read_with(model: type[_M], key: tuple[str, str], attributes: list[str],
               also: AlsoRead | None) -> tuple[_M | None, RawItems]:  # fmt: skip
    """The item at `key` as a `model` (only `attributes`), and the raw items `also` names, in one
    call: a GetItem when there is nothing else to read, else one BatchGetItem (strongly consistent,
    as every batch read here is; the item itself is among the raw items then)."""
    if also is None or not also.keys:
        try:
            return model.get(*key, attributes_to_get=attributes), {}
        except model.DoesNotExist:
            return None, {}
    wanted = list(dict.fromkeys(["pk", "sk", *attributes, *also.attributes]))  # a path may appear once
    found = {(i["pk"]["S"], i["sk"]["S"]): i for i in batch_get_raw([key, *also.keys], wanted)}
    own = found.get(key)
    return (None if own is None else model.from_raw_data(own)), found


def _wanted(attributes: tuple[str, ...], with_body: bool) -> list[str]:
    return [*attributes, "body"] if with_body else list(attributes)
