"""Pulls through a proxy-cache project over HTTP on moto, against an in-process upstream
(`tests/upstream_double.py`): byte-exact content, one upstream GET per blob, cached content with the
upstream stopped, Harbor's 429 rules, bytes that fail their digest never landing, pushes refused,
and bad input answered with 4xx."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import OCI_MANIFEST
from tests.upstream_double import OCI_INDEX, Upstream, sha256

API = "/api/v2.0"
PROJECT = "cache"


class Proxy:
    def __init__(self, registry: LiveRegistry, upstream: Upstream, registry_id: int) -> None:
        self.registry = registry
        self.upstream = upstream
        self.registry_id = registry_id

    def manifest(self, repo: str, reference: str, method: str = "GET", **kwargs: Any) -> Any:
        accept = ", ".join((OCI_MANIFEST, OCI_INDEX))
        return self.registry.request(method, f"/v2/{PROJECT}/{repo}/manifests/{reference}",
                                     headers={"Accept": accept}, **kwargs)  # fmt: skip

    def blob(self, repo: str, digest: str) -> bytes:
        response = self.registry.get(f"/v2/{PROJECT}/{repo}/blobs/{digest}")
        assert response.status_code == 307, (response.status_code, response.get_data()[:500])
        return requests.get(response.headers["Location"], timeout=30).content

    def pull(self, repo: str, reference: str) -> dict[str, bytes]:
        """A client's pull of an image: its manifest, then each blob; everything it received."""
        response = self.manifest(repo, reference)
        assert response.status_code == 200, (response.status_code, response.get_data()[:500])
        body = response.get_data()
        assert response.headers["Docker-Content-Digest"] == sha256(body)
        received = {sha256(body): body}
        document = response.get_json(force=True)
        for descriptor in [document["config"], *document["layers"]]:
            received[descriptor["digest"]] = self.blob(repo, descriptor["digest"])
        return received


def _create_registry(registry: LiveRegistry, upstream: Upstream, registry_type: str = "docker-registry") -> int:
    credential = {"type": "basic", "access_key": upstream.user, "access_secret": upstream.password}
    body = {"name": f"up-{registry_type}", "type": registry_type, "url": upstream.url, "credential": credential}
    response = registry.post(f"{API}/registries", json=body)
    assert response.status_code == 201, response.get_data()[:500]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _create_project(registry: LiveRegistry, registry_id: int, name: str = PROJECT, **metadata: str) -> None:
    response = registry.post(f"{API}/projects", json={"project_name": name, "registry_id": registry_id,
                                                      "metadata": {"public": "false", **metadata}})  # fmt: skip
    assert response.status_code == 201, response.get_data()[:500]


def _configure(registry: LiveRegistry, tmp_path: Path) -> None:
    key_file = tmp_path / "secret-key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    registry.configure(egress_allow_networks="127.0.0.1/32", local_secret_key_file=key_file)


@pytest.fixture(params=["basic", "token"])
def proxy(request: pytest.FixtureRequest, registry: LiveRegistry, tmp_path: Path) -> Iterator[Proxy]:
    _configure(registry, tmp_path)
    upstream = Upstream(auth=request.param)
    try:
        registry_id = _create_registry(registry, upstream)
        _create_project(registry, registry_id)
        yield Proxy(registry, upstream, registry_id)
    finally:
        upstream.stop()


@pytest.fixture
def basic_proxy(registry: LiveRegistry, tmp_path: Path) -> Iterator[Proxy]:
    _configure(registry, tmp_path)
    upstream = Upstream()
    try:
        registry_id = _create_registry(registry, upstream)
        _create_project(registry, registry_id)
        yield Proxy(registry, upstream, registry_id)
    finally:
        upstream.stop()


