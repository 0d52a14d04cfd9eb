"""Findings (installed packages matched against the OSV index) and the vulnerability report in
Harbor's shape (`application/vnd.security.vulnerability.report; version=1.1`, the same body for
the native 1.0 type).

An item's `id` is the advisory's CVE when it has exactly one CVE alias (Harbor's allowlists hold
CVE ids); the advisory's own id and aliases stay in `vendor_attributes`. Items are unique per
(id, package, version), Harbor's key. Severity comes from a CVSS v3 vector (the package's own,
then the advisory's), else the database's word (GHSA: MODERATE is Medium), else an Ubuntu
priority, else Unknown.

What the adapter could not analyse (rpm databases, packages of an unrecognised OS) is said in the
report's `vendor_attributes.not_analysed` and as an item of severity Unknown, so such an image is
never reported clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.scanner_api import SEVERITIES
from chalicelib.scanner_adapter import cvss
from chalicelib.scanner_adapter.osv import Match, OsvIndex
from chalicelib.scanner_adapter.packages import Inventory, Package

NOT_ANALYSED_ID = "OSV-LITE-NOT-ANALYSED"
_DATABASE_WORDS = {"LOW": "Low", "MODERATE": "Medium", "MEDIUM": "Medium", "HIGH": "High", "CRITICAL": "Critical"}
_UBUNTU_PRIORITIES = {
    "negligible": "Negligible",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
    "critical": "Critical",
}


@dataclass(frozen=True, slots=True)
class Finding:
    package: Package
    match: Match
    severity: str
    score: float | None
    vector: str

    @property
    def id(self) -> str:
        return self.match.advisory.reported_id


def find(inventory: Inventory, index: OsvIndex) -> list[Finding]:
    """Every (advisory, package) pair that applies, unique per (id, package, version)."""
    findings: dict[tuple[str, str, str], Finding] = {}
    for package in inventory.packages:
        if not package.ecosystem:
            continue
        for match in index.matches(package.ecosystem, package.match_name, package.match_version):
            finding = _finding(package, match)
            findings.setdefault((finding.id, package.name, package.version), finding)
    return sorted(findings.values(), key=lambda f: (-SEVERITIES.index(f.severity), f.id, f.package.name))


def _finding(package: Package, match: Match) -> Finding:
    advisory = match.advisory
    for vector in (match.package_severity, advisory.cvss_v3):
        score = cvss.base_score(vector) if vector.startswith("CVSS:") else None
        if score is not None:
            return Finding(package, match, cvss.severity_of_score(score), score, vector)
    if word := _DATABASE_WORDS.get(advisory.database_severity.upper()):
        return Finding(package, match, word, None, "")
    for priority in (match.package_severity, advisory.cvss_v3):
        if priority.startswith("ubuntu:"):
            return Finding(package, match, _UBUNTU_PRIORITIES.get(priority[7:].lower(), "Unknown"), None, "")
    return Finding(package, match, "Unknown", None, "")


def vulnerability_report(
    artifact: dict[str, Any], scanner: dict[str, str], findings: list[Finding], inventory: Inventory, generated_at: str
) -> dict[str, Any]:
    items = [_item(finding) for finding in findings]
    items += [_not_analysed_item(note) for note in inventory.not_analysed]
    report: dict[str, Any] = {
        "generated_at": generated_at,
        "artifact": artifact,
        "scanner": scanner,
        "vulnerabilities": items,
    }
    if items:
        report["severity"] = max((item["severity"] for item in items), key=SEVERITIES.index)
    if inventory.not_analysed:
        report["vendor_attributes"] = {"not_analysed": list(inventory.not_analysed)}
    return report


def _item(finding: Finding) -> dict[str, Any]:
    advisory, package = finding.match.advisory, finding.package
    item: dict[str, Any] = {
        "id": finding.id,
        "package": package.name,
        "version": package.version,
        "severity": finding.severity,
        "status": "fixed" if finding.match.fix_version else "affected",
        "description": advisory.description,
        "links": list(advisory.links) or [f"https://osv.dev/vulnerability/{advisory.id}"],
        "layer": {"digest": package.layer_digest, "diff_id": package.diff_id},
        "cwe_ids": list(advisory.cwe_ids),
        "vendor_attributes": {"osv_id": advisory.id, "aliases": list(advisory.aliases), "purl": package.purl},
    }
    if finding.match.fix_version:
        item["fix_version"] = finding.match.fix_version
    if finding.score is not None:
        item["preferred_cvss"] = {"score_v3": finding.score, "vector_v3": finding.vector}
        item["vendor_attributes"]["CVSS"] = {"osv": {"V3Vector": finding.vector, "V3Score": finding.score}}
    return item


def _not_analysed_item(note: str) -> dict[str, Any]:
    return {
        "id": NOT_ANALYSED_ID,
        "package": "rpm" if note.startswith("rpm") else "os-packages",
        "version": "",
        "severity": "Unknown",
        "status": "affected",
        "description": f"Not analysed: {note}. Scan this image with a scanner that reads them.",
        "links": [],
        "vendor_attributes": {"not_analysed": note},
    }
