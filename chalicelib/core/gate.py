"""The "prevent vulnerable images from running" gate on manifest GET/HEAD: Harbor's rules, pure.

A project with metadata `prevent_vul: "true"` refuses pulls of artifacts whose vulnerability scan
says too much. The threshold is the project's `severity`, parsed as Harbor does: `none`, `low`,
`medium`, `high`, `critical` (case-insensitive), `negligible` counts as None, and anything else
(unset included) is Unknown. None and Unknown both have code 0, so with no threshold any finding at
all refuses the pull, Unknown ones included; from `low` up, Unknown and Negligible findings never do.

In order, as Harbor checks them:
1. gate off, or the pull is exempt (the scanner's own robot, a signing client, a signature): allow;
2. the artifact cannot be scanned (not an image, an accessory, no scanner): allow;
3. no report: refuse;
4. an index of type IMAGE or CNAB: allow (its children are gated when they are pulled). Here an
   index always passes (`judge`): its own row holds no report, only its children's rows do, and
   the client's next request pulls the child it runs by digest, which is gated;
5. a scan that did not succeed (Pending, Running, Error, Stopped ...): refuse;
6. the highest severity among findings not on the effective allowlist (an expired list counts as
   empty) at or above the threshold: refuse, quoting how many findings remain.
A refusal is HTTP 412 with code PROJECTPOLICYVIOLATION and Harbor's message, which scripts match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.core.allowlist import CveAllowlist, effective
from chalicelib.core.artifacts import COSIGN_SIGNATURE, NOTATION_SIGNATURE
from chalicelib.core.mediatypes import IMAGE_MANIFESTS
from chalicelib.core.scans import VULNERABILITY_REPORT_GENERIC, VULNERABILITY_REPORT_NATIVE, ReportSummary

# Harbor's severity names and codes (its `vuln.Severity`); any other name is 99.
SEVERITY_CODES: dict[str, int] = {
    "None": 0,
    "Unknown": 0,
    "Negligible": 1,
    "Low": 2,
    "Medium": 3,
    "High": 4,
    "Critical": 5,
}
UNRECOGNISED = 99
SUCCESS = "Success"
# Index types that pass the gate (Harbor's image and CNAB processors).
_PASSING_INDEX_TYPES = frozenset({"IMAGE", "CNAB"})


def severity_code(name: str | None) -> int:
    return SEVERITY_CODES.get(name or "", UNRECOGNISED)


def threshold(setting: str | None) -> str:
    """Harbor's `ParseSeverityVersion3` of the project's `severity` metadata."""
    word = (setting or "").strip().lower()
    if word == "negligible":
        return "None"
    titled = word.title()
    return titled if titled in ("None", "Low", "Medium", "High", "Critical") else "Unknown"


def prevents(metadata: Mapping[str, str]) -> bool:
    return metadata.get("prevent_vul", "").lower() == "true"


@dataclass(frozen=True)
class ScanFacts:
    """What the gate reads of an artifact's stored scan summary (the report the gate consults).

    `vulnerabilities` maps each finding's id to its severity; it is None when the summary did not
    keep the ids (too many of them), and then an allowlist that applies needs the full report."""

    status: str
    severity: str = "None"
    total: int = 0
    vulnerabilities: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Denial:
    message: str


def _policy(threshold_name: str) -> str:
    return (f"configured policy in 'Prevent images with vulnerability severity of \"{threshold_name}\" "
            "or higher from running.'")  # fmt: skip


def no_report(threshold_name: str) -> Denial:
    return Denial(f"current image without vulnerability scanning cannot be pulled due to {_policy(threshold_name)} "
                  "To continue with pull, please contact your project administrator for help.")  # fmt: skip


def not_successful(status: str, threshold_name: str) -> Denial:
    return Denial(f'current image with "{status}" status of vulnerability scanning cannot be pulled due to '
                  f"{_policy(threshold_name)} To continue with pull, please contact your project administrator "
                  "for help.")  # fmt: skip


def too_vulnerable(count: int, threshold_name: str) -> Denial:
    thing = "vulnerabilities" if count > 1 else "vulnerability"
    return Denial(f"current image with {count} {thing} cannot be pulled due to {_policy(threshold_name)} To continue "
                  "with pull, please contact your project administrator to exempt matched vulnerabilities through "
                  "configuring the CVE allowlist.")  # fmt: skip


def remaining(facts: ScanFacts, allowlisted: frozenset[str]) -> tuple[str | None, int]:
    """The highest severity and the number of findings left once allowlisted ids are ignored.

    With nothing allowlisted that the report names, the summary's own severity and total answer
    (exact: Harbor's count deduplicates id, package and version). Otherwise the count is of
    distinct remaining ids. Raises LookupError when ids are needed but not kept."""
    if facts.total == 0 or facts.severity == "None":
        return None, 0
    if not allowlisted:
        return facts.severity, facts.total
    if facts.vulnerabilities is None:
        raise LookupError("the summary keeps no finding ids; the report is needed")
    if not allowlisted.intersection(facts.vulnerabilities):
        return facts.severity, facts.total
    left = {cve: sev for cve, sev in facts.vulnerabilities.items() if cve not in allowlisted}
    if not left:
        return None, 0
    worst = max(left.values(), key=severity_code)
    return worst, len(left)


def decide(
    *,
    setting: str | None,
    scannable: bool,
    is_index: bool,
    kind: str,
    facts: ScanFacts | None,
    allowlisted: frozenset[str],
) -> Denial | None:
    """Steps 2-6 above (the caller has checked that the gate is on and the pull not exempt)."""
    threshold_name = threshold(setting)
    if not scannable:
        return None
    if facts is None:
        return no_report(threshold_name)
    if is_index and kind in _PASSING_INDEX_TYPES:
        return None
    if facts.status != SUCCESS:
        return not_successful(facts.status, threshold_name)
    worst, count = remaining(facts, allowlisted)
    if worst is not None and severity_code(worst) >= severity_code(threshold_name):
        return too_vulnerable(count, threshold_name)
    return None


@dataclass(frozen=True)
class PullTarget:
    """What the gate knows of the pulled artifact, from its row (None fields: no row)."""

    kind: str
    manifest_media_type: str
    accessory_type: str | None
    is_index: bool
    # The row's vulnerability summaries by report MIME type (`core/scans.py`).
    summaries: Mapping[str, ReportSummary]


@dataclass(frozen=True)
class GateRead:
    """Everything a gated pull needs: the project's metadata and own allowlist, the artifact, the
    system allowlist and whether any scanner is enabled (read with the pulled manifest; `target`
    None: the artifact's row is gone, or not read yet on a pull by tag)."""

    metadata: Mapping[str, str]
    project_allowlist: CveAllowlist
    system_allowlist: CveAllowlist
    target: PullTarget | None
    scanner_enabled: bool


# Harbor reads the native report first, then the generic one.
GATE_REPORTS = (VULNERABILITY_REPORT_NATIVE, VULNERABILITY_REPORT_GENERIC)
SIGNATURES = frozenset({COSIGN_SIGNATURE, NOTATION_SIGNATURE})


def facts_of(summary: ReportSummary) -> ScanFacts:
    kept = None if summary.cves_truncated else dict(summary.cves)
    return ScanFacts(str(summary.status), summary.severity or "None", summary.total, kept)


def judge(read: GateRead, now: float) -> Denial | None:
    """Steps 2-6 for one pull, from one read (see the module docstring); `LookupError` when an
    allowlist applies and the summary kept no ids (the caller then reads the report)."""
    target = read.target
    if target is None or not prevents(read.metadata):
        return None
    if target.accessory_type in SIGNATURES or target.is_index:
        # An index's own row holds no report (its children are scanned); a client that pulls an
        # index pulls the child it runs by digest next, and that pull is gated.
        return None
    scannable = (
        read.scanner_enabled
        and target.kind == "IMAGE"
        and target.accessory_type is None
        and target.manifest_media_type in IMAGE_MANIFESTS
    )
    summary = next((target.summaries[m] for m in GATE_REPORTS if m in target.summaries), None)
    allowed = effective(read.metadata, read.project_allowlist, read.system_allowlist).active_ids(now)
    return decide(setting=read.metadata.get("severity"), scannable=scannable, is_index=target.is_index,
                  kind=target.kind, facts=None if summary is None else facts_of(summary),
                  allowlisted=allowed)  # fmt: skip
