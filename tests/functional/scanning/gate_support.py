"""Helpers for the scanning tests: a project with policy metadata, a registered scanner, and scan
summaries written on artifact rows the way a finished scan writes them (no adapter needed)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core import scans
from chalicelib.core.scanners import ScannerRegistration
from chalicelib.core.scans import Finding, ReportSummary, ScannerInfo

API = "/api/v2.0"
SCANNER_UUID = "b6a5b0a3-0000-4000-8000-000000000001"


def register_scanner(*, disabled: bool = False) -> None:
    from chalicelib.stores.scanners import ScannerStore

    store = ScannerStore()
    registrations, version = store.load()
    registrations = [r for r in registrations if r.uuid != SCANNER_UUID]
    registrations.append(ScannerRegistration(uuid=SCANNER_UUID, name="fake", url="http://scanner.invalid",
                                             disabled=disabled, is_default=True))  # fmt: skip
    store.save(registrations, version)


def _scan_store() -> Any:
    from chalicelib.config import get_settings
    from chalicelib.stores.scans import ScanStore
    from chalicelib.wiring import object_store

    return ScanStore(object_store(get_settings()))


def write_summary(repository: str, digest: str, status: str = "Success",
                  findings: list[tuple[str, str]] = (), *,  # type: ignore[assignment]
                  mime: str = scans.VULNERABILITY_REPORT_GENERIC, report: bool = False) -> ReportSummary:  # fmt: skip
    """A summary of `findings` [(id, severity)] on the artifact's row; with `report`, the report too."""
    base = ReportSummary(mime_type=mime, report_id=f"r-{digest[-8:]}", digest=digest, registration=SCANNER_UUID,
                         scan_status=status, start_time=1_700_000_000)  # fmt: skip
    items = [Finding(cve, f"pkg{n}", "1.0", "", severity) for n, (cve, severity) in enumerate(findings)]
    summary = (scans.completed(base, items, ScannerInfo("fake", "test", "1"), 1_700_000_010)
               if status == "Success" else base)  # fmt: skip
    store = _scan_store()
    assert store.save_summary(repository, digest, summary)
    if report:
        body = {"vulnerabilities": [{"id": cve, "package": f"pkg{n}", "version": "1.0", "severity": severity}
                                    for n, (cve, severity) in enumerate(findings)]}  # fmt: skip
        store.put_report(digest, SCANNER_UUID, mime, json.dumps(body).encode())
    return summary


def set_metadata(registry: Any, project: str, **values: str) -> None:
    response = registry.put(f"{API}/projects/{project}", json={"metadata": values})
    assert response.status_code == 200, response.get_data()


def create_project(registry: Any, name: str, **metadata: str) -> int:
    response = registry.post(f"{API}/projects", json={"project_name": name, "metadata": metadata})
    assert response.status_code == 201, response.get_data()
    return int(registry.get(f"{API}/projects/{name}").get_json()["project_id"])
