"""A scan through the registry's own API against a registry started as `make serve` starts it.

The Debian fixture image (dpkg, Python and npm packages; its second layer whiteouts a package) is
written as an OCI layout and pushed with skopeo; the server runs the built-in adapter (osv-lite)
that `make serve` starts and registers as the default scanner, here with the fixture OSV database
(`REGISTRY_OSV_DATABASE`); `POST .../scan` runs the scan execution on the server's job engine (the
state machine on moto): the adapter pulls the image with the scan robot's credentials the registry
handed it, and the results come back in Harbor's shapes with exactly the fixture vulnerabilities.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scanner_fixtures import DEBIAN_FINDINGS, Image, debian_image, findings_of, sha256, write_osv_zip

from .support import RegistryServer, check, require_tool

pytestmark = pytest.mark.e2e

GENERIC = "application/vnd.security.vulnerability.report; version=1.1"
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
    """The image as an OCI image layout skopeo copies from (tag `v1`)."""
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
