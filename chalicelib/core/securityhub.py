"""The security hub's model and Harbor's rules for it. Pure: no I/O.

Harbor answers `/security/summary` and `/security/vul` with SQL over its report tables, counting the
reports of the default scanner only. Here the same answers come from aggregates kept when a report
summary is stored or replaced (`stores/securityhub.py`); this module says what an artifact adds to
them and how their keys sort:

- counts per severity follow Harbor's report columns: Critical, High, Medium, Low, None (Harbor's
  `ParseSeverityVersion3` reads Negligible as None) and Unknown, plus the fixable count; the
  summary's `total_vuls` is their sum;
- the dangerous artifacts are the five with Critical to Low findings, ordered by their Critical,
  then High, Medium and Low counts, all descending;
- the dangerous CVEs are the five distinct (id, package, version) findings with a CVSS v3 score,
  by score and then severity, descending;
- the vulnerability list is ordered by CVSS v3 score descending, findings without one last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOP_N = 5
# Findings kept per artifact (highest scores first); the rest are counted but not listed.
MAX_ITEMS_PER_ARTIFACT = 5000
# Longest description kept with a finding (characters) and most links.
DESCRIPTION_MAX = 1024
LINKS_MAX = 8
# `tune_count`: past this many matches the total is answered as -1 (Harbor's limit).
TUNE_COUNT_LIMIT = 1000

# Harbor's severity levels for ordering (its dangerous CVE query's CASE), highest first.
_LEVELS = {"Critical": 5, "High": 4, "Medium": 3, "Low": 2, "None": 1, "Negligible": 1, "Unknown": 0}
# Our severity names -> Harbor's report count columns.
COLUMNS = {"Critical": "critical_cnt", "High": "high_cnt", "Medium": "medium_cnt", "Low": "low_cnt",
           "Negligible": "none_cnt", "None": "none_cnt", "Unknown": "unknown_cnt"}  # fmt: skip
COUNT_COLUMNS = ("critical_cnt", "high_cnt", "medium_cnt", "low_cnt", "none_cnt", "unknown_cnt")
_SCORE_SCALE = 100
_SCORE_MAX = 10 * _SCORE_SCALE


@dataclass(frozen=True, slots=True)
class HubItem:
    """One finding as the hub lists it (Harbor's `VulnerabilityItem` minus the artifact)."""

    cve_id: str
    package: str
    version: str
    severity: str
    fixed_version: str = ""
    status: str = ""
    cvss: float | None = None
    description: str = ""
    links: tuple[str, ...] = ()

    def sort_key(self, repository: str, digest: str) -> str:
        """Score descending (none last), then severity descending, then a stable hash."""
        ident = "\x00".join((repository, digest, self.cve_id, self.package, self.version))
        suffix = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return f"{score_prefix(self.cvss)}#{9 - _LEVELS.get(self.severity, 0)}#{suffix}"


def score_prefix(score: float | None) -> str:
    """`S<inverted score, 5 digits>` for a score (higher scores sort first), `U` without one."""
    if score is None:
        return "U"
    scaled = min(_SCORE_MAX, max(0, round(score * _SCORE_SCALE)))
    return f"S{_SCORE_MAX - scaled:05d}"


def score_bounds(low: float | None, high: float | None) -> tuple[str, str]:
    """The sort-key range holding scores from `low` to `high` (inclusive; None: open)."""
    first = score_prefix(high if high is not None else 10.0)
    last = score_prefix(low if low is not None else 0.0)
    return first, f"{last}~"


def counts_of(summary_counts: Mapping[str, int]) -> dict[str, int]:
    """A report summary's counts per severity as Harbor's columns (every column present)."""
    out = dict.fromkeys(COUNT_COLUMNS, 0)
    for name, n in summary_counts.items():
        out[COLUMNS.get(name, "unknown_cnt")] += int(n)
    return out


def danger_key(counts: Mapping[str, int]) -> str | None:
    """The ranking sort key (most dangerous first), None when there is no Critical to Low finding."""
    ranked = [int(counts.get(c, 0)) for c in ("critical_cnt", "high_cnt", "medium_cnt", "low_cnt")]
    if sum(ranked) <= 0:
        return None
    return "#".join(f"{999_999_999 - min(n, 999_999_999):09d}" for n in ranked)


def _score(item: Mapping[str, Any]) -> float | None:
    preferred = item.get("preferred_cvss")
    value = preferred.get("score_v3") if isinstance(preferred, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def items_of(document: Mapping[str, Any]) -> list[HubItem]:
    """The findings of a (parsed) vulnerability report, once per (id, package, version) as the
    summary counts them, highest score first, at most `MAX_ITEMS_PER_ARTIFACT`."""
    seen: dict[tuple[str, str, str], HubItem] = {}
    for raw in document.get("vulnerabilities") or []:
        if not isinstance(raw, dict) or not _text(raw.get("id")):
            continue
        key = (_text(raw.get("id")), _text(raw.get("package")), _text(raw.get("version")))
        if key in seen:
            continue
        links = raw.get("links")
        seen[key] = HubItem(
            cve_id=key[0], package=key[1], version=key[2], severity=_text(raw.get("severity")) or "Unknown",
            fixed_version=_text(raw.get("fix_version")), status=_text(raw.get("status")), cvss=_score(raw),
            description=_text(raw.get("description"))[:DESCRIPTION_MAX],
            links=tuple(x for x in links if isinstance(x, str))[:LINKS_MAX] if isinstance(links, list) else (),
        )  # fmt: skip
    ordered = sorted(seen.values(), key=lambda i: (-(i.cvss if i.cvss is not None else -1.0),
                                                   -_LEVELS.get(i.severity, 0)))  # fmt: skip
    return ordered[:MAX_ITEMS_PER_ARTIFACT]


@dataclass(frozen=True, slots=True)
class VulFilter:
    """`/security/vul`'s `q`: exact matches, a score range, a tag."""

    exact: Mapping[str, str | int]
    score: tuple[float | None, float | None] | None = None
    tag: str | None = None


# `q` keys -> the item attribute they match exactly (`tag` and `cvss_score_v3` are special).
EXACT_KEYS = {"cve_id": "cve_id", "severity": "severity", "status": "status", "project_id": "project_id",
              "repository_name": "repository", "package": "package", "digest": "digest"}  # fmt: skip
