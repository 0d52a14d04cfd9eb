"""Typed artifacts pushed by oras-py against `make serve`: a user-defined type (skip-list, icon layer)
and a Helm chart built in the test with Helm's media types. What the registry recorded is read back
through the artifacts API (type, size from the bytes sent, extra_attrs, icon, additions) and the icon
through /api/v2.0/icons; the processors also run on the manifests and blobs as /v2 serves them."""

from __future__ import annotations

import base64
import json
import random
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.processors import BlobReader, abstract, addition
from tests.unit.processors.support import HELM_CONFIG, HELM_LAYER, png, tarball, to_json

from .support import API, OCI_MANIFEST, RegistryServer, api_get, artifacts_path, oras_client_for, repo_name, sha256

# oras-py is imported by the tests that use it: at collection its jsonschema import alone compiles
# dozens of grammars, in every pytest-xdist worker.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_spec("oras") is None, reason="oras-py is in requirements-dev.txt; run `make install`"),
]

MODEL_CONFIG = "application/vnd.acme.model.config.v1+json"
MODEL_LAYER = "application/vnd.acme.model.weights.v1.tar"
ICON = "io.goharbor.artifact.v1alpha1.icon"
SKIP = "io.goharbor.artifact.v1alpha1.skip-list"
MODEL = {"name": "resnet", "framework": "pytorch", "metrics": {"top1": 0.76}, "git": {"commit": "abc123"}}
CHART_ICON = "sha256:61cf3a178ff0f75bf08a25d96b75cf7355dc197749a9f128ed3ef34b0df05518"  # Harbor's built-in
CHART_CONFIG = {"apiVersion": "v2", "name": "shop", "version": "0.4.1", "description": "A shop", "type": "application"}
CHART_FILES: dict[str, bytes | None] = {
    "shop/Chart.yaml": b"""apiVersion: v2
name: shop
version: 0.4.1
description: A shop
type: application
dependencies:
  - name: redis
    version: 17.3.2
    repository: https://charts.example.com
    condition: redis.enabled
  - name: postgresql
    version: "12.1"
    repository: oci://registry.example.com/charts
    alias: db
""",
    "shop/values.yaml": b"replicaCount: 3\nimage:\n  repository: shop\n  tag: 0.4.1\n",
    "shop/README.md": b"# Shop\n\nSells things.\n",
    "shop/templates/deployment.yaml": b"kind: Deployment\n",
    "shop/charts/redis/README.md": b"# A dependency's readme, not the chart's\n",
}


@pytest.fixture
def client(registry: RegistryServer) -> Any:
    """One client per test (oras-py keeps one token per client: see test_oras.py)."""
    return oras_client_for(registry)


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


def pushed_digest(r: requests.Response) -> tuple[str, bytes]:
    """The manifest oras-py sent (201 and the digest of those bytes)."""
    assert r.status_code == 201, r.text
    sent = r.request.body if isinstance(r.request.body, bytes) else str(r.request.body).encode()
    assert r.headers.get("Docker-Content-Digest") == sha256(sent)
    return sha256(sent), sent


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
    digest, sent = pushed_digest(r)

    # The artifacts API: the type from the config media type, the config minus the skip-list, the icon layer.
    arts = api_get(registry, artifacts_path(repo), with_tag="true")
    assert [a["digest"] for a in arts] == [digest]
    art = arts[0]
    assert art["type"] == "MODEL"
    assert (art["media_type"], art["manifest_media_type"], art["artifact_type"]) == (
        MODEL_CONFIG,
        OCI_MANIFEST,
        MODEL_CONFIG,
    )
    config_size = len((tmp_path / "config.json").read_bytes())
    assert art["size"] == len(sent) + config_size + len(weights) + len(icon)
    assert art["extra_attrs"] == {"name": "resnet", "framework": "pytorch"}
    assert art["icon"] == sha256(icon)
    assert "addition_links" not in art  # none for this type: an empty map is omitted, as Harbor does
    assert "references" not in art  # Harbor omits an empty field
    assert [t["name"] for t in art["tags"]] == ["v1"]
    assert art.get("annotations", {}) == json.loads(sent).get("annotations", {})
    assert api_get(registry, artifacts_path(repo, f"/{digest}"), with_tag="true") == art
    # A user-defined type has no additions: Harbor's envelope, not a 500.
    none = registry.http("GET", artifacts_path(repo, "/v1/additions/readme.md"))
    assert 400 <= none.status_code < 500 and none.json()["errors"][0]["code"], none.text

    served = get_icon(registry, sha256(icon), wait=15)
    assert served.status_code == 200, served.text
    assert served.json() == {"content-type": "image/png", "content": base64.b64encode(icon).decode()}
    # Other blobs of the artifact are not icons, and a malformed digest is the Harbor envelope.
    assert get_icon(registry, sha256(weights)).status_code == 404
    bad = get_icon(registry, "sha256:nothex")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "BAD_REQUEST"

    # The processor, run on what /v2 serves, agrees with the record.
    parsed, body, read = pulled(registry, repo, "v1")
    result = abstract(parsed, body, read)
    assert (result.type, result.extra_attrs, result.icon, result.additions) == (
        "MODEL",
        art["extra_attrs"],
        art["icon"],
        (),
    )


