"""The push command against `make serve` with the Lambda body cap (REGISTRY_MAX_BODY_BYTES=4194304):
an OCI layout, an index and a `docker save` archive (written by skopeo) go in chunks under the cap,
and skopeo pulls every blob back byte-exact."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import REPO_ROOT, Layout, RegistryServer, assert_same_blobs, check, repo_name, require_tool, run

pytestmark = pytest.mark.e2e

CAP = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def capped(e2e_tmp: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(
        e2e_tmp / "capped-data",
        e2e_tmp / "capped-server.log",
        REGISTRY_MAX_BODY_BYTES=str(CAP),
        REGISTRY_LOCAL_RELAY="false",  # the $0-idle deployment: no relay, every upload meets the cap
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def big_images(harness: Path, e2e_tmp: Path) -> dict[str, Any]:
    """`medium` at 24 MB: layers of 12, 7.2 and 4.8 MB, every one above the cap; and `multiarch`."""
    out = e2e_tmp / "push-images"
    check([sys.executable, harness / "make-images", out, "--seed", "push", "--medium-mb", "24",
           "--only", "medium,multiarch"], timeout=120)  # fmt: skip
    meta: dict[str, Any] = json.loads((out / "images.json").read_text())
    meta["dir"] = out
    return meta


def push_cli(registry: RegistryServer, source: str, dest_repo: str, tag: str = "v1") -> str:
    command = [sys.executable, "-m", "chalicelib.cli", "push", "--plain-http", "-q", "--dest-creds", registry.creds]
    return check([*command, source, registry.ref(dest_repo, tag)], cwd=REPO_ROOT, timeout=300)


def pull(registry: RegistryServer, repo: str, out: Path, *extra: str) -> Layout:
    check(["skopeo", "copy", *registry.skopeo_src(), *extra, "docker://" + registry.ref(repo, "v1"), f"oci:{out}:v1"])
    return Layout(out)


def test_the_cap_refuses_a_stock_single_request_push(capped: RegistryServer, big_images: dict[str, Any]) -> None:
    """What the push command is for: skopeo sends each layer in one request, which the cap refuses."""
    require_tool("skopeo")
    src = big_images["dir"] / big_images["medium"]["layout"]
    refused = run(["skopeo", "copy", *capped.skopeo_dest(), f"oci:{src}:latest",
                   "docker://" + capped.ref(repo_name("push/refused"), "v1")])  # fmt: skip
    assert refused.returncode != 0
    assert "exceeds" in refused.stdout or "413" in refused.stdout, refused.stdout[-2000:]


def test_layout_and_index_push_under_the_cap_and_pull_back_byte_exact(
    capped: RegistryServer, big_images: dict[str, Any], tmp_path: Path
) -> None:
    require_tool("skopeo")
    medium = Layout(big_images["dir"] / big_images["medium"]["layout"])
    out = push_cli(capped, f"oci:{medium.path}:latest", repo_name("push/medium"))
    assert "4 uploaded" in out, out  # config + 3 layers
    digest = big_images["medium"]["digest"]
    pulled = pull(capped, repo_name("push/medium"), tmp_path / "medium")
    assert pulled.ref("v1")["digest"] == digest
    assert_same_blobs(medium, pulled, medium.reachable(digest))

    multi = Layout(big_images["dir"] / big_images["multiarch"]["layout"])
    push_cli(capped, f"oci:{multi.path}:latest", repo_name("push/multi"))
    index = big_images["multiarch"]["digest"]
    pulled_all = pull(capped, repo_name("push/multi"), tmp_path / "multi", "--all")
    assert pulled_all.ref("v1")["digest"] == index
    assert_same_blobs(multi, pulled_all, multi.reachable(index))


def test_docker_archive_push_pulls_back_byte_exact(
    capped: RegistryServer, big_images: dict[str, Any], tmp_path: Path
) -> None:
    """skopeo writes the pre-Docker-25 `docker save` format (uncompressed layer tars)."""
    require_tool("skopeo")
    medium = big_images["dir"] / big_images["medium"]["layout"]
    archive = tmp_path / "app.tar"
    check(["skopeo", "copy", f"oci:{medium}:latest", f"docker-archive:{archive}:app:v1"])
    out = push_cli(capped, f"docker-archive:{archive}:app:v1", repo_name("push/archive"))
    assert "4 uploaded" in out, out
    # --preserve-digests: skopeo would otherwise gzip the uncompressed layers on their way into the layout.
    pulled = pull(capped, repo_name("push/archive"), tmp_path / "pulled", "--preserve-digests")
    manifest = pulled.json_blob(pulled.ref("v1")["digest"])
    check(["tar", "-xf", archive, "-C", tmp_path], timeout=60)
    saved = json.loads((tmp_path / "manifest.json").read_text())[0]
    assert manifest["config"]["digest"].split(":")[1] + ".json" == saved["Config"]
    for layer, name in zip(manifest["layers"], saved["Layers"], strict=True):
        assert pulled.blob(layer["digest"]) == (tmp_path / name).read_bytes()
    assert pulled.bad_blobs() == []
