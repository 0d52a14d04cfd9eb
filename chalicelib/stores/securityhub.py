"""The security hub's aggregates (layout in `keys.py`).

What an artifact's vulnerability report adds is written when its summary is stored and taken back
when the summary is replaced (a re-scan starts) or the artifact is deleted, so every read of the
hub is a GetItem or a Query and none Scans the table:

- `record` writes the findings (BatchWriteItem, 25 a call), then one transaction: the contribution
  row (on condition that none exists), the ranking row and the totals (ADD);
- `forget` reads the contribution row, deletes the findings it names, then one transaction deletes
  the contribution (on condition that it still exists, so two forgets subtract once) and the
  ranking row and subtracts the same numbers from the totals.

A step that dies between the findings and the transaction is safe to run again: the findings'
keys are deterministic, and the transaction is what counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import securityhub as hub
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    HubArtifactCountRow,
    HubContributionRow,
    HubCountedRow,
    HubTopRow,
    HubTotalsRow,
    HubVulRow,
    connection,
)


@dataclass(frozen=True, slots=True)
class Totals:
    counts: dict[str, int]
    fixable: int
    scanned: int


@dataclass(frozen=True, slots=True)
class TopArtifact:
    project_id: int
    repository: str
    digest: str
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ListedItem:
    project_id: int
    repository: str
    digest: str
    item: hub.HubItem


def _canceled(exc: TransactWriteError) -> bool:
    return exc.cause_response_code == "TransactionCanceledException"


class SecurityHubStore:
    # Totals and ranking.

    def totals(self, registration: str) -> Totals:
        try:
            row = HubTotalsRow.get(keys.sechub_pk(registration), keys.SECHUB_TOTALS_SK)
        except HubTotalsRow.DoesNotExist:
            return Totals(dict.fromkeys(hub.COUNT_COLUMNS, 0), 0, 0)
        counts = {c: max(0, int(getattr(row, c) or 0)) for c in hub.COUNT_COLUMNS}
        return Totals(counts, max(0, int(row.fixable_cnt or 0)), max(0, int(row.scanned_cnt or 0)))

    def top_artifacts(self, registration: str, limit: int) -> list[TopArtifact]:
        rows = HubTopRow.query(keys.sechub_top_pk(registration), limit=limit)
        return [
            TopArtifact(int(r.project_id), r.repository, r.digest,
                        {c: int(getattr(r, c) or 0) for c in ("critical_cnt", "high_cnt", "medium_cnt", "low_cnt")})
            for r in rows
        ]  # fmt: skip

    def scored_items(self, registration: str, page_size: int) -> Iterator[ListedItem]:
        """Findings with a CVSS v3 score, highest first (a Query read page by page, lazily)."""
        rows = HubVulRow.query(keys.sechub_vul_pk(registration), HubVulRow.sk < "T", page_size=page_size)
        return (_listed(r) for r in rows)

    def items(self, registration: str, exact: Mapping[str, str | int],
              score: tuple[str, str] | None, page_size: int = 500) -> Iterator[ListedItem]:  # fmt: skip
        """Findings in list order (score descending), the score range as the key condition and the
        exact matches as a filter; a lazy Query read page by page."""
        condition = HubVulRow.sk.between(*score) if score is not None else None
        filters = None
        for attribute, value in exact.items():
            term = getattr(HubVulRow, attribute) == value
            filters = term if filters is None else filters & term
        rows = HubVulRow.query(keys.sechub_vul_pk(registration), condition, filter_condition=filters,
                               page_size=page_size)  # fmt: skip
        return (_listed(r) for r in rows)

    # Keeping the aggregates.

    def record(self, registration: str, repository: str, digest: str, *, project_id: int,
               counts: Mapping[str, int], fixable: int, items: list[hub.HubItem]) -> None:  # fmt: skip
        """Add one artifact's report (replacing what it added before, if anything)."""
        self.forget(registration, repository, digest)
        item_sks = [item.sort_key(repository, digest) for item in items]
        pk = keys.sechub_vul_pk(registration)
        with HubVulRow.batch_write() as batch:
            for item, sk in zip(items, item_sks, strict=True):
                batch.save(HubVulRow(
                    pk, sk, project_id=project_id, repository=repository, digest=digest, cve_id=item.cve_id,
                    package=item.package, version=item.version, severity=item.severity,
                    fixed_version=item.fixed_version or None, status=item.status or None, cvss=item.cvss,
                    description=item.description or None, links=list(item.links) or None,
                ))  # fmt: skip
        danger = hub.danger_key(counts)
        top_sk = keys.sechub_top_sk(danger, repository, digest) if danger else None
        contribution = HubContributionRow(
            keys.sechub_pk(registration), keys.sechub_contribution_sk(repository, digest), project_id=project_id,
            counts=json.dumps({**counts, "fixable": fixable}, sort_keys=True), top_sk=top_sk,
            item_sks=set(item_sks) or None,
        )  # fmt: skip
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(contribution, condition=HubContributionRow.pk.does_not_exist())
                if top_sk:
                    tx.save(HubTopRow(keys.sechub_top_pk(registration), top_sk, project_id=project_id,
                                      repository=repository, digest=digest,
                                      critical_cnt=int(counts.get("critical_cnt", 0)),
                                      high_cnt=int(counts.get("high_cnt", 0)),
                                      medium_cnt=int(counts.get("medium_cnt", 0)),
                                      low_cnt=int(counts.get("low_cnt", 0))))  # fmt: skip
                tx.update(HubTotalsRow(keys.sechub_pk(registration), keys.SECHUB_TOTALS_SK),
                          actions=_adds(counts, fixable, 1))  # fmt: skip
        except TransactWriteError as exc:
            if not _canceled(exc):
                raise
            # A concurrent record of the same artifact won: its findings are the same keys.

    def forget(self, registration: str, repository: str, digest: str) -> bool:
        """Take back what the artifact's report added; False when it added nothing."""
        pk, sk = keys.sechub_pk(registration), keys.sechub_contribution_sk(repository, digest)
        try:
            row = HubContributionRow.get(pk, sk, consistent_read=True)
        except HubContributionRow.DoesNotExist:
            return False
        vul_pk = keys.sechub_vul_pk(registration)
        with HubVulRow.batch_write() as batch:
            for item_sk in row.item_sks or ():
                batch.delete(HubVulRow(vul_pk, item_sk))
        stored: dict[str, Any] = json.loads(row.counts)
        fixable = int(stored.pop("fixable", 0))
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(HubContributionRow(pk, sk), condition=HubContributionRow.pk.exists())
                if row.top_sk:
                    tx.delete(HubTopRow(keys.sechub_top_pk(registration), row.top_sk))
                tx.update(HubTotalsRow(pk, keys.SECHUB_TOTALS_SK), actions=_adds(stored, fixable, -1))
        except TransactWriteError as exc:
            if not _canceled(exc):
                raise
            return False
        return True

    # The registry's artifact count.

    def count_artifact(self, repository: str, digest: str) -> None:
        """Count a stored artifact once (a re-push finds its mark and changes nothing)."""
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(HubCountedRow(keys.sechub_counted_pk(repository), digest),
                        condition=HubCountedRow.pk.does_not_exist())  # fmt: skip
                tx.update(HubArtifactCountRow(keys.SECHUB_PK, keys.SECHUB_ARTIFACTS_SK),
                          actions=[HubArtifactCountRow.artifacts.add(1)])  # fmt: skip
        except TransactWriteError as exc:
            if not _canceled(exc):
                raise

    def uncount_artifact(self, repository: str, digest: str) -> None:
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(HubCountedRow(keys.sechub_counted_pk(repository), digest),
                          condition=HubCountedRow.pk.exists())  # fmt: skip
                tx.update(HubArtifactCountRow(keys.SECHUB_PK, keys.SECHUB_ARTIFACTS_SK),
                          actions=[HubArtifactCountRow.artifacts.add(-1)])  # fmt: skip
        except TransactWriteError as exc:
            if not _canceled(exc):
                raise

    def artifact_count(self) -> int:
        try:
            return max(0, int(HubArtifactCountRow.get(keys.SECHUB_PK, keys.SECHUB_ARTIFACTS_SK).artifacts or 0))
        except HubArtifactCountRow.DoesNotExist:
            return 0


def _adds(counts: Mapping[str, Any], fixable: int, sign: int) -> list[Any]:
    actions = [getattr(HubTotalsRow, c).add(sign * int(counts.get(c, 0))) for c in hub.COUNT_COLUMNS]
    return [*actions, HubTotalsRow.fixable_cnt.add(sign * fixable), HubTotalsRow.scanned_cnt.add(sign)]


def _listed(row: HubVulRow) -> ListedItem:
    item = hub.HubItem(
        cve_id=row.cve_id, package=row.package, version=row.version, severity=row.severity,
        fixed_version=row.fixed_version or "", status=row.status or "",
        cvss=float(row.cvss) if row.cvss is not None else None, description=row.description or "",
        links=tuple(str(x) for x in row.links or ()),
    )  # fmt: skip
    return ListedItem(int(row.project_id), row.repository, row.digest, item)