def test_pull_through_is_byte_exact_and_fetches_each_blob_once(proxy: Proxy) -> None:
    upstream = proxy.upstream
    digest, body = upstream.add_image("team/app", "v1", [os.urandom(3000), os.urandom(20_000)])
    first = proxy.pull("team/app", "v1")
    assert first[digest] == body
    for blob_digest in first:
        if blob_digest != digest:
            assert first[blob_digest] == upstream.blobs[blob_digest]
    second = proxy.pull("team/app", "v1")
    assert second == first
    assert set(upstream.blob_gets) == set(first) - {digest}
    assert all(count == 1 for count in upstream.blob_gets.values()), upstream.blob_gets
    assert upstream.manifest_gets == 1  # the second pull: a HEAD of the tag, the cached copy served
    # Stored as a local artifact, tag and all, counted in the project's quota.
    artifacts = proxy.registry.get(f"{API}/projects/{PROJECT}/repositories/team%252Fapp/artifacts").get_json()
    assert [a["digest"] for a in artifacts] == [digest]
    assert [t["name"] for t in artifacts[0]["tags"]] == ["v1"]
    used = proxy.registry.get(f"{API}/projects/{PROJECT}/summary").get_json()["quota"]["used"]["storage"]
    assert used >= sum(len(b) for b in first.values())


def test_cached_content_is_served_with_the_upstream_stopped(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    digest, _ = upstream.add_image("team/app", "v1", [os.urandom(5000)])
    first = basic_proxy.pull("team/app", "v1")
    upstream.stop()
    assert basic_proxy.pull("team/app", "v1") == first
    by_digest = basic_proxy.manifest("team/app", digest)
    assert by_digest.status_code == 200
    # Nothing cached: 404, never a 500.
    missing = basic_proxy.manifest("team/app", "v2")
    assert missing.status_code == 404, missing.get_data()
    assert missing.get_json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    cold = basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(b'never')}")
    assert cold.status_code == 404


