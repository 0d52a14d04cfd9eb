"""skopeo and podman pulling through a proxy-cache project of a server started as `make serve`
starts it. The upstream is CNCF distribution 2.8 behind the Docker-Hub-shaped double (Basic auth,
rate-limit headers, every request counted): pulls are byte-exact, each blob is fetched from the
upstream once however many clients pull it, and with the upstream stopped the cache still serves
what it holds (an index trimmed to the platforms pulled)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .peers import Distribution, HubDouble
from .support import Layout, RegistryServer, assert_same_blobs, check, require_tool, run

pytestmark = pytest.mark.e2e

API = "/api/v2.0"
USER, PASSWORD = "alice", "wonderland"
PROJECT = "cache"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("proxy-server")
    started = RegistryServer(root / "data", root / "server.log", REGISTRY_EGRESS_ALLOW_NETWORKS="127.0.0.0/8").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def upstream(
    tmp_path_factory: pytest.TempPathFactory, images: dict[str, Any]
) -> Iterator[tuple[Distribution, HubDouble]]:
    """distribution holding the test images, behind the counting double (which asks for Basic auth)."""
    require_tool("skopeo")
    dist = Distribution(tmp_path_factory.mktemp("proxy-upstream")).start()
    hub = HubDouble(dist.port).start()
    hub.basic = (USER, PASSWORD)
    for case, repo, tag in (("medium", "vendor/app", "v1"), ("multiarch", "vendor/multi", "latest")):
        src = Layout(images["dir"] / images[case]["layout"])
        dest = f"docker://127.0.0.1:{hub.port}/{repo}:{tag}"
        check(["skopeo", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds",
               f"{USER}:{PASSWORD}", f"oci:{src.path}:latest", dest])  # fmt: skip
    with hub.lock:
        hub.counts.clear()
    try:
        yield dist, hub
    finally:
        hub.stop()
        dist.stop()


@pytest.fixture(scope="module")
def project(server: RegistryServer, upstream: tuple[Distribution, HubDouble]) -> str:
    _, hub = upstream
    body = {"name": "dist", "type": "docker-registry", "url": hub.url,
            "credential": {"type": "basic", "access_key": USER, "access_secret": PASSWORD}}  # fmt: skip
    response = server.http("POST", f"{API}/registries", json=body)
    assert response.status_code == 201, response.text
    registry_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response = server.http("POST", f"{API}/projects", json={"project_name": PROJECT, "registry_id": registry_id})
    assert response.status_code == 201, response.text
    return PROJECT


def skopeo_pull(server: RegistryServer, repo: str, ref: str, out: Path, *extra: str) -> Layout:
    check(["skopeo", "copy", *server.skopeo_src(), *extra, "docker://" + server.ref(f"{PROJECT}/{repo}", ref),
           f"oci:{out}:pulled"])  # fmt: skip
    return Layout(out)


def blob_gets(hub: HubDouble) -> dict[str, int]:
    with hub.lock:
        return {k.rsplit("/", 1)[1]: v for k, v in hub.counts.items() if k.startswith("GET ") and "/blobs/" in k}


def test_podman_pulls_one_platform_of_an_index(
    server: RegistryServer, upstream: tuple[Distribution, HubDouble], project: str, images: dict[str, Any],
    podman: Any,
) -> None:  # fmt: skip
    ref = server.ref(f"{project}/vendor/multi", "latest")
    podman("pull", "-q", "--tls-verify=false", "--creds", server.creds, ref)
    amd64 = next(c["digest"] for c in images["multiarch"]["children"] if c["platform"]["architecture"] == "amd64")
    assert json.loads(podman("image", "inspect", ref))[0]["Digest"] in (images["multiarch"]["digest"], amd64)
    podman("rmi", "-f", ref)


def test_skopeo_and_podman_pull_through_and_from_the_cache(
    server: RegistryServer, upstream: tuple[Distribution, HubDouble], project: str, images: dict[str, Any],
    podman: Any, tmp_path: Path,
) -> None:  # fmt: skip
    dist, hub = upstream
    src = Layout(images["dir"] / images["medium"]["layout"])
    digest = images["medium"]["digest"]
    first = skopeo_pull(server, "vendor/app", "v1", tmp_path / "first")
    assert first.ref("pulled")["digest"] == digest
    assert_same_blobs(src, first, src.reachable(digest))

    ref = server.ref(f"{project}/vendor/app", "v1")
    podman("pull", "-q", "--tls-verify=false", "--creds", server.creds, ref)
    info = json.loads(podman("image", "inspect", ref))[0]
    assert info["Digest"] == digest
    # Two clients, one upstream GET per blob (the manifest's own blobs: config and layers).
    document = json.loads(src.blob(digest))
    wanted = {d["digest"] for d in [document["config"], *document["layers"]]}
    gets = blob_gets(hub)
    assert {d: gets.get(d) for d in wanted} == dict.fromkeys(wanted, 1)
    assert set(gets.values()) == {1}  # the index's blobs, pulled by the test before, once each too

    hub.stop()
    dist.stop()
    again = skopeo_pull(server, "vendor/app", "v1", tmp_path / "again")
    assert_same_blobs(src, again, src.reachable(digest))
    podman("rmi", "-f", ref)
    podman("pull", "-q", "--tls-verify=false", "--creds", server.creds, ref)
    assert json.loads(podman("image", "inspect", ref))[0]["Digest"] == digest
    artifacts = server.http("GET", f"{API}/projects/{PROJECT}/repositories/vendor%252Fapp/artifacts").json()
    assert [t["name"] for a in artifacts for t in a.get("tags") or []] == ["v1"]

    # The index pulled earlier, served from the cache trimmed to the platform that was pulled.
    multi = server.ref(f"{project}/vendor/multi", "latest")
    podman("pull", "-q", "--tls-verify=false", "--creds", server.creds, multi)
    index = server.get_manifest(f"{project}/vendor/multi", "latest")
    assert index.status_code == 200, index.text
    platforms = [m["platform"]["architecture"] for m in index.json()["manifests"]]
    assert platforms == ["amd64"]
    # Nothing cached and the upstream gone: 404, never a 500.
    assert run(["skopeo", "inspect", "--raw", *server.skopeo_plain(),
                "docker://" + server.ref(f"{project}/vendor/app", "v9")]).returncode != 0  # fmt: skip
    assert server.get_manifest(f"{project}/vendor/app", "v9").status_code == 404
