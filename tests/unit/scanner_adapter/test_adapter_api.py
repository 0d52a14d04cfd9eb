"""The built-in adapter's Pluggable Scanner API without a registry: authentication, metadata
(read back by the registry's own client), request validation, report negotiation, unknown and
expired scans, and scans that fail."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import EgressPolicy, parse_networks
from chalicelib.adapters.scanner_client import ReportPending, ScannerClient, ScannerEndpoint, ScannerError, ScanUnknown
from chalicelib.scanner_adapter.server import RunningAdapter, build_app, start
from chalicelib.scanner_adapter.settings import AdapterSettings
from tests.scanner_fixtures import write_osv_directory

KEY = "adapter-secret-1"
LOOPBACK = EgressPolicy(parse_networks(["127.0.0.1/32"]))
DIGEST = "sha256:" + "e" * 64


def settings_for(tmp_path: Path, **extra: Any) -> AdapterSettings:
    database = tmp_path / "osv"
    if not database.exists():
        database.mkdir()
        write_osv_directory(database)
    values: dict[str, Any] = {
        "osv_database": database,
        "scanner_api_key": KEY,
        "scanner_port": 0,
        "egress_allow_networks": "127.0.0.1/32",
        "scanner_pull_timeout_seconds": 0.5,
    }
    return AdapterSettings(**(values | extra))


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[RunningAdapter]:
    running = start(settings_for(tmp_path))
    yield running
    running.close()


def client(adapter: RunningAdapter, auth: Any = "APIKey", credential: str = KEY) -> ScannerClient:
    return ScannerClient(LOOPBACK, ScannerEndpoint(adapter.url, auth=auth, credential=credential))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request_body(registry_url: str = "http://127.0.0.1:1", **changes: Any) -> dict[str, Any]:
    target = api.ScanTarget(
        registry_url, api.basic_authorization("robot", "pw"), "library/app", DIGEST, api.OCI_IMAGE_MANIFEST
    )
    body = api.scan_request(target, api.VULNERABILITY, api.VULNERABILITY_REPORT_GENERIC)
    for path, value in changes.items():
        holder = body
        *parents, last = path.split("__")
        for parent in parents:
            holder = holder[parent]
        holder[last] = value
    return body


# Authentication.


@pytest.mark.parametrize(("auth", "credential"), [("APIKey", KEY), ("Bearer", KEY)])
def test_the_key_is_accepted_in_either_header(adapter: RunningAdapter, auth: Any, credential: str) -> None:
    metadata = client(adapter, auth, credential).metadata()  # validated as Harbor validates it
    assert (metadata.name, metadata.version) == ("osv-lite", "1.0.0")
    assert metadata.report_types(api.DOCKER_IMAGE_MANIFEST, api.VULNERABILITY) == api.VULNERABILITY_REPORTS
    assert metadata.preferred_vulnerability_report(api.OCI_IMAGE_MANIFEST) == api.VULNERABILITY_REPORT_GENERIC
    assert metadata.report_types(api.OCI_IMAGE_MANIFEST, api.SBOM) == (api.SBOM_REPORT,)
    assert metadata.properties[api.DATABASE_UPDATED_AT] == "2026-11-01T00:00:00Z"
    assert metadata.properties["osv-lite/database-records"] == "13"


@pytest.mark.parametrize(
    ("auth", "credential"),
    [("", ""), ("APIKey", "wrong"), ("Bearer", KEY + "x"), ("Basic", f"user:{KEY}"), ("APIKey", "")],
)
def test_a_caller_without_the_key_is_refused(adapter: RunningAdapter, auth: Any, credential: str) -> None:
    with pytest.raises(ScannerError, match="401 missing or wrong credentials"):
        client(adapter, auth, credential).metadata()
    with pytest.raises(ScannerError, match="401"):
        client(adapter, auth, credential).submit(request_body())
    with pytest.raises(ScannerError, match="401"):
        client(adapter, auth, credential).report("0" * 24, api.VULNERABILITY_REPORT_GENERIC)


def test_probes_need_no_key(adapter: RunningAdapter) -> None:
    http = Client(adapter.app)
    assert http.get("/probe/healthy").status_code == 200
    assert http.get("/probe/ready").status_code == 200
    assert http.get("/api/v1/metadata").status_code == 401


def test_an_adapter_without_a_key_or_database_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs an API key"):
        build_app(settings_for(tmp_path, scanner_api_key=None))
    with pytest.raises(ValueError, match="no OSV database"):
        build_app(settings_for(tmp_path, osv_database=None))
    with pytest.raises(FileNotFoundError):
        build_app(settings_for(tmp_path, osv_database=tmp_path / "missing.zip"))


# Scan requests.

BAD_REQUESTS = [
    ({"registry__url": "ftp://127.0.0.1/"}, "registry.url must be an absolute http(s) URL"),
    ({"registry__url": "127.0.0.1:5000"}, "registry.url must be an absolute http(s) URL"),
    ({"registry__url": "http://10.1.2.3:5000"}, "registry.url: the target address is not allowed"),
    ({"registry__authorization": "Digest abc"}, "registry.authorization must be empty, Basic or Bearer"),
    ({"artifact__repository": "Library/App"}, "artifact.repository is missing or not a repository name"),
    ({"artifact__repository": ""}, "artifact.repository is missing"),
    ({"artifact__digest": "sha256:abc"}, "artifact.digest is missing or not a digest"),
    ({"artifact__mime_type": "application/vnd.oci.image.index.v1+json"}, "is not scanned by this adapter"),
    ({"enabled_capabilities": [{"type": "license", "produces_mime_types": ["x"]}]}, "unsupported capability type"),
    ({"enabled_capabilities": [{"type": "vulnerability", "produces_mime_types": []}]}, "must list produces_mime_types"),
    (
        {"enabled_capabilities": [{"type": "vulnerability", "produces_mime_types": ["text/html"]}]},
        "unsupported report type",
    ),
    ({"enabled_capabilities": [{"type": "sbom", "produces_mime_types": [api.SBOM_REPORT]}]}, "needs sbom_media_types"),
    (
        {
            "enabled_capabilities": [
                {
                    "type": "sbom",
                    "produces_mime_types": [api.SBOM_REPORT],
                    "parameters": {"sbom_media_types": ["text/x-swid"]},
                }
            ]
        },
        "needs sbom_media_types",
    ),
    ({"enabled_capabilities": "vulnerability"}, "enabled_capabilities must be a list"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_REQUESTS)
def test_an_unprocessable_scan_request_gets_422(adapter: RunningAdapter, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ScannerError, match="422 .*" + re.escape(message)):
        client(adapter).submit(request_body(**changes))


@pytest.mark.parametrize(
    ("body", "status"), [(b"{not json", 400), (b"[1, 2]", 400), (b"{" + b" " * 70_000 + b"}", 413)]
)
def test_a_malformed_scan_request_gets_its_status(adapter: RunningAdapter, body: bytes, status: int) -> None:
    response = Client(adapter.app).post("/api/v1/scan", data=body, headers={"X-ScannerAdapter-API-Key": KEY})
    assert response.status_code == status
    assert response.content_type == api.ERROR_MIME
    assert json.loads(response.get_data())["error"]["message"]


def test_no_capabilities_means_the_generic_vulnerability_report(adapter: RunningAdapter) -> None:
    body = request_body(f"http://127.0.0.1:{closed_port()}")
    del body["enabled_capabilities"]
    scan_id = client(adapter).submit(body)
    assert len(scan_id) == 24
    with pytest.raises(ScannerError):  # the report type is known; the scan itself fails (no registry)
        poll(client(adapter), scan_id, api.VULNERABILITY_REPORT_GENERIC)
    with pytest.raises(ScanUnknown, match="not asked for that report"):
        client(adapter).report(scan_id, api.VULNERABILITY_REPORT_NATIVE)


# Reports.


def poll(scanner: ScannerClient, scan_id: str, mime: str, sbom_type: str | None = None, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = scanner.report(scan_id, mime, sbom_type)
        if not isinstance(answer, ReportPending):
            return answer
        assert answer.retry_after == 2  # the adapter says when to come back
        time.sleep(0.05)
    raise AssertionError("the scan did not end")


def test_unknown_scans_are_404(adapter: RunningAdapter) -> None:
    with pytest.raises(ScanUnknown, match="unknown scan '000000000000000000000000'"):
        client(adapter).report("0" * 24, api.VULNERABILITY_REPORT_GENERIC)
    for scan_id in ["../../etc/passwd", "x" * 500, "%00"]:
        with pytest.raises(ScanUnknown):
            client(adapter).report(scan_id, api.VULNERABILITY_REPORT_GENERIC)


def test_a_scan_whose_registry_cannot_be_reached_fails_with_the_reason(adapter: RunningAdapter) -> None:
    scan_id = client(adapter).submit(request_body(f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(ScannerError, match="500 the registry cannot be reached") as failure:
        poll(client(adapter), scan_id, api.VULNERABILITY_REPORT_GENERIC)
    assert not isinstance(failure.value, ScanUnknown)
    job = adapter.app._jobs.get(scan_id)
    assert job is not None and job.target.authorization == ""  # the pull credential is dropped once the scan ends


def test_a_running_scan_answers_302_with_refresh_after(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = build_app(settings_for(tmp_path, scanner_pull_timeout_seconds=5))
        try:
            http = Client(app)
            headers = {"X-ScannerAdapter-API-Key": KEY}
            body = request_body(f"http://127.0.0.1:{silent.getsockname()[1]}")
            scan_id = http.post("/api/v1/scan", json=body, headers=headers).get_json()["id"]
            url = f"/api/v1/scan/{scan_id}/report"
            response = http.get(url, headers={**headers, "Accept": api.VULNERABILITY_REPORT_GENERIC})
            assert response.status_code == 302
            assert response.headers["Refresh-After"] == "2"
            assert response.headers["Location"].endswith(url)
        finally:
            app.close()


@pytest.mark.parametrize(
    "accept", ["application/json", "application/vnd.security.vulnerability.report; version=1.0", "text/html, */*;q=0.1"]
)
def test_an_unsupported_accept_is_415(adapter: RunningAdapter, accept: str) -> None:
    with pytest.raises(ScannerError, match="415 unsupported report type"):
        client(adapter).report("0" * 24, accept)


def test_accept_is_compared_by_type_and_version_not_spacing(adapter: RunningAdapter) -> None:
    with pytest.raises(ScanUnknown):  # got past content negotiation to the id lookup
        client(adapter).report("0" * 24, "application/vnd.security.vulnerability.report;version=1.1")


def test_an_sbom_report_needs_a_supported_sbom_media_type(adapter: RunningAdapter) -> None:
    with pytest.raises(ScannerError, match="400 sbom_media_type must be one of"):
        client(adapter).report("0" * 24, api.SBOM_REPORT)
    with pytest.raises(ScannerError, match="400"):
        client(adapter).report("0" * 24, api.SBOM_REPORT, "text/x-swid")


def test_a_scan_is_forgotten_after_its_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    app = build_app(settings_for(tmp_path, scanner_job_ttl_seconds=60))
    app._jobs.clock = lambda: now[0]  # the adapter's clock, moved instead of waited for
    try:
        http = Client(app)
        headers = {"X-ScannerAdapter-API-Key": KEY, "Accept": api.VULNERABILITY_REPORT_GENERIC}
        scan_id = http.post(
            "/api/v1/scan", json=request_body(f"http://127.0.0.1:{closed_port()}"), headers=headers
        ).get_json()["id"]
        assert http.get(f"/api/v1/scan/{scan_id}/report", headers=headers).status_code in (302, 500)
        now[0] += 61
        response = http.get(f"/api/v1/scan/{scan_id}/report", headers=headers)
        assert response.status_code == 404
        assert response.content_type == api.ERROR_MIME
    finally:
        app.close()


def test_an_osv_database_change_is_read_again(tmp_path: Path) -> None:
    app = build_app(settings_for(tmp_path))
    try:
        http = Client(app)
        headers = {"X-ScannerAdapter-API-Key": KEY}
        assert (
            http.get("/api/v1/metadata", headers=headers).get_json()["properties"]["osv-lite/database-records"] == "13"
        )
        record = {
            "id": "CVE-2026-2000",
            "modified": "2026-11-30T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1.0.0"]}],
        }
        (tmp_path / "osv" / "new.json").write_text(json.dumps(record))
        properties = http.get("/api/v1/metadata", headers=headers).get_json()["properties"]
        assert properties["osv-lite/database-records"] == "14"
        assert properties[api.DATABASE_UPDATED_AT] == "2026-11-30T00:00:00Z"
    finally:
        app.close()