def test_a_moved_tag_is_fetched_again(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    upstream.add_image("team/app", "v1", [os.urandom(100)])
    basic_proxy.pull("team/app", "v1")
    moved, body = upstream.add_image("team/app", "v1", [os.urandom(100)])
    response = basic_proxy.manifest("team/app", "v1")
    assert response.get_data() == body
    assert response.headers["Docker-Content-Digest"] == moved
    assert upstream.manifest_gets == 2


def test_rate_limits_pass_through_or_serve_the_cache(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    upstream.add_image("team/app", "v1", [os.urandom(100)])
    cold_digest, _ = upstream.add_image("team/app", "v2", [os.urandom(100)])
    cached = basic_proxy.pull("team/app", "v1")
    upstream.rate_limited = upstream.limit_heads = True
    # Cached: served from the cache.
    assert basic_proxy.pull("team/app", "v1") == cached
    # Not cached: 429 with Retry-After, never 404 or 500.
    for reference in ("v2", cold_digest):
        response = basic_proxy.manifest("team/app", reference)
        assert response.status_code == 429, response.get_data()
        assert response.get_json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert response.headers["Retry-After"]
    upstream.limit_heads = False  # HEAD free, GET limited (Docker Hub): still 429 for the GET
    assert basic_proxy.manifest("team/app", "v2").status_code == 429
    blob = next(d for d in upstream.blobs if d not in cached)
    response = basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{blob}")
    assert response.status_code == 429, response.get_data()


def test_bytes_that_fail_the_digest_never_land(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    small = os.urandom(1000)
    large = os.urandom(9 * 1024 * 1024)  # past the in-memory size: the streamed path
    upstream.add_image("team/app", "v1", [small, large])
    upstream.corrupt = {sha256(small), sha256(large)}
    for data in (small, large):
        response = basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(data)}")
        assert response.status_code == 404, (response.status_code, response.get_data()[:300])
        assert not [k for k in basic_proxy.registry.object_keys("blobs/") if sha256(data).split(":")[1] in k]
    upstream.corrupt = set()
    for data in (small, large):
        assert basic_proxy.blob("team/app", sha256(data)) == data


def test_concurrent_pulls_of_a_cold_blob_share_one_fetch(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    layer = os.urandom(50_000)
    upstream.add_image("team/app", "v1", [layer])
    gate = upstream.hold[sha256(layer)] = threading.Event()
    results: list[bytes] = []

    def pull() -> None:
        results.append(basic_proxy.blob("team/app", sha256(layer)))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while upstream.blob_gets[sha256(layer)] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # let the other pulls reach the registry and queue behind the first
    gate.set()
    for thread in threads:
        thread.join(30)
    assert results == [layer] * 3
    assert upstream.blob_gets[sha256(layer)] == 1


def test_an_index_is_served_whole_and_cached_trimmed(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    amd = upstream.add_image("multi", None, [os.urandom(100)])
    arm = upstream.add_image("multi", None, [os.urandom(100)])
    index_digest, index_body = upstream.add_index("multi", "latest", [amd, arm])
    response = basic_proxy.manifest("multi", "latest")
    assert response.get_data() == index_body
    assert response.headers["Content-Type"] == OCI_INDEX
    basic_proxy.pull("multi", amd[0])  # the client picks its platform: only that child is fetched
    upstream.stop()
    cached = basic_proxy.manifest("multi", "latest")
    assert cached.status_code == 200, cached.get_data()
    children = [m["digest"] for m in cached.get_json(force=True)["manifests"]]
    assert children == [amd[0]]  # trimmed to what the cache holds
    assert basic_proxy.manifest("multi", arm[0]).status_code == 404
    assert index_digest not in [a["digest"] for a in basic_proxy.registry.get(
        f"{API}/projects/{PROJECT}/repositories/multi/artifacts").get_json()]  # fmt: skip


def test_head_by_tag_then_get_by_digest_keeps_the_tag(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    digest, body = upstream.add_image("team/app", "v1", [os.urandom(100)])
    head = basic_proxy.manifest("team/app", "v1", method="HEAD")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert upstream.manifest_gets == 0  # a HEAD costs no GET upstream
    basic_proxy.pull("team/app", digest)
    upstream.stop()
    assert basic_proxy.manifest("team/app", "v1").get_data() == body


def test_pushes_are_refused_as_harbor_refuses_them(basic_proxy: Proxy) -> None:
    registry = basic_proxy.registry
    for response in (
        registry.post(f"/v2/{PROJECT}/team/app/blobs/uploads/"),
        registry.put(f"/v2/{PROJECT}/team/app/manifests/v1", data=b"{}", headers={"Content-Type": OCI_MANIFEST}),
    ):
        assert response.status_code == 403, response.get_data()
        error = response.get_json()["errors"][0]
        assert error["code"] == "DENIED"
        assert error["message"] == f"can not push artifact to a proxy project: {PROJECT}"


def test_repository_filter_and_local_on_not_found(registry: LiveRegistry, tmp_path: Path) -> None:
    _configure(registry, tmp_path)
    upstream = Upstream()
    try:
        registry_id = _create_registry(registry, upstream)
        _create_project(registry, registry_id, proxy_cache_filter_pattern="team/**",
                        proxy_cache_local_on_not_found="true")  # fmt: skip
        proxy = Proxy(registry, upstream, registry_id)
        digest, _ = upstream.add_image("other/app", "v1", [b"x" * 10])
        response = proxy.manifest("other/app", "v1")
        assert response.status_code == 404
        blob = registry.get(f"/v2/{PROJECT}/other/app/blobs/{digest}")
        assert blob.status_code == 404
        upstream.add_image("team/app", "v1", [b"y" * 10])
        cached = proxy.pull("team/app", "v1")
        del upstream.tags["team/app", "v1"]  # removed upstream: the cached copy is still served
        assert proxy.pull("team/app", "v1") == cached
    finally:
        upstream.stop()


def test_docker_hub_single_names_move_under_library(registry: LiveRegistry, tmp_path: Path) -> None:
    _configure(registry, tmp_path)
    upstream = Upstream()
    try:
        registry.configure(remote_registry_overrides=f'{{"docker-hub": {{"registry_url": "{upstream.url}", '
                                                     f'"hub_url": "{upstream.url}"}}}}')  # fmt: skip
        registry_id = _create_registry(registry, upstream, "docker-hub")
        _create_project(registry, registry_id)
        proxy = Proxy(registry, upstream, registry_id)
        digest, body = upstream.add_image("library/alpine", "3", [b"z" * 10])
        moved = proxy.manifest("alpine", "3")
        assert moved.status_code == 301
        assert moved.headers["Location"] == f"/v2/{PROJECT}/library/alpine/manifests/3"
        blob = registry.get(f"/v2/{PROJECT}/alpine/blobs/{digest}")
        assert (blob.status_code, blob.headers["Location"]) == (301, f"/v2/{PROJECT}/library/alpine/blobs/{digest}")
        assert proxy.manifest("library/alpine", "3").get_data() == body
    finally:
        upstream.stop()


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        (f"/v2/{PROJECT}/team/app/manifests/bad%20tag", {404}),
        (f"/v2/{PROJECT}/team/app/manifests/sha256:zz", {404}),
        (f"/v2/{PROJECT}/team/app/manifests/{'a' * 300}", {404}),
        (f"/v2/{PROJECT}/team/app/blobs/sha256:zz", {400}),
        (f"/v2/{PROJECT}/team/app/blobs/md5:{'a' * 32}", {400}),
        (f"/v2/{PROJECT}/Team/App/manifests/v1", {400}),
        (f"/v2/{PROJECT}/team//app/manifests/v1", {400}),
        (f"/v2/{PROJECT}/team/app/blobs/{'sha256:' + 'a' * 64}", {404}),
    ],
)
def test_bad_input_is_a_4xx(basic_proxy: Proxy, path: str, statuses: set[int]) -> None:
    for method in ("GET", "HEAD"):
        response = basic_proxy.registry.request(method, path)
        assert response.status_code in statuses, (method, path, response.status_code, response.get_data()[:300])


def test_an_unhealthy_upstream_is_not_asked(basic_proxy: Proxy) -> None:
    from chalicelib.stores.registries import RegistryStore

    upstream = basic_proxy.upstream
    upstream.add_image("team/app", "v1", [b"q" * 10])
    RegistryStore().set_status(basic_proxy.registry_id, "unhealthy")
    response = basic_proxy.manifest("team/app", "v1")
    assert response.status_code == 404
    assert sum(upstream.requests.values()) == sum(
        v for (m, p), v in upstream.requests.items() if p in ("/v2/", "/token")
    )


def test_proxy_metadata_keys_are_harbors(basic_proxy: Proxy) -> None:
    registry = basic_proxy.registry
    good = {"proxy_speed_kb": "100", "max_upstream_conn": "2", "proxy_cache_filter_kind": "regex",
            "proxy_cache_filter_pattern": "team/.*", "proxy_cache_local_on_not_found": "false"}  # fmt: skip
    response = registry.put(f"{API}/projects/{PROJECT}", json={"metadata": good})
    assert response.status_code == 200, response.get_data()
    bad = (("proxy_speed_kb", "fast"), ("proxy_cache_filter_kind", "glob"),
           ("proxy_cache_local_on_not_found", "maybe"), ("proxy_cache_filter_pattern", "x" * 2000))  # fmt: skip
    for key, value in bad:
        response = registry.put(f"{API}/projects/{PROJECT}", json={"metadata": {key: value}})
        assert response.status_code == 400, (key, response.get_data())


# The local runner (`make serve`): a cold blob streams to the client while it lands.


@pytest.fixture
def streaming(registry: LiveRegistry, tmp_path: Path) -> Iterator[tuple[Proxy, Path]]:
    from werkzeug.test import Client

    from app import app
    from chalicelib.local.wsgi import ChaliceWSGI
    from chalicelib.stores.files import FileObjectStore

    _configure(registry, tmp_path)
    root = tmp_path / "objects"
    registry.configure(local_object_dir=root, part_size_bytes=5 * 1024 * 1024)
    upstream = Upstream()
    try:
        registry_id = _create_registry(registry, upstream)
        _create_project(registry, registry_id)
        local = LiveRegistry(Client(ChaliceWSGI(app, files=FileObjectStore(root), inline_downloads=True)),
                             registry._monkeypatch)  # fmt: skip
        yield Proxy(local, upstream, registry_id), root
    finally:
        upstream.stop()


def _landed(root: Path, digest: str) -> bool:
    algorithm, hexpart = digest.split(":")
    return (root / "blobs" / algorithm / hexpart).exists()


def test_a_cold_blob_streams_to_every_waiting_client_while_it_lands(streaming: tuple[Proxy, Path]) -> None:
    proxy, root = streaming
    upstream = proxy.upstream
    small, large = os.urandom(2000), os.urandom(12 * 1024 * 1024)
    upstream.add_image("team/app", "v1", [small, large])
    gate = upstream.hold[sha256(large)] = threading.Event()
    results: list[tuple[int, bytes, str]] = []

    def pull() -> None:
        response = proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(large)}")
        results.append((response.status_code, response.get_data(), response.headers.get("Docker-Content-Digest", "")))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    gate.set()
    for thread in threads:
        thread.join(60)
    assert results == [(200, large, sha256(large))] * 3
    assert upstream.blob_gets[sha256(large)] == 1
    assert _landed(root, sha256(large))
    # Landed: later pulls are served from the store, the upstream is not asked again.
    upstream.stop()
    again = proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(large)}")
    assert (again.status_code, again.get_data()) == (200, large)
    assert upstream.blob_gets[sha256(large)] == 1


def test_a_streamed_blob_that_fails_its_digest_is_cut_short_and_never_lands(streaming: tuple[Proxy, Path]) -> None:
    from chalicelib.stores.spool import SpoolBroken

    proxy, root = streaming
    upstream = proxy.upstream
    large = os.urandom(9 * 1024 * 1024)
    upstream.add_image("team/app", "v1", [large])
    upstream.corrupt = {sha256(large)}
    response = proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(large)}")
    assert response.status_code == 200  # the headers went out before the last byte was checked
    with pytest.raises(SpoolBroken):
        response.get_data()  # the body ends with an error, never as a complete blob
    assert not _landed(root, sha256(large))
    upstream.corrupt = set()
    fixed = proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(large)}")
    assert fixed.get_data() == large


