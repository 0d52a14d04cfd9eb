"""Scan time of a ~100 MB image with the built-in scanner adapter.

Run as `python -m tests.bench.scanning [--mb 100] [--runs 3] [--json FILE]`. It starts a registry
like `make serve` (blob GETs as 307s, as on AWS), pushes one image whose layers hold the Debian
fixture's package databases beside `--mb` MB of file content (half random, half text), starts the
adapter in-process with the fixture OSV database, and times each scan from POST /scan to the
report (pull, decompress, walk, match), as the registry's client polls it (every 0.1 s here,
instead of the adapter's Refresh-After of 2 s, so the poll interval does not hide the work).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import EgressPolicy, parse_networks
from chalicelib.adapters.scanner_client import ReportReady, ScannerClient, ScannerEndpoint
from chalicelib.scanner_adapter.server import start
from chalicelib.scanner_adapter.settings import AdapterSettings
from tests.e2e.support import RegistryServer
from tests.scanner_fixtures import (
    DEBIAN_BASE,
    DEBIAN_FINDINGS,
    LAYER_GZIP,
    findings_of,
    image,
    tar_layer,
    write_osv_zip,
)

KEY = "bench-key"
# The Debian fixture's base layer alone: no npm layer (lodash), and no whiteout of Django.
EXPECTED = {f for f in DEBIAN_FINDINGS if f[1] != "lodash"} | {("PYSEC-2026-5", "django", "4.2", "Unknown", "")}


def _big_layer(megabytes: int) -> tuple[bytes, bytes]:
    """(gzip blob, tar) of `megabytes` MB of files: 1 MB each, alternating random and text."""
    rng = random.Random(42)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for number in range(megabytes):
            data = (
                os.urandom(1 << 20)
                if number % 2
                else (" ".join(str(rng.random()) for _ in range(60_000)).encode()[: 1 << 20])
            )
            info = tarfile.TarInfo(f"usr/share/bench/file-{number}.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tar = out.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), tar


def _push(registry: RegistryServer, repository: str, blobs: dict[str, bytes], manifest: bytes) -> None:
    scope = f"repository:{repository}:pull,push"
    for digest, blob in blobs.items():
        r = registry.http("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, params={"digest": digest}, data=blob,
                          headers={"Content-Type": "application/octet-stream"}, timeout=300)  # fmt: skip
        assert r.status_code == 201, r.text
    r = registry.http("PUT", f"/v2/{repository}/manifests/bench", scope=scope, data=manifest,
                      headers={"Content-Type": api.OCI_IMAGE_MANIFEST})  # fmt: skip
    assert r.status_code == 201, r.text


def measure(megabytes: int, runs: int, workdir: Path) -> dict[str, Any]:
    base_tar = tar_layer(DEBIAN_BASE)
    big_blob, big_tar = _big_layer(megabytes)
    fixture = image([(LAYER_GZIP, gzip.compress(base_tar)), (LAYER_GZIP, big_blob)], [base_tar, big_tar])
    registry = RegistryServer(workdir / "data", workdir / "server.log", REGISTRY_LOCAL_BLOB_REDIRECT="true").start()
    adapter = None
    try:
        repository = "library/bench-scan"
        _push(registry, repository, fixture.blobs(), fixture.manifest)
        settings = AdapterSettings(
            osv_database=write_osv_zip(workdir / "osv.zip"),
            scanner_api_key=KEY,
            scanner_port=0,
            egress_allow_networks="127.0.0.1/32",
        )
        adapter = start(settings)
        client = ScannerClient(
            EgressPolicy(parse_networks(["127.0.0.1/32"])), ScannerEndpoint(adapter.url, "APIKey", KEY)
        )
        authorization = api.basic_authorization("admin", registry.password)
        target = api.ScanTarget(registry.url, authorization, repository, fixture.digest, api.OCI_IMAGE_MANIFEST)
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            scan_id = client.submit(api.scan_request(target, api.VULNERABILITY, api.VULNERABILITY_REPORT_GENERIC))
            while not isinstance(answer := client.report(scan_id, api.VULNERABILITY_REPORT_GENERIC), ReportReady):
                time.sleep(0.1)
            seconds.append(time.perf_counter() - started)
            found = findings_of(answer.json())
            assert found == EXPECTED, found
    finally:
        if adapter is not None:
            adapter.close()
        registry.stop()
    compressed = sum(len(b) for _, b in fixture.layers)
    return {
        "image_compressed_mb": round(compressed / 1e6, 1),
        "image_unpacked_mb": round((len(base_tar) + len(big_tar)) / 1e6, 1),
        "runs": runs,
        "scan_seconds_median": round(statistics.median(seconds), 2),
        "scan_seconds_all": [round(s, 2) for s in seconds],
        "unpacked_mb_per_second": round((len(base_tar) + len(big_tar)) / 1e6 / statistics.median(seconds), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as workdir:
        result = measure(options.mb, options.runs, Path(workdir))
    print(json.dumps(result, indent=2))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
