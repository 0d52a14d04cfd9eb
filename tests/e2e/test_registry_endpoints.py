"""The registries API of a server started as `make serve` starts it, against local peers: CNCF
distribution 2.8 with Basic auth (right and wrong password), plain, on https with its own CA, a port
nothing listens on, and the health status the local scheduler thread refreshes.

The server here lets outbound calls reach 127.0.0.0/8 (the peers' network); the shared server of the
e2e session does not, and the last test shows it refuses a loopback registry."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .peers import Distribution
from .support import RegistryServer, free_port

pytestmark = pytest.mark.e2e

API = "/api/v2.0"
USER, PASSWORD = "alice", "wonderland"
HEALTH_SECONDS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("registries-server")
    started = RegistryServer(
        root / "data", root / "server.log", REGISTRY_EGRESS_ALLOW_NETWORKS="127.0.0.0/8",
        REGISTRY_REMOTE_REGISTRY_HEALTH_SECONDS=str(HEALTH_SECONDS), REGISTRY_SCHEDULER_INTERVAL_SECONDS="1",
    ).start()  # fmt: skip
    yield started
    started.stop()


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-basic"), auth=f"{USER}:{PASSWORD}").start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """distribution 2.8 on https with a self-signed certificate: (url, the certificate as PEM)."""
    state = tmp_path_factory.mktemp("dist-tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (state / "cert.pem").write_bytes(pem)
    (state / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    peer = Distribution(state, tls=(state / "cert.pem", state / "key.pem")).start()
    yield peer.url, pem.decode()
    peer.stop()


def api(server: RegistryServer, method: str, path: str, body: Any = None) -> requests.Response:
    return server.http(method, f"{API}{path}", json=body)


def created_id(response: requests.Response) -> int:
    assert response.status_code == 201, (response.status_code, response.text)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def error_of(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert errors[0]["code"] == {400: "BAD_REQUEST", 404: "NOT_FOUND", 409: "CONFLICT"}[status]
    return str(errors[0]["message"])


def registry_body(name: str, url: str, password: str | None = PASSWORD, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": "docker-registry", "url": url, **extra}
    if password is not None:
        body["credential"] = {"type": "basic", "access_key": USER, "access_secret": password}
    return body


def test_basic_auth_peer_right_and_wrong_password(server: RegistryServer, basic: Distribution) -> None:
    wrong = api(server, "POST", "/registries", registry_body("basic-wrong", basic.url, "not-the-password"))
    assert "unhealthy" in error_of(wrong, 400)
    registry_id = created_id(api(server, "POST", "/registries", registry_body("basic", basic.url)))
    document = api(server, "GET", f"/registries/{registry_id}").json()
    assert document["status"] == "healthy"
    assert document["credential"] == {"type": "basic", "access_key": USER, "access_secret": "*****"}
    assert PASSWORD not in api(server, "GET", "/registries").text
    assert api(server, "POST", "/registries/ping", {"id": registry_id}).status_code == 200
    bad = api(server, "POST", "/registries/ping", {"id": registry_id, "access_secret": "not-the-password"})
    assert "unhealthy" in error_of(bad, 400)
    body = {"type": "docker-registry", "url": basic.url, "access_key": USER, "access_secret": PASSWORD}
    assert api(server, "POST", "/registries/ping", body).status_code == 200
    # No credentials at all: distribution's 401 still shows a live registry (Harbor's rule).
    assert api(server, "POST", "/registries/ping", {"type": "docker-registry", "url": basic.url}).status_code == 200
    info = api(server, "GET", f"/registries/{registry_id}/info").json()
    assert info["supported_triggers"] == ["manual", "scheduled"]


def test_unreachable_port_is_a_400_never_a_500(server: RegistryServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert "unhealthy" in error_of(api(server, "POST", "/registries", registry_body("gone", url)), 400)
    ping = api(server, "POST", "/registries/ping", {"type": "docker-registry", "url": url})
    assert "unhealthy" in error_of(ping, 400)
    assert "unhealthy" in error_of(api(server, "POST", "/registries/ping", {"type": "harbor", "url": url}), 400)


def test_https_peer_needs_its_ca_or_insecure(server: RegistryServer, tls_peer: tuple[str, str]) -> None:
    url, pem = tls_peer
    refused = api(server, "POST", "/registries", registry_body("tls", url, password=None))
    assert "unhealthy" in error_of(refused, 400)  # the certificate is checked against the system's CAs
    registry_id = created_id(api(server, "POST", "/registries", registry_body("tls", url, None, ca_certificate=pem)))
    assert api(server, "GET", f"/registries/{registry_id}").json()["ca_certificate"] == pem.strip()
    insecure = created_id(api(server, "POST", "/registries", registry_body("tls-insecure", url, None, insecure=True)))
    assert api(server, "GET", f"/registries/{insecure}").json()["insecure"] is True


def test_the_scheduler_thread_marks_a_stopped_peer_unhealthy(
    server: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    peer = Distribution(tmp_path_factory.mktemp("dist-stopping")).start()
    try:
        registry_id = created_id(api(server, "POST", "/registries", registry_body("stopping", peer.url, None)))
    finally:
        peer.stop()
    deadline = time.monotonic() + 10 * HEALTH_SECONDS
    status = "healthy"
    while status == "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = api(server, "GET", f"/registries/{registry_id}").json()["status"]
    assert status == "unhealthy"
    listed = api(server, "GET", "/registries?q=status%3Dunhealthy").json()
    assert registry_id in [r["id"] for r in listed]


def test_registries_and_their_secrets_survive_a_restart(server: RegistryServer, basic: Distribution) -> None:
    registry_id = created_id(api(server, "POST", "/registries", registry_body("durable", basic.url)))
    project = api(server, "POST", "/projects", {"project_name": "durable-cache", "registry_id": registry_id})
    assert project.status_code == 201, project.text
    server.stop()
    server.start()
    assert api(server, "POST", "/registries/ping", {"id": registry_id}).status_code == 200
    assert api(server, "GET", "/projects/durable-cache").json()["registry_id"] == registry_id
    assert "proxy cache project" in error_of(api(server, "DELETE", f"/registries/{registry_id}"), 409)
    assert api(server, "DELETE", "/projects/durable-cache").status_code == 200
    assert api(server, "DELETE", f"/registries/{registry_id}").status_code == 200


def test_the_default_egress_policy_refuses_a_loopback_registry(registry: RegistryServer, basic: Distribution) -> None:
    refused = registry.http("POST", f"{API}/registries", json=registry_body("loopback", basic.url))
    assert "not allowed" in error_of(refused, 400)
