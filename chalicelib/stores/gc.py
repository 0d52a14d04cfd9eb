"""Garbage collection's reads and writes (keys in `keys.py`; protocol in `stores/blobs.py`).

Not a request path: the mark phase reads the whole table with a parallel Scan (`Segment` /
`TotalSegments`, one thread per segment; projected to the few attributes it needs and filtered to
the partitions it reads) and lists the object store's `blobs/`, `manifests/` and `uploads/` prefixes
(S3 on AWS, the data directory's files locally).
Every write that decides a blob's fate is conditional on its `state` and `version`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from sys import intern
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.models import BatchWrite
from pynamodb.transactions import TransactWrite

from chalicelib.stores import keys
from chalicelib.stores.tables import (
    BlobRow,
    GcCandidateRow,
    LinkRow,
    ProjectBlobRow,
    ProjectRow,
    _Base,
    batch_get_raw,
    condition_failed,
    connection,
    delete_where,
)

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore

# The attributes the mark phase reads from every row (names, because SIZE is a reserved word).
_PROJECTION = ["pk", "sk", "state", "version", "size", "updated_at", "created_at", "expires_at", "pending",
               "digest", "children", "subject", "refs_in_body", "in_s3"]  # fmt: skip
_SCAN_QUEUE = 32  # pages of a parallel Scan waiting for the mark phase (1 MB each at most)
# Candidate rows of a run that never finished are dropped by the table's TTL after this long.
_CANDIDATE_TTL_SECONDS = 14 * 24 * 3600


# What each part of the mark's read covers: the partitions (pk prefixes) it reads whole.
PARTS = {"blobs": keys.BLOB_PREFIX, "projects": keys.PROJECT_PREFIX, "repositories": keys.REPO_PREFIX,
         "uploads": keys.UPLOAD_PREFIX}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlobState:
    digest: str
    state: str
    version: int
    size: int
    updated_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class ProjectBlob:
    """A project holds (counts) a blob since `since`."""

    project: str
    digest: str
    since: int


@dataclass(frozen=True, slots=True)
class BlobReference:
    """A manifest of a project's repository references a blob."""

    project: str
    digest: str
    repository: str
    manifest: str


