"""The remote-registry client and adapters against local peers: CNCF distribution 2.8 (plain, Basic
auth, token auth through a token service of our own), and a Docker-Hub-shaped front that rate
limits, counts requests and injects faults. Every call goes through the egress policy, allowed to
reach 127.0.0.0/8 here (the last tests show it refuses without that setting)."""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from chalicelib.adapters.egress import EgressPolicy
from chalicelib.adapters.registry.auth import StaticCredentials
from chalicelib.adapters.registry.base import HEALTHY, UNHEALTHY, Endpoint
from chalicelib.adapters.registry.catalog import create_adapter, session_for
from chalicelib.adapters.registry.client import ClientOptions, Manifest, RegistryClient
from chalicelib.adapters.registry.errors import (
    RemoteDigestMismatch,
    RemoteError,
    RemoteNotFound,
    RemoteRateLimited,
    RemoteUnauthorized,
    RemoteUnreachable,
)
from chalicelib.adapters.registry.transport import RetryPolicy
from chalicelib.errors import EgressRefused

from .peers import Distribution, HubDouble, TokenServer
from .replication_support import LOOPBACK, Sleeps, client, push_image, session
from .support import OCI_MANIFEST, free_port, sha256

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alice", "wonderland"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-plain")).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-basic"), auth=f"{USER}:{PASSWORD}").start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token"), USER, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_dist(tmp_path_factory: pytest.TempPathFactory, tokens: TokenServer) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-token"), token=tokens).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """distribution 2.8 on https with a self-signed certificate."""
    state = tmp_path_factory.mktemp("dist-tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (state / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (state / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    peer = Distribution(state, tls=(state / "cert.pem", state / "key.pem")).start()
    yield peer.url
    peer.stop()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubDouble]:
    """A fresh Hub double (budgets and counters) in front of its own distribution."""
    upstream = Distribution(tmp_path / "hub-upstream").start()
    double = HubDouble(upstream.port).start()
    yield double
    double.stop()
    upstream.stop()


# --- content: uploads, downloads, manifests, paging ---


def test_monolithic_push_then_verified_pull_on_distribution(plain: Distribution) -> None:
    c = client(plain.url)
    c.ping()
    layer = b"layer-bytes" * 5000
    manifest = push_image(c, "mono/app", "v1", layer)
    assert c.blob_exists("mono/app", sha256(layer)) == len(layer)
    assert c.blob_exists("mono/app", sha256(b"absent")) is None
    assert c.read_blob("mono/app", sha256(layer)) == layer
    pulled = c.pull_manifest("mono/app", "v1")
    assert (pulled.digest, pulled.data, pulled.media_type) == (manifest.digest, manifest.data, OCI_MANIFEST)
    head = c.head_manifest("mono/app", "v1")
    assert head is not None and head.digest == manifest.digest
    assert c.head_manifest("mono/app", "nope") is None
    with pytest.raises(RemoteNotFound):
        c.pull_manifest("mono/app", "nope")
    with pytest.raises(RemoteNotFound):
        c.read_blob("mono/app", sha256(b"absent"))


def test_chunked_upload_lands_the_exact_bytes(plain: Distribution) -> None:
    data = bytes(range(256)) * 9000  # 2.3 MB in 700 KB chunks
    c = client(plain.url)
    patches = c.push_blob_chunked("chunked/app", sha256(data), len(data), io.BytesIO(data).read, 700_000)
    assert patches == 4
    got = requests.get(f"{plain.url}/v2/chunked/app/blobs/{sha256(data)}", timeout=10)
    assert got.status_code == 200 and got.content == data


def test_chunk_size_follows_the_registry_minimum_and_maximum(hub: HubDouble) -> None:
    data = b"x" * 1_000_000
    c = client(hub.url)
    hub.chunk_headers = {"OCI-Chunk-Min-Length": "400000"}
    assert c.push_blob_chunked("limits/min", sha256(data), len(data), io.BytesIO(data).read, 100_000) == 3
    hub.chunk_headers = {"OCI-Chunk-Max-Length": "250000"}
    assert c.push_blob_chunked("limits/max", sha256(data), len(data), io.BytesIO(data).read, 600_000) == 4
    assert c.read_blob("limits/max", sha256(data)) == data


def test_a_speed_limit_paces_blob_downloads(plain: Distribution) -> None:
    layer = os.urandom(3 * 1024 * 1024)
    push_image(client(plain.url), "speed/app", "v1", layer)
    now = [1000.0]
    sleeps = Sleeps()

    def sleep(seconds: float) -> None:  # time passes only while the client sleeps
        sleeps(seconds)
        now[0] += seconds

    limited = RegistryClient(
        plain.url,
        StaticCredentials(),
        session(),
        options=ClientOptions(speed_kb=1024),
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert limited.read_blob("speed/app", sha256(layer)) == layer
    assert sum(sleeps) == pytest.approx(3.0)  # 3 MiB at 1024 KB/s


def test_a_lost_chunk_answer_on_distribution_is_a_typed_error(hub: HubDouble) -> None:
    """distribution 2.8 signs the offset into each upload Location, so a PATCH repeated at the old
    Location is refused (404 BLOB_UPLOAD_INVALID) and its status cannot be asked: the client
    reports it, and the blob never appears (the caller starts the blob again). This registry
    resumes instead (test_registry_copy)."""
    data = os.urandom(900_000)
    c = client(hub.url)
    hub.swallow_patches = 1  # the first PATCH lands upstream, its answer is lost
    with pytest.raises(RemoteError) as refused:
        c.push_blob_chunked("resume/app", sha256(data), len(data), io.BytesIO(data).read, 300_000)
    assert "BLOB_UPLOAD_INVALID" in refused.value.message
    assert c.blob_exists("resume/app", sha256(data)) is None
    c.push_blob_chunked("resume/app", sha256(data), len(data), io.BytesIO(data).read, 300_000)
    assert c.read_blob("resume/app", sha256(data)) == data


def test_a_blob_redirected_to_storage_gets_no_registry_credentials(hub: HubDouble) -> None:
    hub.basic = (USER, PASSWORD)
    c = client(hub.url, (USER, PASSWORD))
    layer = b"stored elsewhere" * 1000
    push_image(c, "redirect/app", "v1", layer)
    hub.redirect_blobs = True
    assert c.read_blob("redirect/app", sha256(layer)) == layer
    assert hub.counts[f"GET /_storage/v2/redirect/app/blobs/{sha256(layer)}"] == 1
    assert hub.storage_auth == [None]  # the registry's credentials stayed with the registry


def test_cross_repository_mount(plain: Distribution) -> None:
    c = client(plain.url)
    layer = b"mount-me" * 1000
    push_image(c, "mount/source", "v1", layer)
    assert c.mount_blob("mount/target", sha256(layer), "mount/source") is True
    assert c.blob_exists("mount/target", sha256(layer)) == len(layer)
    # Nothing to mount: distribution opens an upload instead (202); the client says so.
    assert c.mount_blob("mount/target", sha256(b"nowhere"), "mount/source") is False


def test_catalog_and_tags_follow_link_paging(hub: HubDouble) -> None:
    c = client(hub.url)
    for n in range(5):
        push_image(c, f"paged/r{n}", "v1", b"same layer")
    for tag in ("a", "b", "c", "d", "e"):
        push_image(c, "paged/r0", tag, b"same layer")
    assert sorted(c.catalog(page_size=2)) == [f"paged/r{n}" for n in range(5)]
    assert hub.counts["GET /v2/_catalog"] == 3
    assert sorted(c.tags("paged/r0", page_size=2)) == ["a", "b", "c", "d", "e", "v1"]
    assert hub.counts["GET /v2/paged/r0/tags/list"] == 1  # distribution 2.8 ignores `n` on tags (one page)


def test_artifacts_follow_harbors_name_and_tag_filters(hub: HubDouble) -> None:
    c = client(hub.url)
    for repo, tags in {"team/api": ["1.0", "1.1", "dev"], "team/web": ["2.0"], "other/db": ["1.0"]}.items():
        for tag in tags:
            push_image(c, repo, tag, b"filtered layer")
    adapter = create_adapter(Endpoint("docker-registry", hub.url), session(), sleep=Sleeps())

    def found(*filters: str) -> dict[str, list[str]]:
        return {repo: sorted(tags) for repo, tags in adapter.artifacts(*filters)}

    assert found("team/**", "1.*") == {"team/api": ["1.0", "1.1"]}
    assert found("**", "dev", "excludes") == {"other/db": ["1.0"], "team/api": ["1.0", "1.1"], "team/web": ["2.0"]}
    assert hub.counts["GET /v2/_catalog"] == 2
    # Literal names are not matched against a listing (registries that refuse `_catalog`), and a
    # named repository the registry does not have is skipped.
    assert found("{team/web,team/gone}") == {"team/web": ["2.0"]}
    assert hub.counts["GET /v2/_catalog"] == 2


def test_manifest_is_head_before_get_and_get_is_by_digest(hub: HubDouble) -> None:
    c = client(hub.url)
    manifest = push_image(c, "library/alpine", "3", b"alpine layer")
    hub.counts.clear()
    assert c.pull_manifest("library/alpine", "3").digest == manifest.digest
    assert hub.counts == {
        "HEAD /v2/library/alpine/manifests/3": 1,
        f"GET /v2/library/alpine/manifests/{manifest.digest}": 1,
    }
    assert hub.pulls == 1  # HEAD is free on the Hub


def test_referrers_fall_back_to_the_tag_schema_on_distribution(plain: Distribution) -> None:
    c = client(plain.url)
    subject = push_image(c, "refs/app", "v1", b"subject layer")
    empty = b"{}"
    c.push_blob("refs/app", sha256(empty), 2, empty)
    signature_type = "application/vnd.dev.cosign.artifact.sig.v1+json"
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": signature_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.data)},
    }
    data = json.dumps(doc).encode()
    c.push_manifest("refs/app", sha256(data), Manifest(OCI_MANIFEST, sha256(data), data))
    # distribution 2.8 has no referrers API: the client kept the fallback index up to date.
    assert "sha256-" + subject.digest.split(":")[1] in list(c.tags("refs/app"))
    found = c.referrers("refs/app", subject.digest)
    assert [(d["digest"], d["artifactType"]) for d in found] == [(sha256(data), signature_type)]
    assert c.referrers("refs/app", subject.digest, artifact_type="application/other") == []
    assert c.referrers("refs/app", sha256(b"no subject")) == []


# --- content that does not match its digest ---


def test_corrupted_blob_bytes_are_refused(hub: HubDouble) -> None:
    c = client(hub.url)
    layer = b"trust nobody" * 1000
    push_image(c, "bad/app", "v1", layer)
    hub.corrupt_blobs = True
    with pytest.raises(RemoteDigestMismatch):
        c.read_blob("bad/app", sha256(layer))
    stream = c.pull_blob("bad/app", sha256(layer))
    received = bytearray()
    with pytest.raises(RemoteDigestMismatch):
        for chunk in stream:
            received += chunk
    assert len(received) == len(layer)  # every byte arrived, and still the stream ended in an error
    with pytest.raises(RemoteDigestMismatch):  # a size the caller knows is checked first
        c.read_blob("bad/app", sha256(layer), size=len(layer) + 1)


def test_a_corrupted_stream_piped_into_an_upload_fails_typed_and_lands_nothing(
    hub: HubDouble, plain: Distribution
) -> None:
    c = client(hub.url)
    layer = os.urandom(2 * 1024 * 1024)
    push_image(c, "bad/pipe", "v1", layer)
    hub.corrupt_blobs = True
    target = client(plain.url)
    with pytest.raises(RemoteDigestMismatch):
        target.push_blob("piped/app", sha256(layer), len(layer), c.pull_blob("bad/pipe", sha256(layer)))
    assert target.blob_exists("piped/app", sha256(layer)) is None


# --- auth ---


def test_basic_auth_challenge(basic: Distribution) -> None:
    with pytest.raises(RemoteUnauthorized):
        client(basic.url).ping()
    with pytest.raises(RemoteUnauthorized):
        client(basic.url, (USER, "wrong")).ping()
    c = client(basic.url, (USER, PASSWORD))
    c.ping()
    layer = b"basic layer"
    push_image(c, "basic/app", "v1", layer)
    assert c.read_blob("basic/app", sha256(layer)) == layer
    assert list(c.catalog()) == ["basic/app"]


def test_token_auth_flow_and_token_cache_per_scope(tokens: TokenServer, token_dist: Distribution) -> None:
    writer = client(token_dist.url, (USER, PASSWORD))
    layer = b"token layer" * 100
    manifest = push_image(writer, "tok/app", "v1", layer)
    asked = writer.token_requests
    push_image(writer, "tok/app", "v2", layer)  # same scope: the cached token serves every call
    assert writer.token_requests == asked
    push_image(writer, "tok/other", "v1", layer)  # a new repository: its pull and its push scope
    assert writer.token_requests == asked + 2
    assert writer.mount_blob("tok/third", sha256(layer), "tok/app") is True
    assert tokens.requests[-1]["scopes"] == ["repository:tok/app:pull", "repository:tok/third:pull,push"]
    assert {r["service"] for r in tokens.requests} == {TokenServer.service}
    assert all(r["user"] == USER for r in tokens.requests)

    reader = client(token_dist.url)  # anonymous: the token service grants pull
    assert reader.pull_manifest("tok/app", "v1").digest == manifest.digest
    assert tokens.requests[-1]["user"] is None
    with pytest.raises(RemoteUnauthorized):
        reader.push_blob("tok/app", sha256(b"nope"), 4, b"nope")
    with pytest.raises(RemoteUnauthorized):
        client(token_dist.url, (USER, "wrong")).pull_manifest("tok/app", "v1")


def test_credentials_are_never_logged_or_shown(
    tokens: TokenServer, token_dist: Distribution, basic: Distribution, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = PASSWORD
    endpoint = Endpoint("docker-registry", basic.url, USER, secret)
    assert secret not in repr(endpoint) and secret not in repr(endpoint.basic())
    errors = []
    for url in (token_dist.url, basic.url):
        c = client(url, (USER, secret))
        push_image(c, "secret/app", "v1", b"x")
        try:
            client(url, (USER, secret + "x")).ping()
        except RemoteUnauthorized as exc:
            errors.append(exc.message)
    assert len(errors) == 2
    text = caplog.text + " ".join(errors)
    assert secret not in text and "Authorization" not in text


# --- 429, 5xx, unreachable peers, the egress policy ---


def test_429_with_a_long_retry_after_is_a_typed_error_at_once(hub: HubDouble) -> None:
    sleeps = Sleeps()
    c = client(hub.url, sleep=sleeps)
    push_image(c, "library/busybox", "1", b"busybox")
    hub.limit = hub.pulls + 1
    c.get_manifest("library/busybox", "1")
    with pytest.raises(RemoteRateLimited) as limited:
        c.get_manifest("library/busybox", "1")
    assert limited.value.retry_after == 3600 and limited.value.http_status == 429
    assert sleeps == []  # a wait longer than the cap is not waited
    assert c.head_manifest("library/busybox", "1") is not None  # HEAD still answers


def test_429_with_a_short_retry_after_is_waited_out_then_reported(hub: HubDouble) -> None:
    push_image(client(hub.url), "library/busybox", "1", b"busybox")
    hub.limit, hub.retry_after = hub.pulls, "2"
    sleeps = Sleeps()
    c = client(hub.url, sleep=sleeps, retry=RetryPolicy(max_retry_after_seconds=5, rate_limit_waits=2))
    with pytest.raises(RemoteRateLimited) as limited:
        c.get_manifest("library/busybox", "1")
    assert sleeps == [2.0, 2.0] and limited.value.retry_after == 2

    def budget_renewed(seconds: float) -> None:  # the window passes while the client waits
        sleeps.append(seconds)
        hub.limit += 1

    sleeps.clear()
    renewing = client(hub.url, sleep=budget_renewed, retry=RetryPolicy(max_retry_after_seconds=5))
    assert renewing.get_manifest("library/busybox", "1").media_type == OCI_MANIFEST
    assert sleeps == [2.0]


def test_429_without_retry_after_reports_the_default(hub: HubDouble) -> None:
    push_image(client(hub.url), "library/busybox", "1", b"busybox")
    hub.limit, hub.retry_after = hub.pulls, None
    with pytest.raises(RemoteRateLimited) as limited:
        client(hub.url).get_manifest("library/busybox", "1")
    assert limited.value.retry_after == RetryPolicy().default_retry_after_seconds


def test_5xx_is_retried_with_backoff(hub: HubDouble) -> None:
    sleeps = Sleeps()
    c = client(hub.url, sleep=sleeps)
    push_image(c, "retry/app", "v1", b"retry")
    hub.fail_next = 2
    assert c.head_manifest("retry/app", "v1") is not None
    assert sleeps == [0.5, 1.0]
    hub.fail_next = 100
    with pytest.raises(RemoteUnreachable):
        c.head_manifest("retry/app", "v1")
    assert sleeps == [0.5, 1.0, 0.5, 1.0, 2.0]


def test_an_unreachable_peer_is_a_typed_error_and_unhealthy() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sleeps = Sleeps()
    with pytest.raises(RemoteUnreachable) as unreachable:
        client(url, sleep=sleeps).ping()
    assert url in unreachable.value.message and unreachable.value.http_status == 400
    assert len(sleeps) == RetryPolicy().attempts - 1
    adapter = create_adapter(Endpoint("docker-registry", url), session(), sleep=Sleeps())
    assert adapter.health() == UNHEALTHY


def test_tls_is_verified_unless_the_registry_is_marked_insecure(tls_peer: str) -> None:
    secure, insecure = Endpoint("docker-registry", tls_peer), Endpoint("docker-registry", tls_peer, insecure=True)
    policy = EgressPolicy(LOOPBACK)
    with pytest.raises(RemoteUnreachable):
        create_adapter(secure, session_for(secure, policy, 5), sleep=Sleeps()).client.ping()
    create_adapter(insecure, session_for(insecure, policy, 5), sleep=Sleeps()).client.ping()


def test_egress_refuses_a_private_address_without_the_allow_setting(hub: HubDouble) -> None:
    refused = RegistryClient(hub.url, StaticCredentials(), session(allow=False), sleep=Sleeps())
    with pytest.raises(EgressRefused):
        refused.ping()
    with pytest.raises(EgressRefused):
        refused.pull_manifest("library/alpine", "3")
    assert sum(hub.counts.values()) == 0  # not one request reached the peer


# --- adapters on these peers ---


def test_docker_registry_adapter_health(basic: Distribution, plain: Distribution) -> None:
    def health(url: str, user: str = "", password: str = "") -> str:
        return create_adapter(Endpoint("docker-registry", url, user, password), session(), sleep=Sleeps()).health()

    assert health(plain.url) == HEALTHY
    assert health(basic.url) == HEALTHY  # 401 without credentials: alive (Harbor's rule)
    assert health(basic.url, USER, PASSWORD) == HEALTHY
    assert health(basic.url, USER, "wrong") == UNHEALTHY


def test_docker_hub_adapter_uses_the_hub_api_and_library_names(hub: HubDouble) -> None:
    seed = client(hub.url)
    push_image(seed, "library/alpine", "3.19", b"alpine")
    push_image(seed, "library/alpine", "3.20", b"alpine")
    hub.repositories = {"library": ["alpine"], "team": [f"svc{n:03}" for n in range(150)]}
    endpoint = Endpoint(
        "docker-hub", "https://hub.docker.com", hub.user, hub.password,
        settings={"hub_url": hub.url, "registry_url": hub.url},
    )  # fmt: skip
    adapter = create_adapter(endpoint, session(), sleep=Sleeps())
    assert adapter.remote_repository("alpine") == "library/alpine"
    assert sorted(adapter.tags("alpine")) == ["3.19", "3.20"]
    names = list(adapter.repositories())
    assert len(names) == 151 and "library/alpine" in names and "team/svc149" in names
    assert hub.counts["GET /v2/repositories/team/"] == 2  # the Hub's own `next` paging
    assert hub.counts["POST /v2/auth/token"] == 1  # one login serves every Hub API call
    adapter.prepare_for_push(["neworg/app", "team/svc001"])
    assert hub.orgs == {"neworg"}
    adapter.delete_tag("alpine", "3.19")
    assert hub.deleted_tags == ["library/alpine:3.19"]
    assert adapter.client.pull_manifest("library/alpine", "3.20").media_type == OCI_MANIFEST
    assert adapter.health() == HEALTHY

    wrong = Endpoint("docker-hub", "https://hub.docker.com", hub.user, "nope", settings=dict(endpoint.settings))
    with pytest.raises(RemoteUnauthorized):
        list(create_adapter(wrong, session(), sleep=Sleeps()).repositories())
