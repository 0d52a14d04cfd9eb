"""The scanner client against a fake that behaves as the Trivy adapter does (trivy_fake.py), over
real HTTP on 127.0.0.1 through the egress policy."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import EgressPolicy, parse_networks
from chalicelib.adapters.scanner_client import (
    ReportPending,
    ReportReady,
    ScannerClient,
    ScannerEndpoint,
    ScannerError,
    ScanUnknown,
    refresh_after,
)
from chalicelib.errors import EgressRefused
from tests.unit.adapters.trivy_fake import FINDING, SBOM, TRIVY_ERROR, VULN, TrivyFake

LOOPBACK = EgressPolicy(parse_networks(["127.0.0.1/32"]))
DIGEST = "sha256:" + "c" * 64


@pytest.fixture
def trivy() -> Iterator[TrivyFake]:
    fake = TrivyFake().start()
    yield fake
    fake.close()


def client_for(fake: TrivyFake, **endpoint: Any) -> ScannerClient:
    return ScannerClient(LOOPBACK, ScannerEndpoint(fake.url + "/", **endpoint))


def target() -> api.ScanTarget:
    return api.ScanTarget(
        registry_url="https://registry.example.com/",
        authorization=api.basic_authorization("robot$library+scanner-trivy-1", "s3cret"),
        repository="library/app",
        digest=DIGEST,
        mime_type=api.DOCKER_IMAGE_MANIFEST,
        tag="v1",
        size=1234,
    )


def submit_vulnerability_scan(client: ScannerClient) -> str:
    return client.submit(api.scan_request(target(), api.VULNERABILITY, VULN))


def test_metadata_is_read_as_harbor_reads_it(trivy: TrivyFake) -> None:
    metadata = client_for(trivy).metadata()
    assert (metadata.name, metadata.vendor, metadata.version) == ("Trivy", "Aqua Security", "v0.72.0")
    assert metadata.supports_vulnerability and metadata.supports_sbom
    assert metadata.registry_authorization_type == "Basic"
    # Trivy offers the generic 1.1 report only: that is what gets polled.
    assert metadata.report_types(api.DOCKER_IMAGE_MANIFEST, api.VULNERABILITY) == (VULN,)
    assert metadata.preferred_vulnerability_report(api.OCI_IMAGE_MANIFEST) == VULN
    assert metadata.report_types("application/vnd.oci.image.index.v1+json", api.VULNERABILITY) == ()
    method, path, headers = trivy.requests[-1]
    assert (method, path) == ("GET", "/api/v1/metadata")
    assert headers["Accept"] == "application/vnd.scanner.adapter.metadata+json; version=1.0"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m["scanner"].pop("version"), "name, vendor and version"),
        (lambda m: m.update(capabilities=[]), "no capability"),
        (lambda m: m["capabilities"][1].update(consumes_mime_types=[api.OCI_IMAGE_MANIFEST]), "does not consume"),
        (lambda m: m["capabilities"][0].update(produces_mime_types=["application/json"]), "no report type"),
        (lambda m: m.update(scanner="Trivy"), "names no scanner"),
    ],
)
def test_metadata_harbor_would_refuse_is_refused(trivy: TrivyFake, change: Any, reason: str) -> None:
    change(trivy.metadata)
    with pytest.raises(ScannerError, match=reason):
        client_for(trivy).metadata()


def test_a_capability_without_a_type_is_a_vulnerability_capability(trivy: TrivyFake) -> None:
    del trivy.metadata["capabilities"][0]["type"]
    assert client_for(trivy).metadata().report_types(api.DOCKER_IMAGE_MANIFEST, api.VULNERABILITY) == (VULN,)


@pytest.mark.parametrize(
    ("auth", "credential", "header", "value"),
    [
        ("Basic", "harbor:pass", "Authorization", "Basic " + base64.b64encode(b"harbor:pass").decode()),
        ("Bearer", "tok", "Authorization", "Bearer tok"),
        ("APIKey", "key-1", "X-Scanneradapter-Api-Key", "key-1"),
    ],
)
def test_the_registration_credential_goes_in_its_header(
    trivy: TrivyFake, auth: Any, credential: str, header: str, value: str
) -> None:
    client_for(trivy, auth=auth, credential=credential).metadata()
    assert trivy.requests[-1][2][header] == value


def test_no_auth_sends_no_credential(trivy: TrivyFake) -> None:
    client_for(trivy).metadata()
    headers = trivy.requests[-1][2]
    assert "Authorization" not in headers and "X-Scanneradapter-Api-Key" not in headers


def test_a_scan_request_is_harbors(trivy: TrivyFake) -> None:
    scan_id = submit_vulnerability_scan(client_for(trivy))
    assert len(scan_id) == 24
    method, path, headers = trivy.requests[-1]
    assert (method, path) == ("POST", "/api/v1/scan")
    assert headers["Content-Type"] == "application/vnd.scanner.adapter.scan.request+json; version=1.0"
    assert headers["Accept"] == "application/vnd.scanner.adapter.scan.response+json; version=1.0"
    sent = trivy.jobs[scan_id].request
    assert sent["registry"] == {
        "url": "https://registry.example.com",
        "authorization": "Basic " + base64.b64encode(b"robot$library+scanner-trivy-1:s3cret").decode(),
        "insecure": False,
    }
    assert sent["artifact"] == {
        "repository": "library/app",
        "tag": "v1",
        "digest": DIGEST,
        "mime_type": api.DOCKER_IMAGE_MANIFEST,
        "size": 1234,
    }
    assert sent["enabled_capabilities"] == [
        {"type": "vulnerability", "produces_mime_types": [VULN], "parameters": None}
    ]


def test_an_sbom_request_asks_for_spdx_only(trivy: TrivyFake) -> None:
    client = client_for(trivy)
    scan_id = client.submit(api.scan_request(target(), api.SBOM, SBOM))
    assert trivy.jobs[scan_id].request["enabled_capabilities"] == [
        {"type": "sbom", "produces_mime_types": [SBOM], "parameters": {"sbom_media_types": ["application/spdx+json"]}}
    ]
    ready = client.report(scan_id, SBOM, api.SPDX_JSON)
    assert isinstance(ready, ReportReady)
    assert api.sbom_document(ready.json()) == {"spdxVersion": "SPDX-2.3"}
    assert trivy.requests[-1][1] == f"/api/v1/scan/{scan_id}/report?sbom_media_type=application%2Fspdx%2Bjson"


def test_a_refused_scan_request_carries_the_adapters_message(trivy: TrivyFake) -> None:
    request = api.scan_request(target(), api.VULNERABILITY, VULN)
    request["artifact"]["digest"] = ""
    with pytest.raises(ScannerError, match=r"422 missing artifact\.repository or artifact\.digest"):
        client_for(trivy).submit(request)


def test_302_without_refresh_after_waits_five_seconds_and_is_not_followed(trivy: TrivyFake) -> None:
    trivy.polls_until_ready = 2
    client = client_for(trivy)
    scan_id = submit_vulnerability_scan(client)
    assert client.report(scan_id, VULN) == ReportPending(5)
    assert client.report(scan_id, VULN) == ReportPending(5)
    assert isinstance(client.report(scan_id, VULN), ReportReady)
    polls = [r for r in trivy.requests if r[1].endswith("/report")]
    assert len(polls) == 3  # one request per poll: the Location (the same URL) is never followed


@pytest.mark.parametrize(
    ("header", "seconds"), [("2", 2), ("127", 127), ("128", 5), ("0", 5), ("-3", 5), ("soon", 5), (None, 5)]
)
def test_refresh_after_is_read_as_harbor_reads_it(header: str | None, seconds: int) -> None:
    assert refresh_after(header) == seconds


def test_an_inexact_accept_gets_415_with_trivys_error_type(trivy: TrivyFake) -> None:
    client = client_for(trivy)
    scan_id = submit_vulnerability_scan(client)
    with pytest.raises(ScannerError, match="415 unsupported media type") as failure:
        client.report(scan_id, "application/vnd.security.vulnerability.report;version=1.1")
    assert "unreadable" not in str(failure.value)  # the message was read despite the odd Content-Type
    assert trivy.requests[-1][2]["Accept"] == "application/vnd.security.vulnerability.report;version=1.1"


def test_an_error_body_that_is_not_the_protocols_becomes_the_message() -> None:
    assert api.error_message(b"<html>bad gateway</html>").startswith("unreadable error answer")
    assert api.error_message(b'{"error": "flat"}').startswith("unreadable error answer")
    assert api.error_message(json.dumps({"error": {"message": "boom"}}).encode()) == "boom"


def test_a_clean_report_without_severity_reads_as_none(trivy: TrivyFake) -> None:
    client = client_for(trivy)
    ready = client.report(submit_vulnerability_scan(client), VULN)
    assert isinstance(ready, ReportReady) and ready.content_type == VULN
    body = ready.json()
    assert "severity" not in body and "vulnerabilities" not in body  # as Trivy sends it
    report = api.parse_vulnerability_report(body)
    assert report.severity == "None" and report.vulnerabilities == ()
    assert report.document["vulnerabilities"] == []


def test_cvss_only_in_vendor_attributes_fills_preferred_cvss_from_nvd(trivy: TrivyFake) -> None:
    trivy.findings = [FINDING, {**FINDING, "id": "CVE-2026-0002", "severity": "SEVERE", "vendor_attributes": {}}]
    client = client_for(trivy)
    ready = client.report(submit_vulnerability_scan(client), VULN)
    assert isinstance(ready, ReportReady)
    report = api.parse_vulnerability_report(ready.json())
    first, second = report.vulnerabilities
    assert first.raw["preferred_cvss"] == {
        "score_v3": 7.5,
        "score_v2": None,
        "vector_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N",
        "vector_v2": "",
    }
    assert (first.id, first.package, first.fix_version, first.severity) == (
        "CVE-2026-0001",
        "libssl3",
        "3.0.11-1~deb12u2",
        "High",
    )
    assert second.severity == "Unknown" and "preferred_cvss" not in second.raw
    assert report.severity == "High"


def test_a_scan_past_its_ttl_is_unknown(trivy: TrivyFake) -> None:
    client = client_for(trivy)
    scan_id = submit_vulnerability_scan(client)
    trivy.expire(scan_id)
    with pytest.raises(ScanUnknown, match="cannot find scan job"):
        client.report(scan_id, VULN)
    with pytest.raises(ScanUnknown):
        client.report("0" * 24, VULN)


def test_a_failed_scan_is_an_error_with_the_adapters_message(trivy: TrivyFake) -> None:
    client = client_for(trivy)
    scan_id = submit_vulnerability_scan(client)
    trivy.jobs[scan_id].outcome = "failed"
    with pytest.raises(ScannerError, match="500 running trivy wrapper") as failure:
        client.report(scan_id, VULN)
    assert not isinstance(failure.value, ScanUnknown)


def test_the_fake_uses_trivys_error_type() -> None:
    assert TRIVY_ERROR != api.ERROR_MIME  # the reason the client never matches on it


def test_an_internal_address_is_refused_without_an_allowance(trivy: TrivyFake) -> None:
    with pytest.raises(EgressRefused):
        ScannerClient(EgressPolicy(), ScannerEndpoint(trivy.url)).metadata()
    assert trivy.requests == []


def test_an_unreachable_scanner_is_a_scanner_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ScannerError, match="cannot be reached"):
        ScannerClient(LOOPBACK, ScannerEndpoint(f"http://127.0.0.1:{port}")).metadata()


def test_a_scanner_slower_than_five_seconds_is_a_scanner_error(trivy: TrivyFake) -> None:
    trivy.delay_seconds = 5.5
    with pytest.raises(ScannerError, match="cannot be reached"):
        client_for(trivy).metadata()


def test_an_unknown_auth_type_is_refused() -> None:
    with pytest.raises(ValueError, match="auth must be one of"):
        ScannerEndpoint("http://127.0.0.1", auth="Digest")  # type: ignore[arg-type]
