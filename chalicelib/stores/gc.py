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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.models import BatchWrite
from pynamodb.transactions import TransactWrite

from chalicelib.stores import keys
from chalicelib.stores.objects import StoredObject
from chalicelib.stores.tables import (
    BlobRow,
    GcCandidateRow,
    LinkRow,
    ProjectBlobRow,
    ProjectRow,
    _Base,
    batch_get_raw,
    connection,
    delete_where,
)

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore

# The attributes the mark phase reads from every row (names, because SIZE is a reserved word).
_PROJECTION = ["pk", "sk", "state", "version", "size", "updated_at", "created_at", "expires_at", "pending",
               "digest", "children", "subject", "refs_in_body", "in_s3"]  # fmt: skip
_SCAN_QUEUE = 32  # pages of a parallel Scan waiting for the mark phase (1 MB each at most)
_COUNTS_SK = "~COUNTS"  # sorts after every digest in a shard partition
# Candidate rows of a run that never finished are dropped by the table's TTL after this long.
_CANDIDATE_TTL_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class Candidate:
    digest: str
    version: int
    size: int
    repositories: list[str]


class GcStore:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    # Reading everything (mark phase only).

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

    def objects(self, prefix: str) -> Iterator[StoredObject]:
        return self._objects.list_objects(prefix)

    def multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, int]]:
        """(key, upload id, initiated) of unfinished multipart uploads under `prefix`."""
        return self._objects.list_multipart_uploads(prefix)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._objects.abort_multipart(key, upload_id)

    def delete_objects(self, object_keys: list[str]) -> None:
        """Delete objects (absent keys are not an error)."""
        self._objects.delete(*object_keys)

    def existing_blob_rows(self, digests: list[str]) -> set[str]:
        items = batch_get_raw([(keys.blob_pk(d), keys.BLOB_SK) for d in digests])
        return {i["pk"]["S"].removeprefix("BLOB#") for i in items}

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

    @staticmethod
    def add_candidates(job_id: int, shard: int, candidates: list[Candidate]) -> None:
        expires = int(time.time()) + _CANDIDATE_TTL_SECONDS
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
        rows = GcCandidateRow.query(keys.gc_shard_pk(job_id, shard), GcCandidateRow.sk < _COUNTS_SK, limit=limit,
                                    consistent_read=True)  # fmt: skip
        return [Candidate(r.sk, int(r.version), int(r.size), [str(x) for x in r.repositories or []]) for r in rows]

    @staticmethod
    def claim(digest: str, version: int) -> bool:
        """`delete` (or a taken-over `deleting`) at the marked version -> `deleting` at version + 1;
        False if a client touched it. Idempotent: a retried sweep finds its own claim again."""
        mine = BlobRow.state.is_in("delete", "deleting") & (BlobRow.version == version)
        again = (BlobRow.state == "deleting") & (BlobRow.version == version + 1)
        try:
            BlobRow(keys.blob_pk(digest), keys.BLOB_SK).update(
                actions=[BlobRow.state.set("deleting"), BlobRow.version.set(version + 1),
                         BlobRow.updated_at.set(int(time.time()))],
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

    @staticmethod
    def commit_swept(job_id: int, shard: int, blob: Candidate, tombstone_ttl: int) -> bool:
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
                             BlobRow.expires_at.set(int(time.time()) + tombstone_ttl)],
                    condition=(BlobRow.state == "deleting") & (BlobRow.version == version),
                )  # fmt: skip
                tx.delete(GcCandidateRow(pk, digest), condition=GcCandidateRow.pk.exists())
                tx.update(GcCandidateRow(pk, _COUNTS_SK),
                          actions=[GcCandidateRow.size.add(size), GcCandidateRow.version.add(1)])  # fmt: skip
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in (exc.cancellation_reasons or [])]
            if "ConditionalCheckFailed" in reasons:
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
            row = GcCandidateRow.get(keys.gc_shard_pk(job_id, shard), _COUNTS_SK, consistent_read=True)
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
        total = sum(int(b.size) for b in ProjectBlobRow.query(pk, ProjectBlobRow.sk.startswith("BLOB#"),
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
