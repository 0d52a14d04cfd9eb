"""Scan state kept on an artifact's row, and Harbor's rules for showing it. Pure: no I/O.

An artifact row carries one `ReportSummary` per report MIME type it was scanned for (the
vulnerability report types and the SBOM report type), so one read of the row tells the API and
the pull gate what they need: the status, the highest severity, counts per severity, and a
bounded map CVE id -> severity for allowlist-aware gating (`cves`; when the report holds more
distinct ids than `MAX_CVES`, `cves_truncated` says so and a reader needing them all reads the
report itself). The full report lives in the object store, once per (digest, scanner, MIME).

Harbor's rules implemented here:
- statuses `Pending|Running|Stopped|Error|Success|Scheduled`; any other stored value shows as
  `Error`; when not Success only the id, status, duration and times are meaningful;
- severity is the highest over the findings, `None` for a successful scan with none;
- `total` counts findings deduplicated on `id-package-version`, `fixable` those with a fix
  version, the inner summary lists only severities that occur;
- an index's children merge: start = min, end = max, scanner of the child that started last,
  `complete_percent` = completed / total, `report_id` = base64 of `id1|id2|...`, status by
  precedence Running > Stopped > Success > the rest, findings unioned and counts recomputed;
- `X-Accept-Vulnerabilities` picks the first listed MIME type that has data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

VULNERABILITY = "vulnerability"
SBOM = "sbom"
SCAN_TYPES = (VULNERABILITY, SBOM)

VULNERABILITY_REPORT_GENERIC = "application/vnd.security.vulnerability.report; version=1.1"
VULNERABILITY_REPORT_NATIVE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
VULNERABILITY_REPORTS = (VULNERABILITY_REPORT_GENERIC, VULNERABILITY_REPORT_NATIVE)
SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"
# The media type of the accessory an SBOM is stored as (its config's media type).
SBOM_ACCESSORY_MEDIA_TYPE = "application/vnd.goharbor.harbor.sbom.v1"

# The most distinct CVE ids kept on the row (about 20 bytes each); past it the gate reads the report.
MAX_CVES = 1000


class ScanStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    STOPPED = "Stopped"
    ERROR = "Error"
    SUCCESS = "Success"
    SCHEDULED = "Scheduled"


ACTIVE_SCAN_STATUSES = frozenset({ScanStatus.PENDING, ScanStatus.RUNNING, ScanStatus.SCHEDULED})

# Harbor's severity names, lowest first ("None": a successful scan found nothing).
NO_SEVERITY = "None"
SEVERITIES = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")
# Harbor's codes (its `ParseSeverityVersion3` / `Severity.Code`): None and Unknown share 0.
SEVERITY_CODES = {"None": 0, "Unknown": 0, "Negligible": 1, "Low": 2, "Medium": 3, "High": 4, "Critical": 5}
UNRECOGNISED_CODE = 99


def scan_lock(vendor_type: str, registration: str, digest: str) -> str:
    """The job lock a scan execution holds (`<vendor type>#<registration>#<digest>`, as
    `core/jobs.py` `policy_lock` narrows a kind's lock): one running scan per (scan type, scanner,
    digest)."""
    return f"{vendor_type}#{registration}#{digest}"


def severity_code(name: str) -> int:
    return SEVERITY_CODES.get(name, UNRECOGNISED_CODE)


def _rank(name: str) -> int:
    """Order for "highest": None < Unknown < Negligible < ... < Critical."""
    return SEVERITIES.index(name) + 1 if name in SEVERITIES else 0


def shown_status(value: str) -> ScanStatus:
    """A stored status as Harbor shows it: anything unknown is Error."""
    try:
        return ScanStatus(value)
    except ValueError:
        return ScanStatus.ERROR


def report_types(scan_type: str) -> tuple[str, ...]:
    return VULNERABILITY_REPORTS if scan_type == VULNERABILITY else (SBOM_REPORT,)


def scan_type_of(mime_type: str) -> str:
    return SBOM if mime_type == SBOM_REPORT else VULNERABILITY


@dataclass(frozen=True, slots=True)
class Finding:
    """What the summary needs of one vulnerability item."""

    id: str
    package: str
    version: str
    fix_version: str
    severity: str


@dataclass(frozen=True, slots=True)
class ScannerInfo:
    name: str
    vendor: str
    version: str


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """One report of one artifact, as kept on the artifact's row.

    `registration` is the scanner registration's uuid (the gate consults only the project's
    current one); `execution_id` is the scan execution that produced (or is producing) it, for
    stop and the log; `cves` maps each distinct vulnerability id to its highest severity name.
    SBOM reports name the accessory they produced (`sbom_digest`, `sbom_repository`)."""

    mime_type: str
    report_id: str
    digest: str
    registration: str
    scan_status: str
    start_time: int
    end_time: int = 0
    execution_id: int = 0
    scanner: ScannerInfo | None = None
    severity: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    fixable: int = 0
    complete_percent: int = 0
    cves: dict[str, str] = field(default_factory=dict)
    cves_truncated: bool = False
    sbom_digest: str = ""
    sbom_repository: str = ""

    @property
    def status(self) -> ScanStatus:
        return shown_status(self.scan_status)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_SCAN_STATUSES

    @property
    def duration(self) -> int:
        if not self.end_time:
            return 0
        return max(0, self.end_time - self.start_time)

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v not in ("", 0, {}, None, False) or k in _ALWAYS}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> ReportSummary:
        values = {k: data[k] for k in _FIELDS if k in data}
        scanner = values.get("scanner")
        values["scanner"] = ScannerInfo(**scanner) if isinstance(scanner, dict) else None
        return cls(**values)


_FIELDS = tuple(ReportSummary.__dataclass_fields__)
_ALWAYS = frozenset({"mime_type", "report_id", "digest", "registration", "scan_status", "start_time"})


# The row's attribute: every report summary of the artifact, keyed by report MIME type.


def encode(summaries: Mapping[str, ReportSummary]) -> str:
    return json.dumps({mime: s.record() for mime, s in summaries.items()}, separators=(",", ":"), sort_keys=True)


def decode(text: str | None) -> dict[str, ReportSummary]:
    """The summaries from the row's attribute; a damaged value reads as none (never an error)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
        return {str(mime): ReportSummary.from_record(value) for mime, value in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


# Building a summary.


def tally(findings: Iterable[Finding]) -> tuple[str, dict[str, int], int, int, dict[str, str], bool]:
    """(severity, counts per severity, total, fixable, cves, truncated) over findings, by Harbor's
    rules: deduplicated on id-package-version; severity `None` when there is nothing."""
    seen: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.id, finding.package, finding.version), finding)
    counts: dict[str, int] = {}
    cves: dict[str, str] = {}
    highest = NO_SEVERITY
    fixable = 0
    for finding in seen.values():
        name = finding.severity if finding.severity in SEVERITIES else "Unknown"
        counts[name] = counts.get(name, 0) + 1
        if finding.fix_version:
            fixable += 1
        if _rank(name) > _rank(highest):
            highest = name
        if _rank(name) > _rank(cves.get(finding.id, NO_SEVERITY)) or finding.id not in cves:
            cves[finding.id] = name
    truncated = len(cves) > MAX_CVES
    if truncated:
        cves = dict(sorted(cves.items(), key=lambda item: -_rank(item[1]))[:MAX_CVES])
    return highest, counts, len(seen), fixable, cves, truncated


