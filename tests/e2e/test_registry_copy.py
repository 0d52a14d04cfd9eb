"""This registry (started as `make serve` starts it) as a `harbor` peer, and a copy of a multi-arch
index with a signature from distribution 2.8 to it, made of the client's pieces the way a
replication task will make it: children before the index, blobs skipped when the target has them,
mounted when another repository there has them, large layers in chunks, referrers with their
subject."""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from chalicelib.adapters.egress import EgressPolicy, EgressSession
from chalicelib.adapters.registry.base import HEALTHY, UNHEALTHY, Endpoint, RegistryAdapter
from chalicelib.adapters.registry.catalog import create_adapter
from chalicelib.adapters.registry.client import Manifest, RegistryClient
from chalicelib.adapters.registry.errors import RemoteError

from .peers import Distribution
from .replication_support import LOOPBACK, SIGNATURE, Sleeps, client, put, seed_multiarch, session
from .support import ADMIN, OCI_INDEX, RegistryServer, sha256

pytestmark = pytest.mark.e2e

CHUNKED_ABOVE = 4 * 1024 * 1024


def harbor(registry: RegistryServer, password: str | None = None) -> RegistryAdapter:
    endpoint = Endpoint("harbor", registry.url, ADMIN, password or registry.password)
    return create_adapter(endpoint, session(), sleep=Sleeps())


class Copier:
    """The copy of one artifact, counted: what a replication task does with the client."""

    def __init__(self, src: RegistryClient, src_repo: str, dst: RegistryClient, dst_repo: str) -> None:
        self.src, self.src_repo, self.dst, self.dst_repo = src, src_repo, dst, dst_repo
        self.counts: Counter[str] = Counter()
        self.order: list[str] = []
        self.mount_from: str | None = None

    def artifact(self, tag: str) -> Manifest:
        top = self.manifest(tag)
        self.dst.push_manifest(self.dst_repo, tag, top)
        for referrer in self.src.referrers(self.src_repo, top.digest):
            self.manifest(referrer["digest"])
        return top

    def manifest(self, reference: str) -> Manifest:
        manifest = self.src.pull_manifest(self.src_repo, reference)
        if self.dst.head_manifest(self.dst_repo, manifest.digest) is not None:
            self.counts["manifest present"] += 1
            return manifest
        for child in manifest.children():  # children before the index that names them
            self.manifest(child["digest"])
        for blob in manifest.blobs():
            self.blob(blob["digest"], int(blob["size"]))
        self.dst.push_manifest(self.dst_repo, manifest.digest, manifest)
        self.order.append(manifest.digest)
        return manifest

    def blob(self, digest: str, size: int) -> None:
        if self.dst.blob_exists(self.dst_repo, digest) is not None:
            self.counts["blob present"] += 1
        elif self.mount_from and self.dst.mount_blob(self.dst_repo, digest, self.mount_from):
            self.counts["blob mounted"] += 1
        elif size > CHUNKED_ABOVE:
            stream = iter(self.src.pull_blob(self.src_repo, digest, size))
            buffer = bytearray()

            def read(n: int) -> bytes:
                while len(buffer) < n:
                    chunk = next(stream, b"")
                    if not chunk:
                        break
                    buffer.extend(chunk)
                out = bytes(buffer[:n])
                del buffer[:n]
                return out

            self.dst.push_blob_chunked(self.dst_repo, digest, size, read, 2 * 1024 * 1024)
            assert next(stream, None) is None  # the source stream ended, verified
            self.counts["blob chunked"] += 1
        else:
            self.dst.push_blob(self.dst_repo, digest, size, self.src.pull_blob(self.src_repo, digest, size))
            self.counts["blob copied"] += 1


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-source")).start()
    yield peer
    peer.stop()


