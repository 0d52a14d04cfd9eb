"""Harbor's security hub (`/security/summary`, `/security/vul`) over aggregates kept as scans end.

Harbor computes both answers with SQL joins over its report tables at request time. A request here
never Scans the table: the scans keep the aggregates (`stores/securityhub.py`) as they store a
vulnerability summary, and take an artifact's share back when a re-scan starts or the artifact is
deleted; the registry's artifact count moves with pushes (the `PUSH_ARTIFACT` event) and deletes.
As in Harbor, only the default scanner's reports count; with no default scanner the hub is empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core import scans
from chalicelib.core import securityhub as hub
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.core.artifacts import Tag
    from chalicelib.core.scanners import ScannerRegistration
    from chalicelib.stores.securityhub import ListedItem, SecurityHubStore


class DefaultScanner(Protocol):
    def default(self) -> ScannerRegistration | None: ...


class TagReader(Protocol):
    def tags_of(self, repository: str, digests: list[str], per_artifact: int) -> dict[str, list[Tag]]: ...
    def tag_rows(self, repository: str, names: dict[str, list[str]]) -> dict[str, list[Tag]]: ...


# Tags shown per finding with `with_tag` (Harbor shows at most 10).
TAGS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class VulPage:
    items: list[dict[str, Any]]
    total: int


class SecurityHubService:
    def __init__(self, store: SecurityHubStore, scanners: DefaultScanner, tags: TagReader) -> None:
        self._store = store
        self._scanners = scanners
        self._tags = tags

    # Reads.

    def summary(self, *, with_cve: bool, with_artifact: bool) -> dict[str, Any]:
        """Harbor's `SecuritySummary`: zero and empty fields Harbor leaves out are left out."""
        default = self._scanners.default()
        if default is None:
            return _summary_shape(dict.fromkeys(hub.COUNT_COLUMNS, 0), 0, 0, 0)
        totals = self._store.totals(default.uuid)
        out = _summary_shape(totals.counts, totals.fixable, totals.scanned, self._store.artifact_count())
        if with_cve:
            cves = self._dangerous_cves(default.uuid)
            if cves:
                out["dangerous_cves"] = cves
        if with_artifact:
            top = [
                {"project_id": a.project_id, "repository_name": a.repository, "digest": a.digest,
                 "critical_cnt": a.counts["critical_cnt"], "high_cnt": a.counts["high_cnt"],
                 "medium_cnt": a.counts["medium_cnt"]}
                for a in self._store.top_artifacts(default.uuid, hub.TOP_N)
            ]  # fmt: skip
            if top:
                out["dangerous_artifacts"] = top
        return out

    def _dangerous_cves(self, registration: str) -> list[dict[str, Any]]:
        """The first `TOP_N` distinct (id, package, version) findings with a score, in key order."""
        seen: set[tuple[str, str, str]] = set()
        found: list[dict[str, Any]] = []
        for listed in self._store.scored_items(registration, page_size=50):
            item = listed.item
            key = (item.cve_id, item.package, item.version)
            if key in seen:
                continue
            seen.add(key)
            found.append(_omit_empty({"cve_id": item.cve_id, "severity": item.severity, "cvss_score_v3": item.cvss,
                                      "desc": item.description, "package": item.package,
                                      "version": item.version}))  # fmt: skip
            if len(found) == hub.TOP_N:
                break
        return found

    def vulnerabilities(self, wanted: hub.VulFilter, offset: int, size: int, *, tune_count: bool,
                        with_tag: bool) -> VulPage:  # fmt: skip
        """One page of Harbor's vulnerability list and the total (-1 with `tune_count` past 1,000)."""
        default = self._scanners.default()
        if default is None:
            return VulPage([], 0)
        exact = {hub.EXACT_KEYS[k]: v for k, v in wanted.exact.items()}
        score = hub.score_bounds(*wanted.score) if wanted.score is not None else None
        matches: Iterator[ListedItem] = self._store.items(default.uuid, exact, score)
        if wanted.tag is not None:
            matches = iter(self._tagged(list(matches), wanted.tag))
        page: list[ListedItem] = []
        total = 0
        for listed in matches:
            if offset <= total < offset + size:
                page.append(listed)
            total += 1
            if tune_count and total > hub.TUNE_COUNT_LIMIT and total >= offset + size:
                total = -1
                break
        tags: dict[tuple[str, str], list[str]] = {}
        if with_tag:
            by_repository: dict[str, list[str]] = {}
            for listed in page:
                by_repository.setdefault(listed.repository, []).append(listed.digest)
            for repository, digests in by_repository.items():
                for digest, found in self._tags.tags_of(repository, sorted(set(digests)), TAGS_SHOWN).items():
                    tags[repository, digest] = [t.name for t in found]
        return VulPage([_item_view(x, tags.get((x.repository, x.digest)) if with_tag else None) for x in page], total)

    def _tagged(self, items: list[ListedItem], tag: str) -> list[ListedItem]:
        """The findings of artifacts that carry `tag` in their repository (one batch read each)."""
        by_repository: dict[str, set[str]] = {}
        for listed in items:
            by_repository.setdefault(listed.repository, set()).add(listed.digest)
        tagged: set[tuple[str, str]] = set()
        for repository, digests in by_repository.items():
            found = self._tags.tag_rows(repository, {d: [tag] for d in digests})
            tagged.update((repository, d) for d, rows in found.items() if rows)
        return [x for x in items if (x.repository, x.digest) in tagged]

    # Keeping the aggregates (called by the scans and the manifests services).

    def report_stored(self, registration: str, repository: str, digest: str, *, project_id: int,
                      summary: scans.ReportSummary, document: Mapping[str, Any]) -> None:  # fmt: skip
        """A vulnerability summary became Success: add the artifact's share."""
        self._store.record(registration, repository, digest, project_id=project_id,
                           counts=hub.counts_of(summary.counts), fixable=summary.fixable,
                           items=hub.items_of(document))  # fmt: skip

    def report_replaced(self, repository: str, digest: str, summaries: Mapping[str, scans.ReportSummary]) -> None:
        """The artifact's vulnerability summaries are going (a re-scan starts, the artifact is
        deleted): take back what a successful one added. Nothing to read when none succeeded."""
        for mime in scans.VULNERABILITY_REPORTS:
            summary = summaries.get(mime)
            if summary is not None and summary.status == scans.ScanStatus.SUCCESS:
                self._store.forget(summary.registration, repository, digest)

    def artifact_deleted(self, repository: str, digest: str, summaries: Mapping[str, scans.ReportSummary]) -> None:
        """After the row is gone; a failure here is logged, never the delete's."""
        try:
            self.report_replaced(repository, digest, summaries)
            self._store.uncount_artifact(repository, digest)
        except Exception:
            logger.exception("security hub not updated after a delete", repository=repository, digest=digest)

    def on_event(self, event: Event) -> None:
        if event.type is EventType.PUSH_ARTIFACT and event.repository and event.digest:
            try:
                self._store.count_artifact(event.repository, event.digest)
            except Exception:
                logger.exception("artifact not counted", repository=event.repository, digest=event.digest)