def completed(summary: ReportSummary, findings: Iterable[Finding], scanner: ScannerInfo,
              end_time: int) -> ReportSummary:  # fmt: skip
    """The summary of a scan that succeeded with these findings."""
    severity, counts, total, fixable, cves, truncated = tally(findings)
    return replace(summary, scan_status=ScanStatus.SUCCESS, end_time=end_time, scanner=scanner, severity=severity,
                   counts=counts, total=total, fixable=fixable, complete_percent=100, cves=cves,
                   cves_truncated=truncated)  # fmt: skip


def ended(summary: ReportSummary, status: ScanStatus, end_time: int) -> ReportSummary:
    """A scan that ended otherwise (Error, Stopped): its findings, if any, are gone."""
    return replace(summary, scan_status=status, end_time=end_time, severity="", counts={}, total=0, fixable=0,
                   complete_percent=0, cves={}, cves_truncated=False)  # fmt: skip


# Merging an index's children (Harbor's `MergeNativeReportSummary`).

_PRECEDENCE = {ScanStatus.RUNNING: 0, ScanStatus.STOPPED: 1, ScanStatus.SUCCESS: 2, ScanStatus.ERROR: 3,
               ScanStatus.PENDING: 4, ScanStatus.SCHEDULED: 5}  # fmt: skip


def merge(children: list[ReportSummary], findings: Iterable[Finding] = ()) -> ReportSummary:
    """One summary over an index's children. `findings` are the children's findings when their
    reports are at hand (the union is recounted); otherwise the counts are summed from the
    children's summaries (exact unless two children share a finding)."""
    if not children:
        raise ValueError("nothing to merge")
    if len(children) == 1:
        return children[0]
    start = min(c.start_time for c in children)
    end = max(c.end_time for c in children)
    latest = max(children, key=lambda c: c.start_time)
    status = min((c.status for c in children), key=lambda s: _PRECEDENCE[s])
    done = sum(1 for c in children if c.status == ScanStatus.SUCCESS)
    joined = "|".join(c.report_id for c in children)
    merged = ReportSummary(
        mime_type=children[0].mime_type, report_id=base64.b64encode(joined.encode()).decode("ascii"),
        digest=children[0].digest, registration=latest.registration, scan_status=status, start_time=start,
        end_time=end, scanner=latest.scanner, complete_percent=done * 100 // len(children),
    )  # fmt: skip
    if status != ScanStatus.SUCCESS:
        return merged
    listed = list(findings)
    if listed:
        severity, counts, total, fixable, cves, truncated = tally(listed)
    else:
        counts = {}
        for child in children:
            for name, n in child.counts.items():
                counts[name] = counts.get(name, 0) + n
        severity = max((c.severity or NO_SEVERITY for c in children), key=_rank)
        total, fixable = sum(c.total for c in children), sum(c.fixable for c in children)
        cves = {}
        for child in children:
            for cve, name in child.cves.items():
                if _rank(name) > _rank(cves.get(cve, NO_SEVERITY)) or cve not in cves:
                    cves[cve] = name
        truncated = any(c.cves_truncated for c in children) or len(cves) > MAX_CVES
    return replace(merged, severity=severity, counts=counts, total=total, fixable=fixable, cves=cves,
                   cves_truncated=truncated)  # fmt: skip


