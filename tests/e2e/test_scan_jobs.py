"""Scans through the registry's own API against a registry started as `make serve` starts it.

The server runs the built-in adapter (osv-lite) that `make serve` starts and registers as the
default scanner, here with the fixture OSV database (`REGISTRY_OSV_DATABASE`); the fixture images
are written as OCI layouts and pushed with skopeo; each scan runs as a scan execution on the
server's job engine (the state machine on moto): the adapter pulls the image with the scan robot's
credentials the registry handed it, and the results come back in Harbor's shapes with exactly the
fixture vulnerabilities.

- A Debian image (dpkg, Python and npm packages; its second layer whiteouts a package), scanned by
  `POST .../scan`.
- Issue 13's end-to-end check: an image holding a Debian dpkg status, an Alpine apk database, a
  Python dist-info and npm packages (one layer whiteouts a Python package) pushed into a project
  with `auto_scan`: scanned on push, then pulled by podman and skopeo through the pull gate
  (`prevent_vul`, `severity=high`), refused with Harbor's 412 until every High-or-above CVE is on
  the project's allowlist or on the system's, and refused again once it is taken off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.scanner_fixtures import (
    DEBIAN_FINDINGS,
    MIXED_FINDINGS,
    Image,
    debian_image,
    findings_of,
    mixed_image,
    sha256,
    write_osv_zip,
)

from .support import Layout, RegistryServer, check, poll, require_tool, run

pytestmark = pytest.mark.e2e

GENERIC = "application/vnd.security.vulnerability.report; version=1.1"
NATIVE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FINAL = ("Success", "Error", "Stopped")
REPO = "library/scan-jobs"
ART = "/api/v2.0/projects/library/repositories/scan-jobs/artifacts"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("scan-jobs-e2e")
    database = write_osv_zip(root / "osv.zip")
    server = RegistryServer(root / "data", root / "server.log", REGISTRY_LOCAL_BLOB_REDIRECT="true",
                            REGISTRY_OSV_DATABASE=str(database)).start()  # fmt: skip
    yield server
    server.stop()


def _layout(fixture: Image, directory: Path) -> Path:
    """The image as an OCI image layout skopeo and podman copy from (tag `v1`)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for digest, blob in {**fixture.blobs(), fixture.digest: fixture.manifest}.items():
        (blobs / digest.split(":")[1]).write_bytes(blob)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": fixture.digest,
        "size": len(fixture.manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }]}  # fmt: skip
    (directory / "index.json").write_text(json.dumps(index))
    return directory


def test_a_pushed_image_scanned_through_the_api_has_exactly_its_fixture_vulnerabilities(
    registry: RegistryServer, tmp_path: Path
) -> None:
    require_tool("skopeo")
    fixture = debian_image()
    layout = _layout(fixture, tmp_path / "layout")
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(), f"oci:{layout}:v1",
           "docker://" + registry.ref(REPO, "v1")])  # fmt: skip

    scanner = registry.http("GET", "/api/v2.0/projects/library/scanner")
    assert scanner.status_code == 200 and scanner.json()["name"] == "osv-lite", scanner.text

    started = registry.http("POST", f"{ART}/v1/scan", json={"scan_type": "vulnerability"})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    overview: dict[str, object] = {}
    while time.monotonic() < deadline:
        view = registry.http("GET", f"{ART}/v1", params={"with_scan_overview": "true"}).json()
        overview = (view.get("scan_overview") or {}).get(GENERIC) or {}
        if overview.get("scan_status") in ("Success", "Error", "Stopped"):
            break
        time.sleep(0.5)
    assert overview.get("scan_status") == "Success", (overview, registry.log_path.read_text()[-3000:])
    assert overview["severity"] == "High"
    assert overview["summary"] == {"total": 5, "fixable": 4, "summary": {"High": 3, "Medium": 1, "Unknown": 1}}
    assert overview["scanner"] == {"name": "osv-lite", "vendor": "Built-in", "version": "1.0.0"}

    additions = registry.http("GET", f"{ART}/v1/additions/vulnerabilities").json()
    assert list(additions) == [GENERIC]
    assert findings_of(additions[GENERIC]) == DEBIAN_FINDINGS
    assert additions[GENERIC]["vulnerabilities"][0]["layer"]["digest"] in {sha256(b) for _, b in fixture.layers}

    robots = registry.http("GET", "/api/v2.0/robots").json()
    assert [r["name"] for r in robots if "+scanner-" in r["name"]] == []
    log = registry.http("GET", f"{ART}/v1/scan/{overview['report_id']}/log")
    assert log.status_code == 200 and "report received: 5 vulnerabilities" in log.text