def test_this_registry_as_a_harbor_peer(registry: RegistryServer) -> None:
    adapter = harbor(registry)
    assert adapter.health() == HEALTHY
    assert harbor(registry, "wrong-password").health() == UNHEALTHY
    assert adapter.info().wire()["supported_copy_by_chunk"] is True
    adapter.prepare_for_push(["peer-a/app", "peer-a/other", "peer-b/app"])
    adapter.prepare_for_push(["peer-a/app"])  # the project exists now: nothing to do
    projects = {p["name"] for p in registry.http("GET", "/api/v2.0/projects?page_size=100").json()}
    assert {"peer-a", "peer-b"} <= projects
    for tag in ("t1", "t2", "t3"):
        put(adapter.client, "peer-a/app", tag, OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    assert sorted(adapter.client.tags("peer-a/app", page_size=1)) == ["t1", "t2", "t3"]  # Link-paged
    assert "peer-a/app" in set(adapter.repositories())
    adapter.delete_tag("peer-a/app", "t3")
    assert sorted(adapter.tags("peer-a/app")) == ["t1", "t2"]


def test_harbor_label_filter_uses_the_artifact_api(registry: RegistryServer) -> None:
    adapter = harbor(registry)
    adapter.prepare_for_push(["labelled/app"])
    for n, tag in enumerate(("gold-1", "plain-1")):
        image = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": {"n": str(n)}}
        put(adapter.client, "labelled/app", tag, OCI_INDEX, image)
    gold = ("replication-gold",)
    created = registry.http("POST", "/api/v2.0/labels", json={"name": gold[0], "scope": "g"})
    assert created.status_code == 201, created.text
    label_id = int(created.headers["Location"].rsplit("/", 1)[1])
    attach = registry.http("POST", "/api/v2.0/projects/labelled/repositories/app/artifacts/gold-1/labels",
                           json={"id": label_id})  # fmt: skip
    assert attach.status_code == 200, attach.text
    assert list(adapter.artifacts("labelled/app", labels=gold)) == [("labelled/app", ["gold-1"])]
    assert list(adapter.artifacts("labelled/**", "plain-*", labels=gold)) == []
    assert sorted(adapter.artifacts("labelled/app"))[0][0] == "labelled/app"  # no label: the plain listing
    # A registry without labels, as Harbor treats one: `matches` selects nothing, `excludes` everything.
    plain = create_adapter(Endpoint("docker-registry", registry.url, ADMIN, registry.password), session())
    assert list(plain.artifacts("labelled/app", labels=gold)) == []
    kept = plain.artifacts("labelled/app", labels=gold, label_decoration="excludes")
    assert [(repository, sorted(tags)) for repository, tags in kept] == [("labelled/app", ["gold-1", "plain-1"])]


def test_copy_a_signed_multiarch_index_from_distribution(source: Distribution, registry: RegistryServer) -> None:
    src = client(source.url)
    index, signature, shared = seed_multiarch(src, "upstream/app")
    target = harbor(registry)
    target.prepare_for_push(["replica/app", "replica/again"])
    dst = target.client

    first = Copier(src, "upstream/app", dst, "replica/app")
    first.artifact("v1")
    children = [child["digest"] for child in index.children()]
    assert first.order == [*children, index.digest, signature.digest]  # children first, then index, then its referrer
    # The shared 6 MiB layer crossed once (in chunks); its second use, and the signature's second
    # empty blob, were found present.
    assert first.counts == Counter({"blob copied": 5, "blob chunked": 1, "blob present": 2})

    pulled = registry.get_manifest("replica/app", "v1")
    assert pulled.status_code == 200 and pulled.content == index.data
    assert pulled.headers["Docker-Content-Digest"] == index.digest
    blob = registry.http("GET", f"/v2/replica/app/blobs/{sha256(shared)}")
    assert blob.status_code == 200 and blob.content == shared
    found = dst.referrers("replica/app", index.digest)
    assert [(d["digest"], d.get("artifactType")) for d in found] == [(signature.digest, SIGNATURE)]

    again = Copier(src, "upstream/app", dst, "replica/app")
    again.artifact("v1")  # a second run copies nothing
    assert again.order == [] and again.counts == Counter({"manifest present": 2})

    mounted = Copier(src, "upstream/app", dst, "replica/again")
    mounted.mount_from = "replica/app"
    mounted.artifact("v1")
    assert mounted.counts["blob copied"] == mounted.counts["blob chunked"] == 0
    assert mounted.counts["blob mounted"] == 6
    assert registry.get_manifest("replica/again", "v1").content == index.data


class LosingSession(EgressSession):
    """The real session, except that the answers to the first `lose` PATCHes are lost after the
    registry got (and kept) their bytes, as when a connection drops at the worst moment."""

    def __init__(self, lose: int) -> None:
        super().__init__(EgressPolicy(LOOPBACK), 10)
        self.lose = lose
        self.methods: list[str] = []

    def request(self, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
        self.methods.append(method)
        response = super().request(method, url, headers, body)
        if method == "PATCH" and self.lose > 0:
            self.lose -= 1
            response.drain_conn()
            raise urllib3.exceptions.ProtocolError("connection lost before the answer")
        return response


def test_a_chunk_whose_answer_was_lost_is_not_sent_twice(registry: RegistryServer) -> None:
    harbor(registry).prepare_for_push(["resume/app"])
    data = os.urandom(3 * 1024 * 1024)
    losing = LosingSession(lose=1)
    endpoint = Endpoint("harbor", registry.url, ADMIN, registry.password)
    c = create_adapter(endpoint, losing, sleep=Sleeps()).client
    assert c.push_blob_chunked("resume/app", sha256(data), len(data), io.BytesIO(data).read, 1024 * 1024) == 3
    # The lost PATCH, its repeat refused with 416, one status GET, then the rest of the blob.
    upload = losing.methods[losing.methods.index("PATCH") :]
    assert upload == ["PATCH", "PATCH", "GET", "PATCH", "PATCH", "PUT"]
    blob = registry.http("GET", f"/v2/resume/app/blobs/{sha256(data)}")
    assert blob.status_code == 200 and blob.content == data


def test_a_proxy_cache_project_is_not_a_push_target(registry: RegistryServer) -> None:
    """Harbor's rule: only the upstream fills a proxy-cache project. This registry has no proxy-cache
    projects yet, so the refusal is checked on the answer a Harbor peer gives for one."""
    adapter = harbor(registry)
    adapter.prepare_for_push(["plain-project/app"])
    project = registry.http("GET", "/api/v2.0/projects/plain-project").json()
    assert int(project.get("registry_id") or 0) == 0
    with pytest.raises(RemoteError):
        harbor(registry, "wrong-password").prepare_for_push(["another/app"])
