"""Scan data export over HTTP (`/export/cve`) with real scans (the scan machine and the Trivy-shaped
fake) and its own state machine on moto: the CSV's rows exactly, every criterion, the owner rule
(only the user who asked reads and downloads it), 404s for unknown ids, bad input, never a 500."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import boto3
import pytest

from tests.functional.helpers import REGION
from tests.functional.jobs.conftest import wait_for_executions
from tests.functional.jobs.test_scans import Scanning
from tests.functional.scanning.gate_support import API
from tests.functional.scanning.test_security_hub import C1, H1, L1, finding

EXPORT = f"{API}/export/cve"
TYPE = {"X-Scan-Data-Type": "application/vnd.security.vulnerability.report; version=1.1"}
HEADER = ["Repository", "Artifact Digest", "CVE", "Package", "Current Version", "Fixed in version", "Severity",
          "CWE Ids", "Additional Data", "Scanner"]  # fmt: skip
EVIL = {**finding("CVE-2026-3001", "=HYPERLINK(1)", "Medium", 5.5), "cwe_ids": ["CWE-79", "CWE-80"],
        "vendor_attributes": {"CVSS": {"nvd": {"V3Score": 5.5}}}}  # fmt: skip


@pytest.fixture
def exporting(scanning: Scanning) -> Scanning:
    from chalicelib.local import stepfunctions

    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    scanning.configure(scan_export_state_machine_arn=arns["SCAN_DATA_EXPORT"], scan_export_batch=1)
    return scanning


def _scan(hub: Scanning, repo: str, tag: str, findings: list[dict[str, Any]], seed: bytes) -> str:
    digest, _ = hub.push_image(f"library/{repo}", tag, layers=1, seed=seed)
    hub.fake.by_digest[digest] = findings
    assert hub.scan(tag, repo=repo).status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = hub.get(f"{API}/projects/library/repositories/{repo}/artifacts/{tag}?with_scan_overview=true")
        overview = (view.get_json().get("scan_overview") or {}).get(TYPE["X-Scan-Data-Type"]) or {}
        if overview.get("scan_status") == "Success":
            wait_for_executions(60)
            return digest
        time.sleep(0.05)
    raise AssertionError("the scan did not end")


def _export(hub: Scanning, auth: Any = None, **criteria: Any) -> int:
    body = {"job_name": "j", "projects": [1], **criteria}
    kwargs = {"auth": auth} if auth is not None else {}
    response = hub.post(EXPORT, json=body, headers=TYPE, **kwargs)
    assert response.status_code == 200, response.get_data()
    return int(response.get_json()["id"])


def _finished(hub: Scanning, execution_id: int, auth: Any = None) -> dict[str, Any]:
    kwargs = {"auth": auth} if auth is not None else {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = hub.get(f"{EXPORT}/execution/{execution_id}", **kwargs)
        assert response.status_code == 200, response.get_data()
        view = dict(response.get_json())
        if view["status"] in ("Success", "Error", "Stopped"):
            wait_for_executions(60)
            return view
        time.sleep(0.05)
    raise AssertionError("the export did not end")


def _csv(hub: Scanning, execution_id: int, auth: Any = None) -> list[list[str]]:
    kwargs = {"auth": auth} if auth is not None else {}
    response = hub.get(f"{EXPORT}/download/{execution_id}", **kwargs)
    assert response.status_code == 307, response.get_data()
    assert f"scan-exports/{execution_id}.csv" in response.headers["Location"]
    return list(csv.reader(io.StringIO(hub.read_object(f"scan-exports/{execution_id}.csv").decode())))


@pytest.fixture
def scanned(exporting: Scanning) -> dict[str, str]:
    return {
        "a": _scan(exporting, "app", "a", [C1, H1], b"a"),
        "b": _scan(exporting, "other", "b", [L1, EVIL], b"b"),
        "c": _scan(exporting, "app", "c", [], b"c"),
    }


def test_export_end_to_end_rows_and_criteria(exporting: Scanning, scanned: dict[str, str]) -> None:
    a, b = scanned["a"], scanned["b"]
    execution_id = _export(exporting)
    view = _finished(exporting, execution_id)
    assert view["status"] == "Success" and view["file_present"] is True
    assert view["user_name"] == "admin" and view["trigger"] == "MANUAL" and view["status_text"] == ""
    assert view["user_id"] == 1 and view["start_time"] and view["end_time"]
    rows = _csv(exporting, execution_id)
    assert rows[0] == HEADER
    trivy = "Trivy"
    assert sorted(rows[1:]) == sorted([
        ["library/app", a, C1["id"], "openssl", "1.0", "3.0.12", "Critical", "", "", trivy],
        ["library/app", a, H1["id"], "zlib", "1.0", "1.3", "High", "", "", trivy],
        ["library/other", b, L1["id"], "tar", "1.0", "", "Low", "", "", trivy],
        ["library/other", b, EVIL["id"], "'=HYPERLINK(1)", "1.0", "", "Medium", "CWE-79,CWE-80",
         '{"CVSS":{"nvd":{"V3Score":5.5}}}', trivy],
    ])  # fmt: skip

    def exported(**criteria: Any) -> list[tuple[str, str]]:
        found = _csv(exporting, _finished(exporting, _export(exporting, **criteria))["id"])
        assert found[0] == HEADER
        return sorted((row[0], row[2]) for row in found[1:])

    assert exported(repositories="other") == [("library/other", L1["id"]), ("library/other", EVIL["id"])]
    assert exported(repositories="{app,nope}", tags="a") == [("library/app", C1["id"]), ("library/app", H1["id"])]
    assert exported(cveIds="{CVE-2026-1001,CVE-2026-1004}") == [("library/app", C1["id"]),
                                                                ("library/other", L1["id"])]  # fmt: skip
    assert exported(tags="c") == []
    assert exported(repositories="missing") == []
    assert exported(labels=[12345]) == []

    # The list shows the caller's executions, newest first.
    listed = exporting.get(f"{EXPORT}/executions").get_json()["items"]
    assert [e["id"] for e in listed][-1] == execution_id and all(e["user_name"] == "admin" for e in listed)


def test_only_the_creator_sees_and_downloads(exporting: Scanning, scanned: dict[str, str]) -> None:
    from tests.functional.test_registries import make_user

    dev = make_user(exporting, "exporter")
    other = make_user(exporting, "stranger")
    for name in ("exporter", "stranger"):
        added = exporting.post(
            f"{API}/projects/library/members", json={"role_id": 2, "member_user": {"username": name}}
        )
        assert added.status_code == 201, added.get_data()
    admins = _export(exporting)
    mine = _export(exporting, auth=dev, job_name="dev's")
    assert _finished(exporting, mine, auth=dev)["status"] == "Success"
    assert _finished(exporting, admins)["status"] == "Success"
    assert len(_csv(exporting, mine, auth=dev)) == 5

    for who, execution_id in ((other, mine), (dev, admins), (None, mine)):
        kwargs = {"auth": who} if who is not None else {}
        assert exporting.get(f"{EXPORT}/execution/{execution_id}", **kwargs).status_code == 403
        assert exporting.get(f"{EXPORT}/download/{execution_id}", **kwargs).status_code == 403
    assert [e["id"] for e in exporting.get(f"{EXPORT}/executions", auth=dev).get_json()["items"]] == [mine]
    assert exporting.get(f"{EXPORT}/executions", auth=other).get_json() == {}  # Harbor omits an empty list
    assert mine not in [e["id"] for e in exporting.get(f"{EXPORT}/executions").get_json()["items"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("POST", EXPORT, {"projects": [1]}, {}, 400),
        ("POST", EXPORT, {"projects": [1]}, {"X-Scan-Data-Type": "application/json"}, 400),
        ("POST", EXPORT, {"projects": []}, TYPE, 400),
        ("POST", EXPORT, {}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1, 2]}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1], "repositories": "a b"}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1], "tags": "[z-a]"}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1], "cveIds": "x" * 2000}, TYPE, 400),
        ("POST", EXPORT, {"projects": ["1"]}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1], "unknown": 1}, TYPE, 400),
        ("POST", EXPORT, {"projects": [10**30]}, TYPE, 400),
        ("POST", EXPORT, {"projects": [999999]}, TYPE, 404),
        ("POST", EXPORT, b"[" * 50_000 + b"]" * 50_000, TYPE, 400),
        ("POST", EXPORT, b'{"projects":', TYPE, 400),
        ("POST", EXPORT, b'{"job_name":"' + b"x" * 2_000_000 + b'"}', TYPE, 400),  # past the body cap
        ("POST", EXPORT, {"projects": [1], "job_name": "x" * 300}, TYPE, 400),
        ("POST", EXPORT, {"projects": [1], "labels": list(range(101))}, TYPE, 400),
        ("GET", f"{EXPORT}/execution/999999", None, {}, 404),
        ("GET", f"{EXPORT}/download/999999", None, {}, 404),
        ("GET", f"{EXPORT}/execution/99999999999999999999", None, {}, 400),
        ("GET", f"{EXPORT}/execution/abc", None, {}, 400),
        ("GET", f"{EXPORT}/download/-1", None, {}, 400),
        ("GET", f"{EXPORT}/execution/1", None, {}, 404),  # a job of another kind
    ],
)
def test_bad_input(exporting: Scanning, method: str, path: str, body: Any, headers: dict[str, str],
                   status: int) -> None:  # fmt: skip
    if isinstance(body, bytes):
        response = exporting.request(method, path, data=body, content_type="application/json", headers=headers)
    else:
        response = exporting.request(method, path, json=body, headers=headers)
    assert response.status_code == status, (path, response.get_data()[:300])
    assert response.get_json()["errors"][0]["code"]


def test_credentials_robots_and_permission(exporting: Scanning) -> None:
    from tests.functional.test_registries import make_user

    for path in (f"{EXPORT}/executions", f"{EXPORT}/execution/1", f"{EXPORT}/download/1"):
        assert exporting.get(path, auth=None).status_code == 401
        assert exporting.get(path, auth=("admin", "nope")).status_code == 401
    assert exporting.post(EXPORT, json={"projects": [1]}, headers=TYPE, auth=None).status_code == 401
    # A signed-in user who is no member of the (public) project is a guest there: no export-cve.
    guest = make_user(exporting, "guest1")
    refused = exporting.post(EXPORT, json={"projects": [1]}, headers=TYPE, auth=guest)
    assert refused.status_code == 403 and refused.get_json()["errors"][0]["code"] == "FORBIDDEN"
    robot = exporting.post(f"{API}/robots", json={
        "name": "exp", "level": "system", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "library",
                         "access": [{"resource": "export-cve", "action": "create"}]}],
    })  # fmt: skip
    assert robot.status_code == 201, robot.get_data()
    secret = robot.get_json()
    refused = exporting.post(EXPORT, json={"projects": [1]}, headers=TYPE, auth=(secret["name"], secret["secret"]))
    assert refused.status_code == 403