# Issue 13's end-to-end check: scan on push, then the pull gate and the CVE allowlists.

GATED = "scan-gate"
GATED_REPO = f"{GATED}/app"
GATED_ART = f"/api/v2.0/projects/{GATED}/repositories/app/artifacts"
# Every CVE of the mixed image at High or above: Debian's openssl (libssl3 and openssl), npm's
# lodash, Alpine's openssl (libcrypto3, Critical).
HIGH_OR_ABOVE = ["CVE-2026-1001", "CVE-2026-1005", "CVE-2026-1002"]
assert sorted(HIGH_OR_ABOVE) == sorted({f[0] for f in MIXED_FINDINGS if f[3] in ("High", "Critical")})
# What Harbor's 412 says for this image (6 findings, id-package-version) at severity=high.
REFUSAL = (
    "current image with 6 vulnerabilities cannot be pulled due to configured policy in 'Prevent images with "
    'vulnerability severity of "High" or higher from running.\' To continue with pull, please contact your '
    "project administrator to exempt matched vulnerabilities through configuring the CVE allowlist."
)
# Harbor's VulnerabilityItem (src/pkg/scan/vuln/report.go): each field and the JSON types it takes.
ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "package": (str,), "version": (str,), "fix_version": (str,), "severity": (str,),
    "status": (str,), "description": (str,), "links": (list,), "artifact_digests": (list,),
    "preferred_cvss": (dict,), "cwe_ids": (list,), "vendor_attributes": (dict, type(None)),
}  # fmt: skip
SEVERITIES = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")


def _date_time(value: Any) -> datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _assert_native_report_summary(overview: dict[str, Any]) -> None:
    """Harbor's swagger `NativeReportSummary` with its `VulnerabilitySummary` and `Scanner`."""
    assert set(overview) == {"report_id", "scan_status", "severity", "duration", "summary", "start_time",
                             "end_time", "complete_percent", "scanner"}, overview  # fmt: skip
    assert isinstance(overview["report_id"], str) and overview["report_id"]
    assert isinstance(overview["duration"], int) and overview["duration"] >= 0
    assert isinstance(overview["complete_percent"], int)
    assert _date_time(overview["start_time"]) <= _date_time(overview["end_time"])
    summary = overview["summary"]
    assert set(summary) == {"total", "fixable", "summary"}
    assert all(isinstance(summary[k], int) for k in ("total", "fixable"))
    assert all(k in SEVERITIES and isinstance(v, int) and v > 0 for k, v in summary["summary"].items())
    assert all(isinstance(overview["scanner"][k], str) for k in ("name", "vendor", "version"))


def _assert_harbor_report(report: dict[str, Any], digest: str) -> None:
    """Harbor's vulnerability report as `additions/vulnerabilities` answers it."""
    assert set(report) == {"generated_at", "scanner", "severity", "vulnerabilities"}, set(report)
    _date_time(report["generated_at"])
    assert report["scanner"] == {"name": "osv-lite", "vendor": "Built-in", "version": "1.0.0"}
    for item in report["vulnerabilities"]:
        for name, types in ITEM_TYPES.items():
            assert isinstance(item.get(name, ...), types), (name, item)
        assert item["severity"] in SEVERITIES and item["artifact_digests"] == [digest]
        assert all(isinstance(x, str) for x in item["links"] + item["cwe_ids"])
        cvss = item["preferred_cvss"]
        assert set(cvss) == {"score_v3", "score_v2", "vector_v3", "vector_v2"}
        assert cvss["score_v3"] is None or isinstance(cvss["score_v3"], float)