def test_a_proxy_project_gets_harbors_default_retention_policy(basic_proxy: Proxy) -> None:
    registry = basic_proxy.registry
    project = registry.get(f"{API}/projects/{PROJECT}").get_json()
    policy_id = int(project["metadata"]["retention_id"])
    policy = registry.get(f"{API}/retentions/{policy_id}").get_json()
    assert policy["scope"] == {"level": "project", "ref": project["project_id"]}
    assert policy["trigger"]["settings"]["cron"] == "0 0 0 * * *"
    [rule] = policy["rules"]
    assert (rule["template"], rule["params"]) == ("nDaysSinceLastPull", {"nDaysSinceLastPull": 7})
    assert rule["tag_selectors"][0]["pattern"] == "**"
    assert rule["scope_selectors"]["repository"][0]["pattern"] == "**"
    plain = registry.post(f"{API}/projects", json={"project_name": "plain"})
    assert plain.status_code == 201
    assert "retention_id" not in registry.get(f"{API}/projects/plain").get_json().get("metadata", {})


def test_tags_list_merges_the_upstream_and_the_cache(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    upstream.add_image("team/app", "v1", [b"t" * 10])
    upstream.add_image("team/app", "v2", [b"u" * 10])
    basic_proxy.pull("team/app", "v1")
    del upstream.tags["team/app", "v1"]
    listed = basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/tags/list")
    assert listed.get_json() == {"name": f"{PROJECT}/team/app", "tags": ["v1", "v2"]}
    paged = basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/tags/list", query_string={"n": "1"})
    assert paged.get_json()["tags"] == ["v1"]
    assert "Link" in paged.headers
    upstream.stop()
    assert basic_proxy.registry.get(f"/v2/{PROJECT}/team/app/tags/list").get_json()["tags"] == ["v1"]
    assert basic_proxy.registry.get(f"/v2/{PROJECT}/never/seen/tags/list").status_code == 404


def test_over_quota_the_pull_is_served_but_not_kept(streaming: tuple[Proxy, Path]) -> None:
    proxy, root = streaming
    upstream = proxy.upstream
    layer = os.urandom(10 * 1024 * 1024)
    upstream.add_image("team/app", "v1", [layer])
    quotas = proxy.registry.get(f"{API}/quotas").get_json()
    mine = next(q for q in quotas if q["ref"]["name"] == PROJECT)
    assert proxy.registry.put(f"{API}/quotas/{mine['id']}", json={"hard": {"storage": 1000}}).status_code == 200
    served = proxy.registry.get(f"/v2/{PROJECT}/team/app/blobs/{sha256(layer)}")
    assert (served.status_code, served.get_data()) == (200, layer)
    assert not _landed(root, sha256(layer))
    assert upstream.blob_gets[sha256(layer)] == 1