@dataclass(frozen=True, slots=True)
class Link:
    repository: str
    digest: str


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A manifest row; `children`, `subject` and `refs_in_body` only when read with detail."""

    repository: str
    digest: str
    children: tuple[str, ...] = ()
    subject: str | None = None
    refs_in_body: bool = False


@dataclass(frozen=True, slots=True)
class TagEntry:
    repository: str
    digest: str


@dataclass(frozen=True, slots=True)
class UploadEntry:
    upload_id: str
    chunk_keys: tuple[str, ...]


GcRow = BlobState | ProjectBlob | BlobReference | Link | ManifestEntry | TagEntry | UploadEntry


def parse(item: dict[str, Any], detail: bool) -> GcRow | None:
    """The typed row of one scanned item (None for rows GC does not use). Without `detail` a
    manifest is a bare digest and tags are skipped (the view that needs neither stays small).
    Every digest and name is interned, so the rows naming one blob share one string."""
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    if pk.startswith(keys.BLOB_PREFIX) and sk == keys.BLOB_SK:
        expires = item.get("expires_at", {}).get("N")
        return BlobState(intern(pk.removeprefix(keys.BLOB_PREFIX)), intern(item.get("state", {}).get("S", "none")),
                         int(item.get("version", {}).get("N", 0)), int(item["size"]["N"]),
                         int(item.get("updated_at", {}).get("N", 0)), int(expires) if expires else None)  # fmt: skip
    if pk.startswith(keys.PROJECT_PREFIX):
        return _project_row(pk.removeprefix(keys.PROJECT_PREFIX), sk, item)
    if pk.startswith(keys.REPO_PREFIX) and keys.TAGS_BY_DIGEST_INFIX not in pk:
        return _repository_row(intern(pk.removeprefix(keys.REPO_PREFIX)), sk, item, detail)
    if pk.startswith(keys.UPLOAD_PREFIX) and sk == keys.UPLOAD_SK:
        chunks = tuple(chunk["M"]["key"]["S"] for chunk in item.get("pending", {}).get("L", []))
        return UploadEntry(pk.removeprefix(keys.UPLOAD_PREFIX), chunks)
    return None


def _project_row(project: str, sk: str, item: dict[str, Any]) -> GcRow | None:
    if sk.startswith(keys.BLOB_PREFIX):
        return ProjectBlob(
            project, intern(sk.removeprefix(keys.BLOB_PREFIX)), int(item.get("created_at", {}).get("N", 0))
        )
    if sk.startswith(keys.BLOB_REF_PREFIX):
        blob, _, tail = sk.removeprefix(keys.BLOB_REF_PREFIX).partition("#")
        repository, _, manifest = tail.rpartition("@")
        return BlobReference(project, intern(blob), intern(repository), intern(manifest))
    return None


def _repository_row(repository: str, sk: str, item: dict[str, Any], detail: bool) -> GcRow | None:
    if sk.startswith(keys.BLOB_PREFIX):
        return Link(repository, intern(sk.removeprefix(keys.BLOB_PREFIX)))
    if sk.startswith(keys.MANIFEST_PREFIX):
        digest = intern(sk.removeprefix(keys.MANIFEST_PREFIX))
        if not detail:
            return ManifestEntry(repository, digest)
        children = tuple(c["S"] for c in item.get("children", {}).get("L", []))
        return ManifestEntry(repository, digest, children, item.get("subject", {}).get("S"),
                             bool(item.get("refs_in_body", {}).get("BOOL", False)))  # fmt: skip
    if detail and sk.startswith(keys.TAG_PREFIX) and "digest" in item:
        return TagEntry(repository, item["digest"]["S"])
    return None


@dataclass(frozen=True, slots=True)
class OwnedObject:
    """An object of the bucket and what owns it (a blob's or manifest's digest, an upload session)."""

    key: str
    owner: str
    size: int
    modified: int


def _digest_of(key: str) -> str:
    """`blobs/<alg>/<hex>` or `manifests/<alg>/<hex>` -> `<alg>:<hex>`."""
    parts = key.split("/")
    return f"{parts[1]}:{parts[2]}" if len(parts) == 3 else ""


def _session_of(key: str) -> str:
    """`uploads/<session>/...` -> `<session>`."""
    return key.split("/")[1]


@dataclass(frozen=True)
class Candidate:
    digest: str
    version: int
    size: int
    repositories: list[str]


class GcStore:
    def __init__(self, objects: ObjectStore, clock: Callable[[], float] = time.time) -> None:
        self._objects = objects
        self._clock = clock

    # Reading everything (mark phase only).

    def rows(self, segments: int, parts: tuple[str, ...], *, detail: bool) -> Iterator[GcRow]:
        """The typed rows of the `parts` (keys of `PARTS`) GC uses, from one (parallel) Scan."""
        for item in self.scan(segments, tuple(PARTS[part] for part in parts)):
            row = parse(item, detail)
            if row is not None:
                yield row

    def scan(self, segments: int = 1, prefixes: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Every row of the table whose partition key starts with one of `prefixes` (all rows if
        none), projected to what GC needs; raw DynamoDB items, in no particular order.

        With `segments` > 1 it is a parallel Scan: one thread reads each segment, so the read takes
        about 1/`segments` of the time on DynamoDB (a segment is read at one page per round trip).
        The threads hand whole pages to the caller through a queue of `_SCAN_QUEUE` pages, so at
        most that many pages wait in memory however fast they arrive. The filter saves transfer
        and parsing, not read units: DynamoDB reads the rows it filters out."""
        request: dict[str, Any] = {"TableName": _Base.Meta.table_name, "ConsistentRead": True}
        names = {f"#a{i}": name for i, name in enumerate(_PROJECTION)}
        request["ProjectionExpression"] = ", ".join(names)
        if prefixes:
            names["#pk"] = "pk"
            request["FilterExpression"] = " OR ".join(f"begins_with(#pk, :p{i})" for i in range(len(prefixes)))
            request["ExpressionAttributeValues"] = {f":p{i}": {"S": p} for i, p in enumerate(prefixes)}
        request["ExpressionAttributeNames"] = names
        client: Any = connection().client  # made here, once: the reader threads share it
        if segments <= 1:
            for page in _pages(client, request):
                yield from page
            return
        yield from _parallel_pages(client, [{**request, "Segment": n, "TotalSegments": segments}
                                            for n in range(segments)])  # fmt: skip

    def blob_objects(self) -> Iterator[OwnedObject]:
        """Blob bytes (`blobs/<alg>/<hex>`), each with its digest."""
        return (
            OwnedObject(o.key, _digest_of(o.key), o.size, o.modified)
            for o in self._objects.list_objects(keys.BLOBS_PREFIX)
        )

    def manifest_objects(self) -> Iterator[OwnedObject]:
        """Manifest bodies kept in the bucket (`manifests/<alg>/<hex>`), each with its digest."""
        return (OwnedObject(o.key, _digest_of(o.key), o.size, o.modified)
                for o in self._objects.list_objects(keys.MANIFESTS_PREFIX))  # fmt: skip

    def upload_objects(self) -> Iterator[OwnedObject]:
        """Upload staging (`uploads/<session>/...`), each with its session id."""
        return (OwnedObject(o.key, _session_of(o.key), o.size, o.modified)
                for o in self._objects.list_objects(keys.UPLOADS_PREFIX))  # fmt: skip

    def upload_multiparts(self) -> Iterator[tuple[str, str, int, str]]:
        """(key, upload id, initiated, session id) of unfinished multipart uploads of staging."""
        for key, upload_id, initiated in self._objects.list_multipart_uploads(keys.UPLOADS_PREFIX):
            yield key, upload_id, initiated, _session_of(key)

    def delete_blob_objects(self, digests: list[str]) -> None:
        self._objects.delete(*(keys.blob_object_key(d) for d in digests))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._objects.abort_multipart(key, upload_id)

    def delete_objects(self, object_keys: list[str]) -> None:
        """Delete objects (absent keys are not an error)."""
        self._objects.delete(*object_keys)

    def existing_blob_rows(self, digests: list[str]) -> set[str]:
        items = batch_get_raw([(keys.blob_pk(d), keys.BLOB_SK) for d in digests])
        return {i["pk"]["S"].removeprefix(keys.BLOB_PREFIX) for i in items}

    # Mark.

    @staticmethod
    def mark(digest: str, state: str, version: int, cutoff: int) -> int | None:
        """Claim a candidate for this run: `delete` (or, for a blob an interrupted run left in
        `deleting`, `deleting` again) with version + 1, only if nobody touched it since it was read.
        Returns the new version, or None if the blob changed."""
        target = "deleting" if state == "deleting" else "delete"
        condition = (BlobRow.state == state) & (BlobRow.version == version) & (BlobRow.updated_at <= cutoff)
        try:
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK).update(
                actions=[BlobRow.state.set(target), BlobRow.version.set(version + 1)], condition=condition
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return version + 1

    @staticmethod
    def marked(job_id: int, blobs: list[tuple[int, str, int]]) -> set[str]:
        """Of (shard, digest, version) of marked blobs, the digests this run marked: its candidate row
        in that shard has the blob's version. One BatchGetItem per 100 blobs."""
        pks = {shard: keys.gc_shard_pk(job_id, shard) for shard in {s for s, _, _ in blobs}}
        items = batch_get_raw([(pks[shard], digest) for shard, digest, _ in blobs])
        found = {(i["pk"]["S"], i["sk"]["S"]): int(i["version"]["N"]) for i in items}
        return {digest for shard, digest, version in blobs if found.get((pks[shard], digest)) == version}

    def add_candidates(self, job_id: int, shard: int, candidates: list[Candidate]) -> None:
        expires = int(self._clock()) + _CANDIDATE_TTL_SECONDS
        with BatchWrite(GcCandidateRow) as batch:
            for c in candidates:
                batch.save(GcCandidateRow(keys.gc_shard_pk(job_id, shard), c.digest, version=c.version, size=c.size,
                                          repositories=c.repositories, expires_at=expires))  # fmt: skip

    @staticmethod
    def drop_tombstone(digest: str, version: int) -> None:
        """Remove an expired tombstone (moto has no TTL; on AWS the TTL usually did it already)."""
        delete_where(BlobRow(keys.blob_pk(digest), keys.BLOB_SK),
                     (BlobRow.state == "deleted") & (BlobRow.version == version))  # fmt: skip

    # Sweep.

    @staticmethod
    def candidates(job_id: int, shard: int, limit: int) -> list[Candidate]:
        rows = GcCandidateRow.query(keys.gc_shard_pk(job_id, shard), GcCandidateRow.sk < keys.GC_COUNTS_SK, limit=limit,
                                    consistent_read=True)  # fmt: skip
        return [Candidate(r.sk, int(r.version), int(r.size), [str(x) for x in r.repositories or []]) for r in rows]

    def claim(self, digest: str, version: int) -> bool:
        """`delete` (or a taken-over `deleting`) at the marked version -> `deleting` at version + 1;
        False if a client touched it. Idempotent: a retried sweep finds its own claim again."""
        mine = BlobRow.state.is_in("delete", "deleting") & (BlobRow.version == version)
        again = (BlobRow.state == "deleting") & (BlobRow.version == version + 1)
        try:
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK).update(
                actions=[BlobRow.state.set("deleting"), BlobRow.version.set(version + 1),
                         BlobRow.updated_at.set(int(self._clock()))],
                condition=mine | again,
            )  # fmt: skip
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @staticmethod
    def unlink(digest: str, repositories: list[str]) -> None:
        with BatchWrite(LinkRow) as batch:
            for repository in repositories:
                batch.delete(LinkRow(keys.repo_pk(repository), keys.link_sk(digest)))

    def commit_swept(self, job_id: int, shard: int, blob: Candidate, tombstone_ttl: int) -> bool:
        """One transaction: the blob row becomes a tombstone, the candidate row goes and the shard's
        counts grow. Counting with the candidate's removal is what makes a resumed sweep count
        each blob once. False if the candidate was already done."""
        pk = keys.gc_shard_pk(job_id, shard)
        digest, version, size = blob.digest, blob.version + 1, blob.size  # the claim bumped the version
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(
                    BlobRow(keys.blob_pk(digest), keys.BLOB_SK),
                    actions=[BlobRow.state.set("deleted"), BlobRow.version.set(version + 1),
                             BlobRow.expires_at.set(int(self._clock()) + tombstone_ttl)],
                    condition=(BlobRow.state == "deleting") & (BlobRow.version == version),
                )  # fmt: skip
                tx.delete(GcCandidateRow(pk, digest), condition=GcCandidateRow.pk.exists())
                tx.update(GcCandidateRow(pk, keys.GC_COUNTS_SK),
                          actions=[GcCandidateRow.size.add(size), GcCandidateRow.version.add(1)])  # fmt: skip
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    @staticmethod
    def drop_candidate(job_id: int, shard: int, digest: str) -> None:
        GcCandidateRow(keys.gc_shard_pk(job_id, shard), digest).delete()

    @staticmethod
    def shard_counts(job_id: int, shard: int) -> tuple[int, int]:
        """(blobs swept, bytes freed) by one shard so far."""
        try:
            row = GcCandidateRow.get(keys.gc_shard_pk(job_id, shard), keys.GC_COUNTS_SK, consistent_read=True)
        except GcCandidateRow.DoesNotExist:
            return 0, 0
        return int(row.version), int(row.size)

    # Quotas.

    @staticmethod
    def recompute_usage(project: str) -> tuple[int, int] | None:
        """Set the project's usage to the sum of its project-blob rows; (before, after) if it changed.
        The write is conditional on the usage read, so a concurrent push is never overwritten."""
        pk = keys.project_pk(project)
        try:
            row = ProjectRow.get(pk, keys.ENTITY_SK, consistent_read=True)
        except ProjectRow.DoesNotExist:
            return None
        total = sum(int(b.size) for b in ProjectBlobRow.query(pk, ProjectBlobRow.sk.startswith(keys.BLOB_PREFIX),
                                                              consistent_read=True))  # fmt: skip
        used = int(row.storage_used)
        if total == used:
            return None
        try:
            row.update(
                actions=[ProjectRow.storage_used.set(total), ProjectRow.storage_free.add(used - total)],
                condition=ProjectRow.storage_used == used,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return used, total


def _pages(client: Any, request: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """The pages of one Scan (or one segment of a parallel Scan), following `LastEvaluatedKey`."""
    request = dict(request)
    while True:
        page = client.scan(**request)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _parallel_pages(client: Any, requests: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Read each request's pages on a thread of its own; yield their items as pages arrive.

    A reader's error is raised here (after the others stop), and a consumer that stops early
    (an exception in the mark phase) stops the readers at their next page: nothing keeps
    scanning after the generator is closed."""
    pages: queue.Queue[list[dict[str, Any]] | BaseException | None] = queue.Queue(_SCAN_QUEUE)
    closed = threading.Event()

    def put(item: list[dict[str, Any]] | BaseException | None) -> bool:
        while not closed.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(request: dict[str, Any]) -> None:
        try:
            for page in _pages(client, request):
                if not put(page):
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            put(exc)
            return
        put(None)

    threads = [threading.Thread(target=read, args=(r,), name=f"gc-scan-{n}", daemon=True)
               for n, r in enumerate(requests)]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = pages.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield from item
    finally:
        closed.set()
        for thread in threads:
            thread.join()