def test_helm_chart(registry: RegistryServer, client: Any, tmp_path: Path) -> None:
    config, chart_tgz = to_json(CHART_CONFIG), tarball(CHART_FILES)
    (tmp_path / "chart.json").write_bytes(config)
    (tmp_path / "shop-0.4.1.tgz").write_bytes(chart_tgz)
    repo = repo_name("types/shop")

    r = client.push(
        target=registry.ref(repo, "0.4.1"),
        files=[f"{tmp_path / 'shop-0.4.1.tgz'}:{HELM_LAYER}"],
        manifest_config=f"{tmp_path / 'chart.json'}:{HELM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )
    digest, sent = pushed_digest(r)

    art = api_get(registry, artifacts_path(repo, "/0.4.1"), with_tag="true")
    assert art["digest"] == digest
    assert (art["type"], art["media_type"], art["manifest_media_type"]) == ("CHART", HELM_CONFIG, OCI_MANIFEST)
    assert art["size"] == len(sent) + len(config) + len(chart_tgz)
    assert art["extra_attrs"] == CHART_CONFIG
    assert art["icon"] == CHART_ICON  # no icon of its own: Harbor's built-in chart icon, which /icons serves
    assert [t["name"] for t in art["tags"]] == ["0.4.1"]
    # The project-wide list finds it by digest too.
    in_project = api_get(registry, f"{API}/projects/library/artifacts", q=f"digest={digest}")
    assert [(a["repository_name"], a["type"], a["size"]) for a in in_project] == [(repo, "CHART", art["size"])]
    builtin = get_icon(registry, CHART_ICON)
    assert builtin.status_code == 200 and builtin.json()["content-type"] == "image/png", builtin.text
    assert get_icon(registry, sha256(chart_tgz), wait=1).status_code == 404

    def addition_of(name: str) -> requests.Response:
        got = registry.http("GET", artifacts_path(repo, f"/{digest}/additions/{name}"))
        assert got.status_code == 200, f"{name}: {got.status_code} {got.text}"
        return got

    values = addition_of("values.yaml")
    assert values.content == CHART_FILES["shop/values.yaml"]
    assert values.headers["Content-Type"].startswith("text/plain")
    readme = addition_of("readme.md")
    assert readme.content == CHART_FILES["shop/README.md"]
    assert readme.headers["Content-Type"].startswith("text/markdown")
    assert addition_of("dependencies").json() == [
        {"name": "redis", "version": "17.3.2", "repository": "https://charts.example.com",
         "condition": "redis.enabled"},
        {"name": "postgresql", "version": "12.1", "repository": "oci://registry.example.com/charts", "alias": "db"},
    ]  # fmt: skip
    # A chart has no build history, and an unknown addition is Harbor's envelope.
    for name in ("build_history", "nonsense"):
        got = registry.http("GET", artifacts_path(repo, f"/{digest}/additions/{name}"))
        assert 400 <= got.status_code < 500 and got.json()["errors"][0]["code"], f"{name}: {got.text}"

    parsed, body, read = pulled(registry, repo, "0.4.1")
    result = abstract(parsed, body, read)
    assert (result.type, result.extra_attrs, result.icon) == ("CHART", CHART_CONFIG, None)
    assert result.additions == ("values.yaml", "readme.md", "dependencies")
    assert addition("values.yaml", parsed, body, read).content == values.content