@pytest.fixture(scope="module")
def gated_image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Image, Path]:
    """The mixed image pushed with skopeo into a project with `auto_scan`, its scan on push done."""
    require_tool("skopeo")
    made = registry.http("POST", "/api/v2.0/projects", json={"project_name": GATED, "metadata": {"auto_scan": "true"}})
    assert made.status_code == 201, made.text
    fixture = mixed_image()
    layout = _layout(fixture, tmp_path_factory.mktemp("mixed") / "layout")
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(), f"oci:{layout}:v1",
           "docker://" + registry.ref(GATED_REPO, "v1")])  # fmt: skip

    def done() -> dict[str, Any] | None:
        view = registry.http("GET", f"{GATED_ART}/v1", params={"with_scan_overview": "true"}).json()
        overview: dict[str, Any] = (view.get("scan_overview") or {}).get(GENERIC) or {}
        return overview if overview.get("scan_status") in FINAL else None

    overview = poll(done, timeout=120, interval=0.5)
    assert overview and overview["scan_status"] == "Success", (overview, registry.log_text()[-3000:])
    return fixture, layout


def _admin(registry: RegistryServer, method: str, path: str, body: dict[str, Any]) -> None:
    answer = registry.http(method, path, json=body)
    assert answer.status_code == 200, (path, body, answer.status_code, answer.text)


def _refused(registry: RegistryServer, podman: Any, ref: str) -> None:
    """The gate refuses the pull: 412 with Harbor's envelope on GET and HEAD, and podman and skopeo fail with it."""
    for method in ("GET", "HEAD"):
        answer = registry.http(method, f"/v2/{GATED_REPO}/manifests/v1", scope=f"repository:{GATED_REPO}:pull",
                               headers={"Accept": OCI_MANIFEST})  # fmt: skip
        assert answer.status_code == 412, (method, answer.status_code, answer.text)
        if method == "GET":
            (error,) = answer.json()["errors"]
            assert (error["code"], error["message"]) == ("PROJECTPOLICYVIOLATION", REFUSAL), error
    pulled = podman("pull", "-q", "--tls-verify=false", "--creds", registry.creds, ref, ok=False)
    assert REFUSAL in pulled, pulled
    assert podman("images", "-q", ok=False).strip() == ""
    inspected = run(["skopeo", "inspect", *registry.skopeo_plain(), "docker://" + ref])
    said = inspected.stdout.replace('\\"', '"')  # skopeo's fatal log line escapes the quotes
    assert inspected.returncode != 0 and REFUSAL in said, inspected.stdout


def _pulled(registry: RegistryServer, podman: Any, fixture: Image, ref: str, tmp_path: Path) -> None:
    """podman pulls the image byte-exact (its digest, its config and layers' diff ids), so does skopeo."""
    podman("pull", "-q", "--tls-verify=false", "--creds", registry.creds, ref)
    info = json.loads(podman("image", "inspect", ref))[0]
    config = json.loads(fixture.config)
    assert info["Digest"] == fixture.digest and info["Id"] == sha256(fixture.config).split(":")[1]
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    podman("rmi", "-f", ref)
    copy = tmp_path / f"copy-{time.monotonic_ns()}"
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_src(), "docker://" + ref, f"oci:{copy}:v1"])
    pulled = Layout(copy)
    assert pulled.ref("v1")["digest"] == fixture.digest
    for digest, blob in {**fixture.blobs(), fixture.digest: fixture.manifest}.items():
        assert pulled.blob(digest) == blob