# What the API shows.


def report_ids(report_id: str) -> list[str]:
    """The report ids a (possibly merged) report id names: a merged one is base64 of `a|b|...`."""
    try:
        decoded = base64.b64decode(report_id, validate=True).decode("ascii")
    except ValueError:
        return [report_id]
    parts = decoded.split("|")
    return parts if len(parts) > 1 and all(parts) else [report_id]


def timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z") if epoch else ""


def native_summary(summary: ReportSummary) -> dict[str, Any]:
    """Harbor's `NativeReportSummary` (one value of `scan_overview`)."""
    status = summary.status
    out: dict[str, Any] = {
        "report_id": summary.report_id, "scan_status": str(status), "severity": "",
        "duration": summary.duration, "summary": None, "start_time": timestamp(summary.start_time),
        "end_time": timestamp(summary.end_time), "complete_percent": 0,
    }  # fmt: skip
    if status != ScanStatus.SUCCESS:
        return out
    out["severity"] = summary.severity or NO_SEVERITY
    out["complete_percent"] = summary.complete_percent
    out["summary"] = {"total": summary.total, "fixable": summary.fixable, "summary": dict(summary.counts)}
    if summary.scanner is not None:
        out["scanner"] = asdict(summary.scanner)
    return out


def harbor_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One finding of `additions/vulnerabilities` with every field of Harbor's vulnerability item,
    typed as Harbor serialises it (an empty fix is `""`, a missing score `null`), whatever the
    adapter left out; fields Harbor does not define (Trivy's `layer`) are kept."""
    given = raw.get("preferred_cvss")
    cvss: Mapping[str, Any] = given if isinstance(given, dict) else {}
    vendor = raw.get("vendor_attributes")
    return {
        **raw,
        **{name: _text(raw.get(name)) for name in _TEXT_FIELDS},
        "links": _texts(raw.get("links")),
        "cwe_ids": _texts(raw.get("cwe_ids")),
        "artifact_digests": _texts(raw.get("artifact_digests")),
        "preferred_cvss": {
            "score_v3": _score(cvss.get("score_v3")), "score_v2": _score(cvss.get("score_v2")),
            "vector_v3": _text(cvss.get("vector_v3")), "vector_v2": _text(cvss.get("vector_v2")),
        },
        "vendor_attributes": vendor if isinstance(vendor, dict) else None,
    }  # fmt: skip


_TEXT_FIELDS = ("id", "package", "version", "fix_version", "severity", "status", "description")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def sbom_overview(summary: ReportSummary) -> dict[str, Any]:
    """Harbor's `sbom_overview`: the report id only while the job runs."""
    out: dict[str, Any] = {
        "start_time": timestamp(summary.start_time), "end_time": timestamp(summary.end_time),
        "duration": summary.duration, "scan_status": str(summary.status), "sbom_digest": summary.sbom_digest,
        "report_id": summary.report_id if summary.active else "",
    }  # fmt: skip
    if summary.scanner is not None:
        out["scanner"] = asdict(summary.scanner)
    return out


def accepted_reports(header: str | None) -> tuple[str, ...]:
    """The report MIME types an `X-Accept-Vulnerabilities` header asks for, in its order.
    Absent: Harbor's default (generic 1.1, then native 1.0); unknown entries are dropped and a
    list left empty means native only."""
    if header is None:
        return VULNERABILITY_REPORTS
    wanted = []
    for part in header.split(","):
        mime = " ".join(part.split()).replace(";version", "; version")
        if mime in VULNERABILITY_REPORTS and mime not in wanted:
            wanted.append(mime)
    return tuple(wanted) or (VULNERABILITY_REPORT_NATIVE,)


def pick(summaries: Mapping[str, ReportSummary], accepted: Iterable[str]) -> ReportSummary | None:
    """The first accepted MIME type that has a summary."""
    for mime in accepted:
        if mime in summaries:
            return summaries[mime]
    return None
