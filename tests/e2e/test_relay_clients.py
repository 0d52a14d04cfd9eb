"""Stock clients push a 64 MB layer through the upload relay of `make serve`, and pull it back exact.

Two servers: one with `REGISTRY_MAX_BODY_BYTES=4194304` (the AWS topology: the app refuses bodies
above 4 MiB, so a 64 MB layer can only arrive through the relay) and one with the cap off. The
clients: docker (Debian's docker.io: one streaming PATCH, no Authorization to the relay's host),
containerd's own pusher (`ctr images push`: one PUT per blob, authorizer dropped on another host),
podman, skopeo and oras-py (which send their credentials along). Each client pushes its own image
(its own random layer), so every push really uploads.

Byte-exact: clients that send the layout's blobs as they are (containerd, skopeo, oras) get those
exact bytes back; docker and podman compress the layer again when they push, so their pushed
layer is checked against its digest and its content against the original's diff_id, and the image
is pulled back by the same client.
"""

from __future__ import annotations

import gzip
import json
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    MANIFEST_ACCEPT,
    Dockerd,
    Layout,
    RegistryServer,
    assert_same_blobs,
    check,
    oras_client_for,
    repo_name,
    require_tool,
    sha256,
    single_layer_image,
)

pytestmark = pytest.mark.e2e

LAYER_MB = 64
CAP = 4 * 1024 * 1024
CLIENTS = ("docker", "ctr", "podman", "skopeo", "oras")


@pytest.fixture(scope="module", params=["capped", "uncapped"])
def server(request: pytest.FixtureRequest, e2e_tmp: Path) -> Iterator[RegistryServer]:
    extra = {"REGISTRY_MAX_BODY_BYTES": str(CAP)} if request.param == "capped" else {}
    name = f"relay-{request.param}"
    registry = RegistryServer(e2e_tmp / name, e2e_tmp / f"{name}.log", **extra).start()
    log = registry.log_text(registry.started_at_offset)
    assert f"relay listening on http://127.0.0.1:{registry.relay_port}" in log, log
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    root = tmp_path_factory.mktemp("relay-images")
    return {client: single_layer_image(root / client, LAYER_MB, f"relay-{client}") for client in CLIENTS}


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    daemon = Dockerd(Path(tmp_path_factory.mktemp("dockerd"))).start()
    yield daemon
    daemon.stop()


def _manifest_of(layout: Layout) -> tuple[str, dict[str, Any]]:
    digest = layout.index()["manifests"][0]["digest"]
    return digest, layout.json_blob(digest)


def _assert_layer_content(server: RegistryServer, repo: str, tag: str, original: Layout) -> None:
    """The stored image: its config is the original's, its layer hashes to its digest and unpacks to
    the original's content (for clients that compress the layer again on push)."""
    r = server.http("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    assert r.status_code == 200, r.text
    pushed = r.json()
    _, source = _manifest_of(original)
    assert pushed["config"]["digest"] == source["config"]["digest"]
    diff_ids = original.json_blob(source["config"]["digest"])["rootfs"]["diff_ids"]
    layers = pushed["layers"]
    assert len(layers) == 1 and layers[0]["size"] > LAYER_MB * 1024 * 1024
    blob = server.http("GET", f"/v2/{repo}/blobs/{layers[0]['digest']}", timeout=300)
    assert blob.status_code == 200
    assert sha256(blob.content) == layers[0]["digest"]
    assert sha256(gzip.decompress(blob.content)) == diff_ids[0]


def _pull_back_exact(server: RegistryServer, repo: str, tag: str, original: Layout, out: Path) -> None:
    check(["skopeo", "copy", *server.skopeo_src(), "docker://" + server.ref(repo, tag), f"oci:{out}:pulled"])
    digest, _ = _manifest_of(original)
    assert_same_blobs(original, Layout(out), original.reachable(digest))


def test_docker_push_and_pull(server: RegistryServer, dockerd: Dockerd, layouts: dict[str, Layout], tmp_path: Path):
    original = layouts["docker"]
    local = "e2e/relay-docker:latest"
    archive = tmp_path / "image.tar"
    check(["skopeo", "copy", f"oci:{original.path}:latest", f"docker-archive:{archive}:{local}"], timeout=300)
    dockerd.docker("load", "-i", str(archive))
    repo = repo_name("relay/docker")
    ref = server.ref(repo, "v1")
    config = tmp_path / "docker-config"
    login = dockerd.docker_cmd("--config", str(config), "login", "-u", "admin", "--password-stdin", server.hostport)
    check(["sh", "-c", f'printf %s "$0" | {" ".join(login)}', server.password])
    dockerd.docker("tag", local, ref)
    dockerd.docker("--config", str(config), "push", ref)
    _assert_layer_content(server, repo, "v1", original)
    image_id = _manifest_of(original)[1]["config"]["digest"]
    dockerd.docker("rmi", "-f", image_id)
    dockerd.docker("--config", str(config), "pull", ref)
    assert dockerd.docker("image", "inspect", "--format", "{{.Id}}", ref).strip() == image_id


def test_containerd_push(server: RegistryServer, dockerd: Dockerd, layouts: dict[str, Layout], tmp_path: Path):
    original = layouts["ctr"]
    archive = tmp_path / "oci.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(original.path / name, arcname=name)
    repo = repo_name("relay/ctr")
    base = f"{server.hostport}/{repo}"
    dockerd.ctr("images", "import", "--base-name", base, str(archive))
    dockerd.ctr("images", "push", "--plain-http", "--user", server.creds, f"{base}:latest")
    _pull_back_exact(server, repo, "latest", original, tmp_path / "pulled")


def test_podman_push(server: RegistryServer, layouts: dict[str, Layout], podman: Any, tmp_path: Path):
    original = layouts["podman"]
    image_id = _manifest_of(original)[1]["config"]["digest"].split(":")[1]
    podman("pull", "-q", f"oci:{original.path}:latest")
    repo = repo_name("relay/podman")
    ref = server.ref(repo, "v1")
    podman("tag", image_id, ref)
    podman("push", "-q", "--tls-verify=false", "--creds", server.creds, ref)
    _assert_layer_content(server, repo, "v1", original)
    podman("rmi", "-f", image_id)
    podman("pull", "-q", "--tls-verify=false", "--creds", server.creds, ref)
    assert json.loads(podman("image", "inspect", ref))[0]["Id"] == image_id


def test_skopeo_copy(server: RegistryServer, layouts: dict[str, Layout], tmp_path: Path):
    require_tool("skopeo")
    original = layouts["skopeo"]
    repo = repo_name("relay/skopeo")
    check(["skopeo", "copy", "--preserve-digests", *server.skopeo_dest(), f"oci:{original.path}:latest",
           "docker://" + server.ref(repo, "v1")], timeout=300)  # fmt: skip
    _pull_back_exact(server, repo, "v1", original, tmp_path / "pulled")


def test_oras_push(server: RegistryServer, tmp_path: Path):
    pytest.importorskip("oras.client")
    payload = tmp_path / "payload.bin"
    data = random.Random("relay-oras").randbytes(LAYER_MB * 1024 * 1024)
    payload.write_bytes(data)
    target = server.ref(repo_name("relay/oras"), "v1")
    client = oras_client_for(server)
    pushed = client.push(target=target, files=[f"{payload}:application/octet-stream"], disable_path_validation=True)
    assert pushed.status_code == 201, pushed.text
    out = tmp_path / "out"
    client.pull(target=target, outdir=str(out))
    assert (out / "payload.bin").read_bytes() == data
