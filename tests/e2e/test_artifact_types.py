"""Typed artifacts pushed by oras-py against `make serve`: a user-defined type (skip-list, icon layer)
and a Helm chart. The icon is read back through /api/v2.0/icons; the processors run on the manifests
and blobs exactly as the registry serves them (the artifacts API assertions come with that API)."""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.processors import BlobReader, abstract, addition
from tests.unit.processors.support import CHART_CONFIG, HELM_CONFIG, HELM_LAYER, chart, png

from .support import RegistryServer, repo_name, sha256

oras_client = pytest.importorskip("oras.client", reason="oras-py is in requirements-dev.txt; run `make install`")

pytestmark = pytest.mark.e2e

MODEL_CONFIG = "application/vnd.acme.model.config.v1+json"
MODEL_LAYER = "application/vnd.acme.model.weights.v1.tar"
ICON = "io.goharbor.artifact.v1alpha1.icon"
SKIP = "io.goharbor.artifact.v1alpha1.skip-list"
MODEL = {"name": "resnet", "framework": "pytorch", "metrics": {"top1": 0.76}, "git": {"commit": "abc123"}}


@pytest.fixture
def client(registry: RegistryServer) -> Any:
    """One client per test (oras-py keeps one token per client: see test_oras.py)."""
    c = oras_client.OrasClient(hostname=registry.hostport, insecure=True)
    c.auth.set_basic_auth(*registry.creds.split(":", 1))
    return c


def pulled(registry: RegistryServer, repo: str, tag: str) -> tuple[ParsedManifest, bytes, BlobReader]:
    """The manifest as the registry serves it, and a BlobReader over its /v2 blob endpoint."""
    r = registry.get_manifest(repo, tag)
    assert r.status_code == 200, r.text
    body = r.content
    parsed = parse_manifest(body, r.headers["Content-Type"], sha256(body))

    def read(digest: str, max_bytes: int) -> bytes:
        blob = registry.http("GET", f"/v2/{repo}/blobs/{digest}")
        assert blob.status_code == 200, blob.text
        assert len(blob.content) <= max_bytes
        return blob.content

    return parsed, body, read


def get_icon(registry: RegistryServer, digest: str, *, wait: float = 0) -> requests.Response:
    """GET the icon anonymously; with `wait`, until the push event has marked it."""
    deadline = time.monotonic() + wait
    while True:
        r = requests.get(f"{registry.url}/api/v2.0/icons/{digest}", timeout=30)
        if r.status_code != 404 or time.monotonic() >= deadline:
            return r
        time.sleep(0.2)


def test_user_defined_artifact_with_skip_list_and_icon(registry: RegistryServer, client: Any, tmp_path: Path) -> None:
    icon, weights = png(32, 32), random.Random("e2e-types").randbytes(50_000)
    (tmp_path / "icon.png").write_bytes(icon)
    (tmp_path / "weights.tar").write_bytes(weights)
    (tmp_path / "config.json").write_text(json.dumps(MODEL))
    (tmp_path / "annotations.json").write_text(
        json.dumps({"$config": {SKIP: "metrics,git"}, str(tmp_path / "icon.png"): {ICON: ""}})
    )
    repo = repo_name("types/model")

    r = client.push(
        target=registry.ref(repo, "v1"),
        files=[f"{tmp_path / 'weights.tar'}:{MODEL_LAYER}", f"{tmp_path / 'icon.png'}:image/png"],
        manifest_config=f"{tmp_path / 'config.json'}:{MODEL_CONFIG}",
        annotation_file=str(tmp_path / "annotations.json"),
        disable_path_validation=True,
        quiet=True,
    )
    assert r.status_code == 201, r.text

    served = get_icon(registry, sha256(icon), wait=15)
    assert served.status_code == 200, served.text
    assert served.json() == {"content-type": "image/png", "content": base64.b64encode(icon).decode()}
    # Other blobs of the artifact are not icons, and a malformed digest is the Harbor envelope.
    assert get_icon(registry, sha256(weights)).status_code == 404
    bad = get_icon(registry, "sha256:nothex")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "BAD_REQUEST"

    parsed, body, read = pulled(registry, repo, "v1")
    result = abstract(parsed, body, read)
    assert result.type == "MODEL"
    assert result.extra_attrs == {"name": "resnet", "framework": "pytorch"}
    assert result.icon == sha256(icon)
    assert result.additions == ()


def test_helm_chart(registry: RegistryServer, client: Any, tmp_path: Path) -> None:
    config, tarball = chart()
    (tmp_path / "chart.json").write_bytes(config)
    (tmp_path / "demo-1.2.3.tgz").write_bytes(tarball)
    repo = repo_name("types/demo")

    r = client.push(
        target=registry.ref(repo, "1.2.3"),
        files=[f"{tmp_path / 'demo-1.2.3.tgz'}:{HELM_LAYER}"],
        manifest_config=f"{tmp_path / 'chart.json'}:{HELM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )
    assert r.status_code == 201, r.text

    parsed, body, read = pulled(registry, repo, "1.2.3")
    result = abstract(parsed, body, read)
    assert (result.type, result.extra_attrs, result.icon) == ("CHART", CHART_CONFIG, None)
    assert result.additions == ("values.yaml", "readme.md", "dependencies")
    assert addition("values.yaml", parsed, body, read).content == b"replicaCount: 2\nimage: nginx\n"
    assert addition("readme.md", parsed, body, read).content.startswith(b"# Demo")
    assert [d["name"] for d in json.loads(addition("dependencies", parsed, body, read).content)] == [
        "redis",
        "postgres",
    ]
    # A chart has no icon of its own here (Harbor's built-in chart icon is not served).
    assert get_icon(registry, sha256(tarball), wait=1).status_code == 404
