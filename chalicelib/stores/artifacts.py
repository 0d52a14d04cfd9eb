"""Artifact reads over the manifest rows: the push-time list, one artifact, parents, accessories,
the tags of an artifact, and the coalesced pull-time writes (keys in `keys.py`).

Paging with Harbor's page numbers on DynamoDB. A list page is one Query on a keys-only `gsi1`
partition in push-time order with `Limit`, then one BatchGetItem of the rows (and, for the
artifact list, the tags of each). How the Query finds its start:

- with a cursor (the `Link: rel="next"` URL carries one: the last key of the previous page),
  `ExclusiveStartKey` starts right there: constant work whatever the page number;
- with only a page number (a client jumping to page N), the Query reads and drops the keys of the
  pages before it. Keys are small (about 200 bytes), so one Query call returns up to 1 MB, roughly
  5,000 keys: the number of calls stays constant up to page ~5000/page_size and then grows by one per
  5,000 keys skipped; the read units grow with the offset.

`X-Total-Count` is a `Select=COUNT` Query over the same keys: one call per ~5,000 keys, so not
constant either (two calls for 5,000 artifacts, three for 10,000 tags).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalicelib.core import jsondoc, scans
from chalicelib.core import mediatypes as mt
from chalicelib.core.artifacts import FILTER_MAX, Accessory, Artifact, Tag, accessory_type, cosign_tag
from chalicelib.core.manifest import index_descriptors
from chalicelib.errors import BadRequest
from chalicelib.stores import keys
from chalicelib.stores.tables import ManifestRow, ParentRow, ReferrerRow, TagRow, batch_get_raw

_INDEX = "gsi1"
# Tag Queries of one list page in flight at once (botocore's pool holds 10 connections by default).
_TAG_QUERY_THREADS = 8


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the opaque cursor that starts the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ListedArtifact:
    """One entry of an artifact list before its row is read: which artifact, and `order`, which
    sorts entries of several repositories as each list is sorted (push time, then digest)."""

    repository: str
    digest: str
    order: str


def _listed(key: dict[str, Any]) -> ListedArtifact:
    return ListedArtifact(
        repository=key["pk"]["S"].removeprefix(keys.REPO_PREFIX),
        digest=key["sk"]["S"].removeprefix(keys.MANIFEST_PREFIX),
        order=key["gsi1sk"]["S"],
    )


def _tag_name(key: dict[str, Any]) -> str:
    return str(key["gsi1sk"]["S"]).removeprefix(keys.TAG_PREFIX)


def encode_cursor(key: dict[str, Any]) -> str:
    flat = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(flat, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    """A cursor back to an ExclusiveStartKey; it must name the partition being listed."""
    try:
        flat = jsondoc.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # bad base64 or jsondoc.JsonInvalid
        raise BadRequest("cursor is not valid") from None
    names = {"pk", "sk", "gsi1pk", "gsi1sk"}
    if not isinstance(flat, dict) or set(flat) != names or not all(isinstance(v, str) for v in flat.values()):
        raise BadRequest("cursor is not valid")
    if flat["gsi1pk"] != partition:
        raise BadRequest("cursor belongs to another list")
    return {name: {"S": value} for name, value in flat.items()}


class ArtifactStore:
    # Reads of one artifact.

    def get(self, repository: str, digest: str) -> Artifact | None:
        try:
            row = ManifestRow.get(keys.repo_pk(repository), keys.manifest_sk(digest))
        except ManifestRow.DoesNotExist:
            return None
        return _artifact(repository, row)

    def get_many(self, repository: str, digests: Iterable[str]) -> dict[str, Artifact]:
        pk = keys.repo_pk(repository)
        items = batch_get_raw([(pk, keys.manifest_sk(d)) for d in digests])
        rows = [ManifestRow.from_raw_data(item) for item in items]
        return {row.sk.removeprefix(keys.MANIFEST_PREFIX): _artifact(repository, row) for row in rows}

    def live_parents(self, repository: str, digest: str) -> list[str]:
        """Indexes that reference the manifest and still exist (an edge of a failed push is ignored)."""
        pk = keys.repo_pk(repository)
        prefix = keys.parent_prefix(digest)
        edges = ParentRow.query(pk, ParentRow.sk.startswith(prefix), consistent_read=True)
        parents = [edge.sk.removeprefix(prefix) for edge in edges]
        if not parents:
            return []
        items = batch_get_raw([(pk, keys.manifest_sk(p)) for p in parents])
        found = {item["sk"]["S"].removeprefix(keys.MANIFEST_PREFIX) for item in items}
        return [p for p in parents if p in found]

    def relist(self, repository: str, digest: str) -> None:
        """Back into the list: a child no index references any more, which is kept for its tags."""
        row = ManifestRow(keys.repo_pk(repository), keys.manifest_sk(digest))
        try:
            row.update(
                actions=[ManifestRow.gsi1pk.set(keys.artifacts_pk(repository))],
                condition=ManifestRow.pk.exists() & ManifestRow.accessory_type.does_not_exist(),
            )
        except Exception as exc:  # a deleted or hidden row simply stays as it is
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise

    # Accessories.

    def accessory_digests(self, repository: str, digest: str) -> list[str]:
        """OCI 1.1 referrers of the digest, plus the manifest cosign's legacy tag points at."""
        pk = keys.repo_pk(repository)
        prefix = keys.referrer_prefix(digest)
        found = [row.sk.removeprefix(prefix) for row in ReferrerRow.query(pk, ReferrerRow.sk.startswith(prefix))]
        tag = cosign_tag(digest)
        if tag:
            try:
                signed = str(TagRow.get(pk, keys.tag_sk(tag), attributes_to_get=["digest"]).digest)
            except TagRow.DoesNotExist:
                signed = None
            if signed and signed not in found:
                found.append(signed)
        return found

    def accessories(self, repository: str, digest: str) -> list[Accessory]:
        digests = self.accessory_digests(repository, digest)
        rows = self.get_many(repository, digests) if digests else {}
        return [
            Accessory(
                subject_repository=repository,
                subject=digest,
                digest=a.digest,
                type=a.accessory_type or accessory_type(a.artifact_type, a.media_type),
                size=a.size,
                push_time=a.push_time,
            )
            for d in digests
            if (a := rows.get(d)) is not None
        ]

    # Tags.

    def tags_of(self, repository: str, digests: list[str], per_artifact: int) -> dict[str, list[Tag]]:
        """Up to `per_artifact` tags of each digest: one keys-only Query each (run side by side, so a
        page of 50 artifacts waits for about one Query, not 50), then one BatchGetItem per 100."""

        def names_of(digest: str) -> list[str]:
            page = self._key_page(keys.tags_by_digest_pk(repository, digest), per_artifact, True, None, 0)
            return [_tag_name(k) for k in page.items]

        if len(digests) <= 1:
            return self._tags(repository, {d: names_of(d) for d in digests})
        with ThreadPoolExecutor(max_workers=min(_TAG_QUERY_THREADS, len(digests))) as pool:
            found = dict(zip(digests, pool.map(names_of, digests), strict=True))
        return self._tags(repository, found)

    def tag_rows(self, repository: str, names: dict[str, list[str]]) -> dict[str, list[Tag]]:
        return self._tags(repository, names)

    @staticmethod
    def _tags(repository: str, names: dict[str, list[str]]) -> dict[str, list[Tag]]:
        pk = keys.repo_pk(repository)
        wanted = [(pk, keys.tag_sk(n)) for tags in names.values() for n in tags]
        # Not the copy of the manifest a tag row carries for pulls: only what a tag listing shows.
        items = batch_get_raw(wanted, attributes=["pk", "sk", "digest", "updated_at", "pull_time"])
        rows = {i["sk"]["S"].removeprefix(keys.TAG_PREFIX): TagRow.from_raw_data(i) for i in items}
        out: dict[str, list[Tag]] = {}
        for digest, tags in names.items():
            out[digest] = [
                Tag(repository, n, digest, int(rows[n].updated_at), _optional_int(rows[n].pull_time))
                for n in tags
                if n in rows and rows[n].digest == digest
            ]
        return out

    # Listing (see the module docstring).

    def listed_page(
        self, repository: str, size: int, ascending: bool, cursor: str | None, offset: int
    ) -> Page[ListedArtifact]:
        """One page of the repository's artifact list in push-time order: after `cursor` (from the
        previous page), else after `offset` entries."""
        page = self._key_page(keys.artifacts_pk(repository), size, ascending, cursor, offset)
        return Page([_listed(k) for k in page.items], page.next_cursor)

    def listed_count(self, repository: str) -> int:
        """How many artifacts the repository's list shows (a `Select=COUNT` Query, no item data)."""
        return self._count(keys.artifacts_pk(repository))

    def all_listed(self, repository: str, ascending: bool) -> list[ListedArtifact]:
        """Every entry of the repository's artifact list, for filtered lists; refused past FILTER_MAX."""
        return [_listed(k) for k in self._all_keys(keys.artifacts_pk(repository), ascending)]

    def listed(self, repository: str, ascending: bool) -> list[Artifact]:
        """Every artifact the repository's list shows, rows read; refused past FILTER_MAX."""
        return self.artifacts_of(self.all_listed(repository, ascending))

    def tag_name_page(self, repository: str, digest: str, size: int, cursor: str | None, offset: int) -> Page[str]:
        """One page of the names of the tags pointing at `digest`, in name order."""
        page = self._key_page(keys.tags_by_digest_pk(repository, digest), size, True, cursor, offset)
        return Page([_tag_name(k) for k in page.items], page.next_cursor)

    def tag_count(self, repository: str, digest: str) -> int:
        return self._count(keys.tags_by_digest_pk(repository, digest))

    def _key_page(
        self, partition: str, size: int, ascending: bool, cursor: str | None, offset: int
    ) -> Page[dict[str, Any]]:
        """The keys of one page of a `gsi1` partition: after `cursor`, else after `offset` keys."""
        start = decode_cursor(cursor, partition) if cursor else None
        skip = 0 if start else offset
        collected: list[dict[str, Any]] = []
        more = True
        while more and len(collected) < skip + size + 1:
            result = self._query(partition, ascending, skip + size + 1 - len(collected), start)
            collected.extend(result.get("Items", []))
            start = result.get("LastEvaluatedKey")
            more = start is not None
        page = collected[skip : skip + size]
        has_next = len(collected) > skip + size
        return Page(page, encode_cursor(page[-1]) if has_next and page else None)

    def _count(self, partition: str) -> int:
        total, start = 0, None
        while True:
            result = self._query(partition, True, None, start, select_count=True)
            total += int(result.get("Count", 0))
            start = result.get("LastEvaluatedKey")
            if start is None:
                return total

    def _all_keys(self, partition: str, ascending: bool) -> list[dict[str, Any]]:
        """Every key of the partition; refused past FILTER_MAX."""
        collected: list[dict[str, Any]] = []
        start = None
        while True:
            result = self._query(partition, ascending, FILTER_MAX + 1 - len(collected), start)
            collected.extend(result.get("Items", []))
            start = result.get("LastEvaluatedKey")
            if len(collected) > FILTER_MAX:
                raise BadRequest(f"the query matches too much to filter (over {FILTER_MAX}); narrow it")
            if start is None:
                return collected

    def artifacts_of(self, page: list[ListedArtifact]) -> list[Artifact]:
        """The artifacts of list entries (of one or more repositories), in the entries' order."""
        wanted = [(entry.repository, entry.digest) for entry in page]
        items = batch_get_raw([(keys.repo_pk(r), keys.manifest_sk(d)) for r, d in wanted])
        found = {}
        for item in items:
            row = ManifestRow.from_raw_data(item)
            repository = row.pk.removeprefix(keys.REPO_PREFIX)
            found[repository, row.sk.removeprefix(keys.MANIFEST_PREFIX)] = _artifact(repository, row)
        return [found[w] for w in wanted if w in found]

    @staticmethod
    def _query(
        partition: str,
        ascending: bool,
        limit: int | None,
        start: dict[str, Any] | None,
        *,
        select_count: bool = False,
    ) -> dict[str, Any]:
        client: Any = ManifestRow._get_connection().connection.client
        params: dict[str, Any] = {
            "TableName": ManifestRow.Meta.table_name,
            "IndexName": _INDEX,
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ScanIndexForward": ascending,
        }
        if select_count:
            params["Select"] = "COUNT"
        if limit is not None:
            params["Limit"] = max(1, limit)
        if start is not None:
            params["ExclusiveStartKey"] = start
        result: dict[str, Any] = client.query(**params)
        return result

    # Pull times (written by the coalescing recorder in services/artifacts.py, never on a pull).

    def record_pulls(self, pulled: dict[tuple[str, str], int], tags: dict[tuple[str, str], tuple[str, int]]) -> None:
        """One UpdateItem per artifact (only forward in time, only if it still exists) and one per
        tag pulled by name (only while it still points at the pulled digest). Repository pull counts
        are written beside them (services/pulls.py)."""
        for (repository, tag), (digest, when) in tags.items():
            tag_row = TagRow(keys.repo_pk(repository), keys.tag_sk(tag))
            condition = (TagRow.digest == digest) & (TagRow.pull_time.does_not_exist() | (TagRow.pull_time < when))
            _ignore_condition(lambda r=tag_row, c=condition, w=when: r.update([TagRow.pull_time.set(w)], c))
        for (repository, digest), when in pulled.items():
            row = ManifestRow(keys.repo_pk(repository), keys.manifest_sk(digest))
            condition = ManifestRow.pk.exists() & (
                ManifestRow.pull_time.does_not_exist() | (ManifestRow.pull_time < when)
            )
            _ignore_condition(lambda r=row, c=condition, w=when: r.update([ManifestRow.pull_time.set(w)], c))


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _ignore_condition(write: Any) -> None:
    try:
        write()
    except Exception as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise


