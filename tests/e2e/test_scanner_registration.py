"""`make serve` starts the built-in scanner adapter and registers it as the default scanner: the
registration answers through Harbor's API, its metadata comes from the running adapter, and the
adapter refuses callers without its key."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import urllib3

from .support import RegistryServer

pytestmark = pytest.mark.e2e

API = "/api/v2.0"


def _get(registry: RegistryServer, path: str) -> tuple[int, Any]:
    auth = base64.b64encode(f"admin:{registry.password}".encode()).decode()
    response = urllib3.request("GET", registry.url + path, headers={"Authorization": f"Basic {auth}"}, timeout=30)
    return response.status, json.loads(response.data) if response.data else None


def test_make_serve_registers_the_builtin_adapter_as_the_default(registry: RegistryServer) -> None:
    status, listed = _get(registry, f"{API}/scanners")
    assert status == 200, listed
    builtin = [r for r in listed if r["name"] == "osv-lite"]
    assert len(builtin) == 1, listed
    record = builtin[0]
    assert record["is_default"] is True and record["auth"] == "APIKey" and record["access_credential"] == ""
    assert record["url"].startswith("http://127.0.0.1:")
    assert record["capabilities"] == {"support_vulnerability": True, "support_sbom": True}
    status, meta = _get(registry, f"{API}/scanners/{record['uuid']}/metadata")
    assert status == 200, meta
    assert meta["scanner"]["name"] and {c["type"] for c in meta["capabilities"]} == {"vulnerability", "sbom"}
    status, chosen = _get(registry, f"{API}/projects/library/scanner")
    assert status == 200 and chosen["uuid"] == record["uuid"]
    # The adapter authenticates its caller (unlike Trivy): no key, no metadata.
    anonymous = urllib3.request("GET", record["url"] + "/api/v1/metadata", timeout=10)
    assert anonymous.status == 401
    assert "scanner adapter osv-lite on " + record["url"] in registry.log_text()
