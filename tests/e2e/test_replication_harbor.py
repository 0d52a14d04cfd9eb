"""Replication between two registries of this kind: a second `make serve` (its own port and data
dir) registered as a `harbor` endpoint of the first, driven only through Harbor's
/api/v2.0/registries and /replication API.

- push-based: a signed multi-arch index goes to the peer, only the repositories and tags the
  filters select, under the rewritten namespace (the peer's project created on the way),
  byte-exact, the signature findable there through the referrers API;
- pull-based: an index pushed to the peer comes back into a new local project, byte-exact, with its
  signature, listed and charged to the project's quota as a push would be.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .replication_support import (
    SIGNATURE,
    api,
    created_id,
    local,
    project,
    push_image,
    replicate,
    run,
    seed_multiarch,
    task_logs,
)
from .support import RegistryServer, api_get, artifacts_path, sha256

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The registry that replicates: allowed to reach the loopback peer (egress policy)."""
    base = tmp_path_factory.mktemp("replicating")
    started = RegistryServer(base / "data", base / "server.log", REGISTRY_EGRESS_ALLOW_NETWORKS="127.0.0.0/8").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    base = tmp_path_factory.mktemp("harbor-peer")
    started = RegistryServer(base / "data", base / "server.log").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def peer_id(server: RegistryServer, peer: RegistryServer) -> int:
    body = {"name": "peer", "type": "harbor", "url": peer.url, "insecure": False,
            "credential": {"type": "basic", "access_key": "admin", "access_secret": peer.password}}  # fmt: skip
    return created_id(api(server, "POST", "/registries", body))


def artifact_tags(registry: RegistryServer, repository: str) -> list[str]:
    artifacts = api_get(registry, artifacts_path(repository), with_tag="true")
    return sorted(t["name"] for a in artifacts for t in a.get("tags") or [])


def test_push_based_to_a_harbor_peer_with_filters_and_namespace_rewriting(
    server: RegistryServer, peer: RegistryServer, peer_id: int
) -> None:
    for name in ("team", "other"):
        project(server, name)
    src = local(server)
    index, signature, shared = seed_multiarch(src, "team/web/app")
    push_image(src, "team/web/app", "dev-1", b"not selected by the tag filter" * 100)
    seed_multiarch(src, "other/app")  # not selected by the name filter
    policy = {"name": "to-peer", "dest_registry": {"id": peer_id}, "dest_namespace": "mirror",
              "dest_namespace_replace_count": 1,
              "filters": [{"type": "name", "value": "team/**"}, {"type": "tag", "value": "v*"}],
              "trigger": {"type": "manual"}, "enabled": True}  # fmt: skip
    policy_id, _, tasks = replicate(server, policy)
    assert [(t["src_resource"], t["dst_resource"]) for t in tasks] == [("team/web/app:[v1]", "mirror/web/app:[v1]")]

    dst = local(peer)  # the project `mirror` was created on the peer by the replication
    pulled = dst.pull_manifest("mirror/web/app", "v1")
    assert pulled.digest == index.digest and pulled.data == index.data  # byte-exact, same digest
    for child in index.children():
        assert (
            dst.pull_manifest("mirror/web/app", child["digest"]).data
            == src.pull_manifest("team/web/app", child["digest"]).data
        )
    assert dst.read_blob("mirror/web/app", sha256(shared)) == shared
    found = dst.referrers("mirror/web/app", index.digest)  # the peer's own referrers API
    assert [(d["digest"], d.get("artifactType")) for d in found] == [(signature.digest, SIGNATURE)]
    assert dst.pull_manifest("mirror/web/app", signature.digest).data == signature.data
    assert artifact_tags(peer, "mirror/web/app") == ["v1"]  # `dev-1` stayed home
    projects = {p["name"] for p in api(peer, "GET", "/projects?page_size=100").json()}
    assert "mirror" in projects and "other" not in projects and "team" not in projects

    again = run(server, policy_id)  # everything is there: the second run copies nothing
    assert again["status"] == "Succeed"
    assert "copied blob" not in task_logs(server, again["id"])


def test_pull_based_from_a_harbor_peer_into_a_new_project(
    server: RegistryServer, peer: RegistryServer, peer_id: int
) -> None:
    project(peer, "vendor")
    upstream = local(peer)
    index, signature, shared = seed_multiarch(upstream, "vendor/tool")
    push_image(upstream, "vendor/tool", "nightly", b"not selected by the tag filter" * 100)
    seed_multiarch(upstream, "vendor/deep/other")  # `vendor/*` does not reach two levels down
    policy = {"name": "from-peer", "src_registry": {"id": peer_id}, "dest_namespace": "pulled",
              "dest_namespace_replace_count": 1,
              "filters": [{"type": "name", "value": "vendor/*"}, {"type": "tag", "value": "v*"}],
              "trigger": {"type": "manual"}, "enabled": True}  # fmt: skip
    _, _, tasks = replicate(server, policy)
    assert [(t["src_resource"], t["dst_resource"]) for t in tasks] == [("vendor/tool:[v1]", "pulled/tool:[v1]")]

    here = local(server)
    pulled = here.pull_manifest("pulled/tool", "v1")
    assert pulled.digest == index.digest and pulled.data == index.data
    assert here.read_blob("pulled/tool", sha256(shared)) == shared
    assert [d["digest"] for d in here.referrers("pulled/tool", index.digest)] == [signature.digest]
    # Through the same services as a push: listed, only the selected tag, charged to the quota.
    assert artifact_tags(server, "pulled/tool") == ["v1"]
    repositories = {r["name"] for r in api(server, "GET", "/projects/pulled/repositories").json()}
    assert repositories == {"pulled/tool"}
    summary = api(server, "GET", "/projects/pulled/summary").json()
    assert summary["quota"]["used"]["storage"] >= len(shared)