def _artifact(repository: str, row: ManifestRow) -> Artifact:
    digest = row.sk.removeprefix(keys.MANIFEST_PREFIX)
    extra = json.loads(row.extra_attrs) if row.extra_attrs else {}
    return Artifact(
        repository=repository,
        digest=digest,
        manifest_media_type=row.media_type,
        media_type=row.config_media_type or row.media_type,
        artifact_type=row.artifact_type,
        kind=row.kind or "UNKNOWN",
        # Rows written before artifact records existed fall back to what they have.
        size=int(row.total_size if row.total_size is not None else row.size or 0),
        push_time=int(row.push_time if row.push_time is not None else row.created_at or 0),
        pull_time=int(row.pull_time) if row.pull_time is not None else None,
        extra_attrs=extra if isinstance(extra, dict) else {},
        icon=row.icon or "",
        annotations=row.annotations.as_dict() if row.annotations else {},
        accessory_type=row.accessory_type,
        subject=row.subject,
        children=tuple(str(c) for c in row.children or []),
        descriptors=tuple(index_descriptors(bytes(row.body))) if row.media_type in mt.INDEXES and row.body else (),
        scans=scan_summaries(row),
    )


SCAN_ATTRIBUTES = {
    scans.VULNERABILITY_REPORT_GENERIC: "scan_generic",
    scans.VULNERABILITY_REPORT_NATIVE: "scan_native",
    scans.SBOM_REPORT: "scan_sbom",
}


def scan_summaries(row: ManifestRow) -> dict[str, scans.ReportSummary]:
    """The row's report summaries by MIME type (a damaged one reads as absent)."""
    found: dict[str, scans.ReportSummary] = {}
    for mime, attribute in SCAN_ATTRIBUTES.items():
        text = getattr(row, attribute, None)
        if text:
            found.update(scans.decode(f'{{"{mime}":{text}}}'))
    return found
