"""The built-in scanner adapter against a registry started as `make serve` starts it.

Fixture images (a Debian image with dpkg, Python and npm packages whose second layer whiteouts a
Python package; an Alpine image in one zstd layer; an image with an rpm database) are pushed to the
registry; the adapter, driven through the registry's own scanner client, pulls them the way Trivy
does (the `/v2/` challenge, a token for a project robot's Basic credentials, blobs through their
307) and must find exactly the fixture vulnerabilities. The server answers blob GETs with a 307
(`REGISTRY_LOCAL_BLOB_REDIRECT`), as S3 does on AWS.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import urllib3

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import EgressClient, EgressPolicy, parse_networks
from chalicelib.adapters.scanner_client import ReportPending, ReportReady, ScannerClient, ScannerEndpoint, ScannerError
from chalicelib.scanner_adapter.server import RunningAdapter, start
from chalicelib.scanner_adapter.settings import AdapterSettings
from tests.scanner_fixtures import (
    ALPINE_FINDINGS,
    DEBIAN_FINDINGS,
    OCI_CONFIG,
    Image,
    alpine_image,
    debian_image,
    findings_of,
    image,
    rpm_image,
    sha256,
    write_osv_zip,
)

from .support import RegistryServer

pytestmark = pytest.mark.e2e

KEY = "e2e-adapter-key"
PROJECT = "library"
LOOPBACK = EgressPolicy(parse_networks(["127.0.0.1/32"]))


class RecordingEgress(EgressClient):
    """The adapter's egress client, recording each call's method, URL and whether it carried
    credentials (the pull path is the point of several tests)."""

    def __init__(self) -> None:
        super().__init__(LOOPBACK, 30)
        self.calls: list[tuple[str, str, bool]] = []

    @contextmanager
    def open(
        self, method: str, url: str, headers: dict[str, str], verify: bool, *, body: bytes | None = None
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        self.calls.append((method, url, "Authorization" in headers))
        with super().open(method, url, headers, verify, body=body) as response:
            yield response


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("scanner-e2e")
    server = RegistryServer(root / "data", root / "server.log", REGISTRY_LOCAL_BLOB_REDIRECT="true").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def robot(registry: RegistryServer) -> tuple[str, str]:
    """A project robot that may pull, as the registry will mint one per scan task."""
    body = {
        "name": "scanner-osv",
        "level": "project",
        "duration": -1,
        "permissions": [
            {"kind": "project", "namespace": PROJECT, "access": [{"resource": "repository", "action": "pull"}]}
        ],
    }
    made = registry.http("POST", "/api/v2.0/robots", json=body)
    assert made.status_code == 201, made.text
    return made.json()["name"], made.json()["secret"]


@pytest.fixture(scope="module")
def egress() -> RecordingEgress:
    return RecordingEgress()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, egress: RecordingEgress) -> Iterator[RunningAdapter]:
    database = write_osv_zip(tmp_path_factory.mktemp("osv") / "osv.zip")
    settings = AdapterSettings(osv_database=database, scanner_api_key=KEY, scanner_port=0)
    running = start(settings, egress)
    yield running
    running.close()


def push(registry: RegistryServer, repository: str, fixture: Image, tag: str = "v1") -> str:
    for digest, blob in fixture.blobs().items():
        r = registry.http("POST", f"/v2/{repository}/blobs/uploads/", scope=f"repository:{repository}:pull,push",
                          params={"digest": digest}, data=blob,
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert r.status_code == 201, r.text
    r = registry.http("PUT", f"/v2/{repository}/manifests/{tag}", scope=f"repository:{repository}:pull,push",
                      data=fixture.manifest, headers={"Content-Type": api.OCI_IMAGE_MANIFEST})  # fmt: skip
    assert r.status_code == 201, r.text
    return fixture.digest


def scanner(adapter: RunningAdapter) -> ScannerClient:
    return ScannerClient(LOOPBACK, ScannerEndpoint(adapter.url, auth="APIKey", credential=KEY))


def submit(
    adapter: RunningAdapter,
    registry: RegistryServer,
    credentials: tuple[str, str],
    repository: str,
    digest: str,
    scan_type: str = api.VULNERABILITY,
) -> str:
    target = api.ScanTarget(
        registry.url, api.basic_authorization(*credentials), repository, digest, api.OCI_IMAGE_MANIFEST
    )
    produces = api.VULNERABILITY_REPORT_GENERIC if scan_type == api.VULNERABILITY else api.SBOM_REPORT
    request = api.scan_request(target, scan_type, produces)
    if scan_type == api.SBOM:  # Harbor asks for SPDX only; the adapter also offers CycloneDX
        request["enabled_capabilities"][0]["parameters"]["sbom_media_types"] = [api.SPDX_JSON, api.CYCLONEDX_JSON]
    return scanner(adapter).submit(request)


def report(adapter: RunningAdapter, scan_id: str, mime: str, sbom_type: str | None = None) -> Any:
    client = scanner(adapter)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.report(scan_id, mime, sbom_type)
        if isinstance(answer, ReportReady):
            return answer.json()
        assert isinstance(answer, ReportPending) and answer.retry_after == 2
        time.sleep(0.1)
    raise AssertionError("scan did not finish")


def scan(
    adapter: RunningAdapter, registry: RegistryServer, robot: tuple[str, str], repository: str, digest: str
) -> Any:
    return report(adapter, submit(adapter, registry, robot, repository, digest), api.VULNERABILITY_REPORT_GENERIC)


def test_the_debian_image_has_exactly_its_fixture_vulnerabilities(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter, egress: RecordingEgress
) -> None:
    fixture = debian_image()
    digest = push(registry, f"{PROJECT}/scan-debian", fixture)
    egress.calls.clear()
    scan_id = submit(adapter, registry, robot, f"{PROJECT}/scan-debian", digest)
    document = report(adapter, scan_id, api.VULNERABILITY_REPORT_GENERIC)
    assert findings_of(document) == DEBIAN_FINDINGS
    assert document["severity"] == "High"
    assert document["artifact"] == {
        "repository": f"{PROJECT}/scan-debian",
        "digest": digest,
        "mime_type": api.OCI_IMAGE_MANIFEST,
    }
    assert document["scanner"] == {"name": "osv-lite", "vendor": "Built-in", "version": "1.0.0"}
    assert "vendor_attributes" not in document  # everything in it was analysed
    parsed = api.parse_vulnerability_report(document)  # what the registry will store
    assert parsed.severity == "High" and len(parsed.vulnerabilities) == len(DEBIAN_FINDINGS)

    items = {(v["id"], v["package"]): v for v in document["vulnerabilities"]}
    libssl = items[("CVE-2026-1001", "libssl3")]
    assert libssl["preferred_cvss"] == {"score_v3": 7.5, "vector_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}
    assert libssl["status"] == "fixed" and libssl["links"] == [
        "https://security-tracker.debian.org/tracker/CVE-2026-1001"
    ]
    base_layer = fixture.layers[0][1]
    assert libssl["layer"]["digest"] == sha256(base_layer)
    assert libssl["layer"]["diff_id"] == sha256(gzip.decompress(base_layer))
    requests_item = items[("CVE-2026-1003", "requests")]
    assert requests_item["vendor_attributes"]["osv_id"] == "GHSA-aaaa-bbbb-cccc"
    assert requests_item["cwe_ids"] == ["CWE-200"]
    assert (
        items[("CVE-2026-1004", "bash")]["status"] == "affected"
        and "fix_version" not in items[("CVE-2026-1004", "bash")]
    )
    lodash = items[("CVE-2026-1005", "lodash")]
    assert lodash["layer"]["digest"] == sha256(fixture.layers[1][1])  # the npm packages came in layer 2

    # The same body under the native report type.
    native = report(
        adapter,
        submit_native(adapter, registry, robot, f"{PROJECT}/scan-debian", digest),
        api.VULNERABILITY_REPORT_NATIVE,
    )
    assert findings_of(native) == DEBIAN_FINDINGS

    # Pulled like Trivy: the challenge, a token for the robot, the manifest, then each blob through its 307.
    urls = [(method, url.split("?")[0].replace(registry.url, ""), auth) for method, url, auth in egress.calls]
    assert urls[0] == ("GET", "/v2/", False)
    assert urls[1] == ("GET", "/service/token", True)
    assert urls[2] == ("GET", f"/v2/{PROJECT}/scan-debian/manifests/{digest}", True)
    for _media_type, layer in fixture.layers:
        index = urls.index(("GET", f"/v2/{PROJECT}/scan-debian/blobs/{sha256(layer)}", True))
        assert urls[index + 1][1] != urls[index][1]  # the redirect target was fetched next
    assert not any("/blobs/" + sha256(fixture.config) in url for _, url, _ in urls)  # the config is not needed


def submit_native(
    adapter: RunningAdapter, registry: RegistryServer, robot: tuple[str, str], repository: str, digest: str
) -> str:
    target = api.ScanTarget(registry.url, api.basic_authorization(*robot), repository, digest, api.OCI_IMAGE_MANIFEST)
    return scanner(adapter).submit(api.scan_request(target, api.VULNERABILITY, api.VULNERABILITY_REPORT_NATIVE))


def test_the_alpine_zstd_image_has_exactly_its_fixture_vulnerabilities(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    digest = push(registry, f"{PROJECT}/scan-alpine", alpine_image())
    document = scan(adapter, registry, robot, f"{PROJECT}/scan-alpine", digest)
    assert findings_of(document) == ALPINE_FINDINGS
    assert document["severity"] == "Critical"


def test_an_rpm_image_is_never_reported_clean(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    digest = push(registry, f"{PROJECT}/scan-rpm", rpm_image())
    document = scan(adapter, registry, robot, f"{PROJECT}/scan-rpm", digest)
    assert document["vendor_attributes"]["not_analysed"] == [
        "rpm packages were not analysed (the built-in scanner does not read rpm databases)"
    ]
    assert [(v["id"], v["severity"]) for v in document["vulnerabilities"]] == [("OSV-LITE-NOT-ANALYSED", "Unknown")]
    assert api.parse_vulnerability_report(document).severity == "Unknown"  # not "None": not clean


def test_sboms_of_the_debian_image_are_valid_and_complete(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    import lib4sbom
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    digest = push(registry, f"{PROJECT}/scan-sbom", debian_image())
    scan_id = submit(adapter, registry, robot, f"{PROJECT}/scan-sbom", digest, api.SBOM)
    spdx_report = report(adapter, scan_id, api.SBOM_REPORT, api.SPDX_JSON)
    assert spdx_report["media_type"] == api.SPDX_JSON
    spdx = api.sbom_document(spdx_report)
    schema = json.loads((Path(lib4sbom.__file__).parent / "schemas/spdx/2.3-schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(spdx)
    names = {p["name"] for p in spdx["packages"]}
    assert {"libssl3", "bash", "requests", "lodash", "@acme/widget", "minimist"} <= names
    assert "oldpkg" not in names and "django" not in names  # removed, and whited out

    cyclonedx = api.sbom_document(report(adapter, scan_id, api.SBOM_REPORT, api.CYCLONEDX_JSON))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(cyclonedx)) is None
    assert {c["name"] for c in cyclonedx["components"]} == names - {f"{PROJECT}/scan-sbom"}
    with pytest.raises(ScannerError, match="this scan was not asked for that report"):
        scanner(adapter).report(scan_id, api.VULNERABILITY_REPORT_GENERIC)


# Scans that fail: the report GET answers 500 with the reason, never a partial report.


def failed(adapter: RunningAdapter, scan_id: str) -> str:
    with pytest.raises(ScannerError) as failure:
        report(adapter, scan_id, api.VULNERABILITY_REPORT_GENERIC)
    return str(failure.value)


def test_wrong_scan_credentials_fail_the_scan(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    digest = push(registry, f"{PROJECT}/scan-auth", alpine_image())
    scan_id = submit(adapter, registry, (robot[0], "not-the-secret"), f"{PROJECT}/scan-auth", digest)
    assert "500 the token service refused the scan credentials (401)" in failed(adapter, scan_id)


def test_an_unknown_digest_fails_the_scan(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    push(registry, f"{PROJECT}/scan-missing", alpine_image())
    scan_id = submit(adapter, registry, robot, f"{PROJECT}/scan-missing", "sha256:" + "0" * 64)
    assert "the registry answered 404" in failed(adapter, scan_id)


def test_a_tar_bomb_fails_the_scan(registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter) -> None:
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as out, tarfile.open(fileobj=out, mode="w|") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 64 * 1024 * 1024
        archive.addfile(info, io.BytesIO(b"\0" * info.size))
    bomb = stream.getvalue()
    digest = push(
        registry, f"{PROJECT}/scan-bomb", image([("application/vnd.oci.image.layer.v1.tar+gzip", bomb)], [b""])
    )
    assert "unpacks to more than 100 times its size" in failed(
        adapter, scan_id=submit(adapter, registry, robot, f"{PROJECT}/scan-bomb", digest)
    )


def test_an_artifact_that_is_not_an_image_fails_the_scan(
    registry: RegistryServer, robot: tuple[str, str], adapter: RunningAdapter
) -> None:
    chart_config = b'{"name": "chart", "version": "1.0.0"}'
    fixture = image([("application/vnd.cncf.helm.chart.content.v1.tar+gzip", b"chart bytes")], [b""])
    manifest = json.loads(fixture.manifest)
    manifest["config"] = {
        "mediaType": "application/vnd.cncf.helm.config.v1+json",
        "digest": sha256(chart_config),
        "size": len(chart_config),
    }
    chart = Image(chart_config, fixture.layers, json.dumps(manifest).encode())
    assert OCI_CONFIG not in chart.manifest.decode()
    digest = push(registry, f"{PROJECT}/scan-chart", chart)
    assert "not a container image" in failed(adapter, submit(adapter, registry, robot, f"{PROJECT}/scan-chart", digest))
