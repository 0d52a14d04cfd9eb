"""Replication end to end: this registry (started as `make serve` starts it, its job engine and
event bus included) and a CNCF distribution 2.8 peer with Basic auth, driven only through Harbor's
/api/v2.0/registries and /replication API.

- push-based: a signed multi-arch index goes to distribution, only the repositories the name
  filter selects, under the rewritten namespace, byte-exact, the signature findable there;
- pull-based: an index pushed to distribution comes back into a new local project, byte-exact,
  the second run copying nothing;
- event-based: a fresh push reaches distribution by itself within seconds, and with
  `replicate_deletion` an artifact delete removes it there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from chalicelib.adapters.registry.client import RegistryClient

from .peers import Distribution
from .replication_support import (
    SIGNATURE,
    api,
    client,
    created_id,
    local,
    project,
    push_image,
    run,
    seed_multiarch,
    task_logs,
    wait,
)
from .support import RegistryServer, sha256

pytestmark = pytest.mark.e2e

PEER_USER, PEER_PASSWORD = "mirror", "Mirror-Pass-1"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    dist = Distribution(tmp_path_factory.mktemp("dist-peer"), auth=f"{PEER_USER}:{PEER_PASSWORD}").start()
    yield dist
    dist.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry of its own: it must be allowed to reach the loopback peer (egress policy), and
    its Tasks' time budget is tiny, so each Lambda Task stops after its first write and every copy
    here is a chain of resumed Tasks (as a copy longer than 15 minutes is on AWS)."""
    base = tmp_path_factory.mktemp("replication-server")
    started = RegistryServer(base / "data", base / "server.log", REGISTRY_EGRESS_ALLOW_NETWORKS="127.0.0.0/8",
                             REGISTRY_REPLICATION_TASK_BUDGET_SECONDS="0.001").start()  # fmt: skip
    yield started
    started.stop()


@pytest.fixture(scope="module")
def remote_id(server: RegistryServer, peer: Distribution) -> int:
    body = {"name": "dist", "type": "docker-registry", "url": peer.url, "insecure": False,
            "credential": {"type": "basic", "access_key": PEER_USER, "access_secret": PEER_PASSWORD}}  # fmt: skip
    return created_id(api(server, "POST", "/registries", body))


def remote(peer: Distribution) -> RegistryClient:
    return client(peer.url, (PEER_USER, PEER_PASSWORD))


def test_push_based_copies_a_signed_multiarch_index_with_filters_and_namespace_rewriting(
    server: RegistryServer, peer: Distribution, remote_id: int
) -> None:
    for name in ("team", "other"):
        project(server, name)
    src = local(server)
    index, signature, shared = seed_multiarch(src, "team/web/app")
    seed_multiarch(src, "other/app")  # not selected by the name filter
    policy = {"name": "to-dist", "dest_registry": {"id": remote_id}, "dest_namespace": "mirror",
              "dest_namespace_replace_count": 1, "filters": [{"type": "name", "value": "team/**"}],
              "trigger": {"type": "manual"}, "enabled": True, "copy_by_chunk": True}  # fmt: skip
    policy_id = created_id(api(server, "POST", "/replication/policies", policy))

    done = run(server, policy_id)
    logs = task_logs(server, done["id"])
    assert done["status"] == "Succeed", (done, logs)
    # Resumed many times (one write per Task), yet every blob and manifest crossed once.
    assert logs.count("continued by the next") >= 5, logs
    assert logs.count(f"copied blob {sha256(shared)}") == 1
    tasks = api(server, "GET", f"/replication/executions/{done['id']}/tasks").json()
    assert [(t["src_resource"], t["dst_resource"]) for t in tasks] == [("team/web/app:[v1]", "mirror/web/app:[v1]")]

    dst = remote(peer)
    pulled = dst.pull_manifest("mirror/web/app", "v1")
    assert pulled.digest == index.digest and pulled.data == index.data  # byte-exact, same digest
    for child in index.children():
        assert dst.head_manifest("mirror/web/app", child["digest"]) is not None
    assert dst.read_blob("mirror/web/app", sha256(shared)) == shared
    found = dst.referrers("mirror/web/app", index.digest)  # distribution 2.8: the fallback tag
    assert [(d["digest"], d.get("artifactType")) for d in found] == [(signature.digest, SIGNATURE)]
    assert "other/app" not in set(dst.catalog()) and "mirror/app" not in set(dst.catalog())

    again = run(server, policy_id)  # everything is there: the second run copies nothing
    assert again["status"] == "Succeed"
    assert "already names" in task_logs(server, again["id"])
    assert "copied blob" not in task_logs(server, again["id"])


def test_pull_based_copies_from_distribution_into_a_new_project(
    server: RegistryServer, peer: Distribution, remote_id: int
) -> None:
    upstream = remote(peer)
    index, signature, _ = seed_multiarch(upstream, "vendor/tool")
    policy = {"name": "from-dist", "src_registry": {"id": remote_id}, "dest_namespace": "pulled",
              "dest_namespace_replace_count": 1, "filters": [{"type": "name", "value": "vendor/*"},
                                                             {"type": "tag", "value": "v*"}],
              "trigger": {"type": "manual"}, "enabled": True}  # fmt: skip
    policy_id = created_id(api(server, "POST", "/replication/policies", policy))
    done = run(server, policy_id)
    assert done["status"] == "Succeed", (done, task_logs(server, done["id"]))

    here = local(server)
    assert here.pull_manifest("pulled/tool", "v1").data == index.data
    assert [d["digest"] for d in here.referrers("pulled/tool", index.digest)] == [signature.digest]
    # Through the same services as a push: the artifact is listed, the project's quota counts it.
    artifacts = api(server, "GET", "/projects/pulled/repositories/tool/artifacts?with_tag=true").json()
    assert [t["name"] for a in artifacts for t in a.get("tags") or []] == ["v1"]
    summary = api(server, "GET", "/projects/pulled/summary").json()
    assert summary["quota"]["used"]["storage"] > 0


def test_event_based_copies_a_fresh_push_and_replicates_its_deletion(
    server: RegistryServer, peer: Distribution, remote_id: int
) -> None:
    project(server, "live")
    policy = {"name": "live", "dest_registry": {"id": remote_id}, "dest_namespace": "",
              "filters": [{"type": "name", "value": "live/**"}], "trigger": {"type": "event_based"},
              "replicate_deletion": True, "enabled": True}  # fmt: skip
    api(server, "POST", "/replication/policies", policy)
    pushed = push_image(local(server), "live/svc", "v7", b"fresh layer" * 1000)
    dst = remote(peer)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and dst.head_manifest("live/svc", "v7") is None:
        time.sleep(0.2)
    found = dst.head_manifest("live/svc", "v7")
    assert found is not None and found.digest == pushed.digest, "the push did not reach the peer within 30 s"

    api(server, "DELETE", f"/projects/live/repositories/{quote('svc', safe='')}/artifacts/{pushed.digest}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and dst.head_manifest("live/svc", pushed.digest) is not None:
        time.sleep(0.2)
    assert dst.head_manifest("live/svc", pushed.digest) is None, "the delete did not reach the peer within 30 s"
    executions = api(server, "GET", "/replication/executions?trigger=event_based").json()
    ended = [wait(server, e["id"]) for e in executions]  # the copy, then the deletion
    assert len(ended) == 2 and all(e["status"] == "Succeed" for e in ended), ended