def _summary_shape(counts: Mapping[str, int], fixable: int, scanned: int, artifacts: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "critical_cnt": counts["critical_cnt"], "high_cnt": counts["high_cnt"], "medium_cnt": counts["medium_cnt"],
        "low_cnt": counts["low_cnt"], "none_cnt": counts["none_cnt"], "unknown_cnt": counts["unknown_cnt"],
        "total_vuls": sum(counts[c] for c in hub.COUNT_COLUMNS), "scanned_cnt": scanned,
        "total_artifact": artifacts, "fixable_cnt": fixable,
    }  # fmt: skip
    for optional in ("high_cnt", "none_cnt", "unknown_cnt"):  # Harbor omits these when zero
        if not out[optional]:
            del out[optional]
    return out


def _omit_empty(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v not in (None, "", 0, [])}


def _item_view(listed: ListedItem, tags: list[str] | None) -> dict[str, Any]:
    item = listed.item
    out = _omit_empty({
        "project_id": listed.project_id, "repository_name": listed.repository, "digest": listed.digest,
        "cve_id": item.cve_id, "severity": item.severity, "status": item.status, "cvss_v3_score": item.cvss,
        "package": item.package, "version": item.version, "fixed_version": item.fixed_version,
        "desc": item.description,
    })  # fmt: skip
    out["links"] = list(item.links)
    if tags:
        out["tags"] = tags
    return out
