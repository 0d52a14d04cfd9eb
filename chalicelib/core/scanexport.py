"""Harbor's scan data export (`/export/cve`): the request's rules and the CSV it produces. Pure.

Harbor's rules implemented here:
- `X-Scan-Data-Type` must be the generic vulnerability report type (1.1);
- exactly one project; `repositories`, `tags` and `cveIds` are doublestar patterns (a list is
  written `{a,b}`) and must not contain spaces; empty means all; `labels` are label ids, any of
  which selects an artifact;
- a repository matches on its name without the project (`repoMatches`), an artifact on any of its
  tags (an index's children carry the index's tags and labels), a finding on its CVE id;
- the CSV's columns: Repository, Artifact Digest, CVE, Package, Current Version, Fixed in version,
  Severity, CWE Ids, Additional Data (the vendor attributes as JSON), Scanner; every cell that a
  spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a line break)
  is prefixed with `'`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core import selectors

SCAN_DATA_TYPE = "application/vnd.security.vulnerability.report; version=1.1"
HEADER = ("Repository", "Artifact Digest", "CVE", "Package", "Current Version", "Fixed in version", "Severity",
          "CWE Ids", "Additional Data", "Scanner")  # fmt: skip
_FORMULA = "=+-@\t\r\n"
MAX_JOB_NAME = 255
MAX_PATTERN = 1024
MAX_LABELS = 100


class CriteriaError(ValueError):
    """The request's criteria break Harbor's rules (the API answers 400)."""


@dataclass(frozen=True, slots=True)
class Criteria:
    job_name: str
    project_id: int
    labels: tuple[int, ...]
    repositories: str
    tags: str
    cve_ids: str

    def record(self) -> dict[str, Any]:
        return {"job_name": self.job_name, "project_id": self.project_id, "labels": list(self.labels),
                "repositories": self.repositories, "tags": self.tags, "cve_ids": self.cve_ids}  # fmt: skip

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Criteria:
        return cls(str(data.get("job_name") or ""), int(data["project_id"]),
                   tuple(int(x) for x in data.get("labels") or ()), str(data.get("repositories") or ""),
                   str(data.get("tags") or ""), str(data.get("cve_ids") or ""))  # fmt: skip


def criteria(job_name: str | None, projects: list[int] | None, *, labels: list[int] | None,
             repositories: str | None, tags: str | None, cve_ids: str | None) -> Criteria:  # fmt: skip
    """The validated criteria; CriteriaError with Harbor's message otherwise."""
    if not projects or len(projects) != 1:
        raise CriteriaError(f"only support export single project, invalid value: {projects or []}")
    if len(job_name or "") > MAX_JOB_NAME:
        raise CriteriaError(f"job_name is longer than {MAX_JOB_NAME} characters")
    if len(labels or []) > MAX_LABELS:
        raise CriteriaError(f"at most {MAX_LABELS} labels")
    for value in (repositories, tags, cve_ids):
        text = value or ""
        if " " in text:
            raise CriteriaError(f"invalid criteria value, please remove additional spaces for input: {text}")
        if len(text) > MAX_PATTERN:
            raise CriteriaError(f"a pattern is longer than {MAX_PATTERN} characters")
        try:
            selectors.validate(text)
        except ValueError as exc:
            raise CriteriaError(f"invalid pattern {text!r}: {exc}") from None
    return Criteria(job_name or "", projects[0], tuple(dict.fromkeys(labels or ())), repositories or "", tags or "",
                    cve_ids or "")  # fmt: skip


def repository_selected(wanted: Criteria, repository: str) -> bool:
    """`repositories` against the name without its project (Harbor's `repoMatches`)."""
    return selectors.matches(wanted.repositories, repository.split("/", 1)[-1])


def artifact_selected(wanted: Criteria, tags: Iterable[str], labels: Iterable[int]) -> bool:
    if wanted.tags and not any(selectors.matches(wanted.tags, t) for t in tags):
        return False
    return not wanted.labels or any(label in wanted.labels for label in labels)


def sanitize(value: str) -> str:
    return f"'{value}" if value and value[0] in _FORMULA else value


def rows(repository: str, digest: str, scanner: str, report: Mapping[str, Any], cve_ids: str) -> list[list[str]]:
    """The CSV rows of one artifact's report: one per finding (id, package, version, severity,
    fix, CWE ids, vendor attributes) whose id matches `cve_ids`, duplicates dropped."""
    out: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for item in report.get("vulnerabilities") or []:
        if not isinstance(item, dict):
            continue
        cve = _text(item.get("id"))
        if not cve or not selectors.matches(cve_ids, cve):
            continue
        cwe = item.get("cwe_ids")
        cwes = ",".join(x for x in cwe if isinstance(x, str)) if isinstance(cwe, list) else ""
        vendor = item.get("vendor_attributes")
        extra = json.dumps(vendor, sort_keys=True, separators=(",", ":")) if isinstance(vendor, dict) else ""
        row = (repository, digest, cve, _text(item.get("package")), _text(item.get("version")),
               _text(item.get("fix_version")), _text(item.get("severity")), cwes, extra, scanner)  # fmt: skip
        if row in seen:
            continue
        seen.add(row)
        out.append([sanitize(cell) for cell in row])
    return out


def encode(lines: Iterable[list[str]], *, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(lines)
    return buffer.getvalue().encode()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