def test_scan_on_push_finds_exactly_the_fixture_vulnerabilities_in_harbor_shapes(
    registry: RegistryServer, gated_image: tuple[Image, Path]
) -> None:
    fixture, _ = gated_image
    listed = registry.http("GET", GATED_ART, params={"with_scan_overview": "true"},
                           headers={"X-Accept-Vulnerabilities": GENERIC})  # fmt: skip
    assert listed.status_code == 200, listed.text
    (artifact,) = listed.json()
    assert artifact["digest"] == fixture.digest and list(artifact["scan_overview"]) == [GENERIC]
    overview = artifact["scan_overview"][GENERIC]
    _assert_native_report_summary(overview)
    assert overview["scan_status"] == "Success" and overview["complete_percent"] == 100
    assert overview["severity"] == "Critical"
    assert overview["summary"] == {"total": 6, "fixable": 5,
                                   "summary": {"Critical": 1, "High": 3, "Medium": 1, "Unknown": 1}}  # fmt: skip
    assert overview["scanner"] == {"name": "osv-lite", "vendor": "Built-in", "version": "1.0.0"}
    one = registry.http("GET", f"{GATED_ART}/v1", params={"with_scan_overview": "true"},
                        headers={"X-Accept-Vulnerabilities": f"{NATIVE}, {GENERIC}"}).json()  # fmt: skip
    assert one["scan_overview"] == {GENERIC: overview}  # the registry asked the adapter for the generic report
    native_only = registry.http("GET", f"{GATED_ART}/v1", params={"with_scan_overview": "true"},
                                headers={"X-Accept-Vulnerabilities": NATIVE}).json()  # fmt: skip
    assert not native_only.get("scan_overview")

    additions = registry.http("GET", f"{GATED_ART}/v1/additions/vulnerabilities",
                              headers={"X-Accept-Vulnerabilities": GENERIC}).json()  # fmt: skip
    assert list(additions) == [GENERIC]
    report = additions[GENERIC]
    _assert_harbor_report(report, fixture.digest)
    assert findings_of(report) == MIXED_FINDINGS  # no more, no fewer
    assert "PYSEC-2026-5" not in {v["id"] for v in report["vulnerabilities"]}  # Django was whited out
    assert report["severity"] == "Critical"
    by_key = {(v["id"], v["package"]): v for v in report["vulnerabilities"]}
    assert by_key[("CVE-2026-1002", "libcrypto3")]["preferred_cvss"]["score_v3"] == 9.8
    assert by_key[("CVE-2026-1002", "libcrypto3")]["layer"]["digest"] == sha256(fixture.layers[1][1])  # the zstd one
    assert by_key[("CVE-2026-1004", "bash")]["fix_version"] == ""
    assert {v["id"] for v in report["vulnerabilities"]} >= set(HIGH_OR_ABOVE)
    assert [r["name"] for r in registry.http("GET", "/api/v2.0/robots").json() if "+scanner-" in r["name"]] == []


def test_the_gate_refuses_the_pull_until_every_high_cve_is_allowlisted(
    registry: RegistryServer, gated_image: tuple[Image, Path], podman: Any, tmp_path: Path
) -> None:
    require_tool("podman")
    fixture, _ = gated_image
    ref = registry.ref(GATED_REPO, "v1")
    project = f"/api/v2.0/projects/{GATED}"
    _admin(registry, "PUT", project, {"metadata": {"prevent_vul": "true", "severity": "high"}})
    _refused(registry, podman, ref)

    # The project's own allowlist (not reusing the system's): every High-or-above CVE lets it through.
    two = {"items": [{"cve_id": c} for c in HIGH_OR_ABOVE[:2]]}
    _admin(registry, "PUT", project, {"metadata": {"reuse_sys_cve_allowlist": "false"}, "cve_allowlist": two})
    partial = registry.http("GET", f"/v2/{GATED_REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert partial.status_code == 412 and "current image with 3 vulnerabilities" in partial.text  # Critical left
    _admin(registry, "PUT", project, {"cve_allowlist": {"items": [{"cve_id": c} for c in HIGH_OR_ABOVE]}})
    _pulled(registry, podman, fixture, ref, tmp_path)
    _admin(registry, "PUT", project, {"cve_allowlist": {"items": []}})
    _refused(registry, podman, ref)

    # The system allowlist, once the project reuses it; the project's own list is then not read.
    _admin(registry, "PUT", project, {"metadata": {"reuse_sys_cve_allowlist": "true"},
                                      "cve_allowlist": {"items": [{"cve_id": c} for c in HIGH_OR_ABOVE]}})  # fmt: skip
    _refused(registry, podman, ref)
    _admin(registry, "PUT", "/api/v2.0/system/CVEAllowlist", {"items": [{"cve_id": c} for c in HIGH_OR_ABOVE]})
    _pulled(registry, podman, fixture, ref, tmp_path)
    _admin(registry, "PUT", "/api/v2.0/system/CVEAllowlist", {"items": []})
    _refused(registry, podman, ref)

    # The findings stay in the report whatever the allowlists say.
    report = registry.http("GET", f"{GATED_ART}/v1/additions/vulnerabilities").json()[GENERIC]
    assert findings_of(report) == MIXED_FINDINGS
