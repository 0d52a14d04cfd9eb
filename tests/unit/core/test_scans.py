"""Harbor's scan summary rules (`core/scans.py`): counts, severity, merging an index's children,
the statuses shown, X-Accept-Vulnerabilities, and the row's encoding."""

from __future__ import annotations

import base64

from chalicelib.core import scans
from chalicelib.core.scans import Finding, ReportSummary, ScannerInfo, ScanStatus

GENERIC, NATIVE = scans.VULNERABILITY_REPORT_GENERIC, scans.VULNERABILITY_REPORT_NATIVE
TRIVY = ScannerInfo("Trivy", "Aqua Security", "v0.72.0")


def _pending(report_id: str = "r1", start: int = 100, digest: str = "sha256:" + "a" * 64) -> ReportSummary:
    return ReportSummary(GENERIC, report_id, digest, "reg", ScanStatus.PENDING, start, execution_id=7)


def test_tally_deduplicates_on_id_package_version_and_counts_fixable() -> None:
    findings = [
        Finding("CVE-1", "openssl", "3.0.9", "3.0.11", "High"),
        Finding("CVE-1", "openssl", "3.0.9", "3.0.11", "High"),  # the same item twice
        Finding("CVE-1", "libssl3", "3.0.9", "", "Critical"),  # same CVE, another package
        Finding("CVE-2", "zlib", "1.2", "", "Low"),
        Finding("CVE-3", "bash", "5.2", "5.3", "bogus"),  # an unknown name counts as Unknown
    ]
    severity, counts, total, fixable, cves, truncated = scans.tally(findings)
    assert (severity, total, fixable, truncated) == ("Critical", 4, 2, False)
    assert counts == {"High": 1, "Critical": 1, "Low": 1, "Unknown": 1}
    assert cves == {"CVE-1": "Critical", "CVE-2": "Low", "CVE-3": "Unknown"}


def test_no_finding_is_severity_none() -> None:
    assert scans.tally([])[:4] == ("None", {}, 0, 0)
    summary = scans.completed(_pending(), [], TRIVY, 110)
    view = scans.native_summary(summary)
    assert view["severity"] == "None" and view["summary"] == {"total": 0, "fixable": 0, "summary": {}}
    assert view["duration"] == 10 and view["complete_percent"] == 100 and view["scanner"]["name"] == "Trivy"


def test_the_cve_map_is_bounded_keeping_the_worst() -> None:
    findings = [Finding(f"CVE-{n}", "p", "1", "", "Low") for n in range(scans.MAX_CVES + 5)]
    findings.append(Finding("CVE-worst", "p", "1", "", "Critical"))
    *_, cves, truncated = scans.tally(findings)
    assert truncated and len(cves) == scans.MAX_CVES and cves["CVE-worst"] == "Critical"


def test_a_summary_not_successful_shows_only_id_status_and_times() -> None:
    running = scans.native_summary(_pending())
    assert running == {"report_id": "r1", "scan_status": "Pending", "severity": "", "duration": 0, "summary": None,
                       "start_time": "1970-01-01T00:01:40.000Z", "end_time": "", "complete_percent": 0}  # fmt: skip
    errored = scans.ended(scans.completed(_pending(), [Finding("C", "p", "1", "", "High")], TRIVY, 105),
                          ScanStatus.ERROR, 120)  # fmt: skip
    view = scans.native_summary(errored)
    assert view["scan_status"] == "Error" and view["summary"] is None and "scanner" not in view
    assert scans.native_summary(ReportSummary(GENERIC, "x", "d", "r", "Weird", 1))["scan_status"] == "Error"


def test_merge_follows_harbors_rules() -> None:
    a = scans.completed(_pending("a", 100, "sha256:a"), [Finding("C1", "p", "1", "2", "High")], TRIVY, 130)
    later = ScannerInfo("Trivy", "Aqua Security", "v0.73.0")
    b = scans.completed(_pending("b", 120, "sha256:b"), [Finding("C1", "p", "1", "2", "High"),
                                                         Finding("C2", "q", "1", "", "Low")], later, 125)  # fmt: skip
    findings = [Finding("C1", "p", "1", "2", "High"), Finding("C1", "p", "1", "2", "High"),
                Finding("C2", "q", "1", "", "Low")]  # fmt: skip
    merged = scans.merge([a, b], findings)
    assert (merged.start_time, merged.end_time, merged.duration) == (100, 130, 30)
    assert merged.scanner == later and merged.complete_percent == 100
    assert base64.b64decode(merged.report_id).decode() == "a|b"
    assert scans.report_ids(merged.report_id) == ["a", "b"]
    assert (merged.total, merged.fixable, merged.counts, merged.severity) == (2, 1, {"High": 1, "Low": 1}, "High")
    running = scans.merge([a, _pending("c", 140)])
    assert running.scan_status == ScanStatus.SUCCESS and running.complete_percent == 50  # Harbor: Success > Pending
    stopped = scans.ended(_pending("d"), ScanStatus.STOPPED, 150)
    assert scans.merge([a, stopped]).status == ScanStatus.STOPPED
    assert scans.merge([stopped, replace_status(a, ScanStatus.RUNNING)]).status == ScanStatus.RUNNING


def replace_status(summary: ReportSummary, status: ScanStatus) -> ReportSummary:
    from dataclasses import replace

    return replace(summary, scan_status=status)


def test_accepted_reports_reads_the_header_as_harbor_does() -> None:
    assert scans.accepted_reports(None) == (GENERIC, NATIVE)
    assert scans.accepted_reports(f"{NATIVE}, {GENERIC}") == (NATIVE, GENERIC)
    assert scans.accepted_reports("application/json, nonsense") == (NATIVE,)
    assert scans.accepted_reports("") == (NATIVE,)
    summaries = {GENERIC: _pending()}
    assert scans.pick(summaries, (NATIVE,)) is None
    assert scans.pick(summaries, (NATIVE, GENERIC)) is summaries[GENERIC]


def test_summaries_survive_the_row_encoding() -> None:
    summary = scans.completed(_pending(), [Finding("CVE-9", "p", "1", "2", "Medium")], TRIVY, 101)
    assert scans.decode(scans.encode({GENERIC: summary})) == {GENERIC: summary}
    assert scans.decode("{not json") == {} and scans.decode(None) == {}
    assert scans.scan_lock("SBOM", "reg", "sha256:x") == "SBOM#reg#sha256:x"
    assert scans.severity_code("High") == 4 and scans.severity_code("None") == 0 and scans.severity_code("x") == 99


def test_a_harbor_item_has_every_field_of_harbor_typed_whatever_the_adapter_sent() -> None:
    sent = {"id": "CVE-1", "package": 5, "links": "https://x", "cwe_ids": ["CWE-1", 2], "fix_version": None,
            "preferred_cvss": {"score_v3": True, "score_v2": 4, "vector_v3": None}, "vendor_attributes": [],
            "layer": {"digest": "sha256:" + "a" * 64}}  # fmt: skip
    assert scans.harbor_item(sent) == {
        "id": "CVE-1", "package": "", "version": "", "fix_version": "", "severity": "", "status": "",
        "description": "", "links": [], "artifact_digests": [], "cwe_ids": ["CWE-1"],
        "preferred_cvss": {"score_v3": None, "score_v2": 4.0, "vector_v3": "", "vector_v2": ""},
        "vendor_attributes": None, "layer": {"digest": "sha256:" + "a" * 64},
    }  # fmt: skip
