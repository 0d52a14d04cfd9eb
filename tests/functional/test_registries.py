"""/api/v2.0/registries, /registries/ping, /registries/{id}/info, /replication/adapters|adapterinfos
over HTTP on moto, against a small distribution-shaped remote (`/v2/` with Basic auth) on 127.0.0.1.

The remote listens on loopback, which the egress policy refuses unless a network allows it: the
`remote` fixture allows 127.0.0.1/32 for the test, and one test checks the refusal without it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.functional.conftest import LiveRegistry

API = "/api/v2.0"
USER, PASSWORD = "mirror", "Remote-Pass-1"
SECRET_MARK = "Remote-Pass-1"


class Remote:
    """A distribution-shaped registry: `/v2/` answers 200 to the right Basic credentials, 401 with a
    Basic challenge otherwise. `calls` records (path, Authorization) for each request."""

    def __init__(self, user: str = USER, password: str = PASSWORD) -> None:
        self.calls: list[tuple[str, str]] = []
        self.registry = True  # False: every path is a 404 (a web server, not a registry)
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization") or ""
                remote.calls.append((self.path, auth))
                if self.path.rstrip("/") != "/v2" or not remote.registry:
                    self._answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')
                elif auth != remote.expected:
                    self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                                 {"WWW-Authenticate": 'Basic realm="remote"'})  # fmt: skip
                else:
                    self._answer(200, b"{}")

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def remote(registry: LiveRegistry, tmp_path: Path) -> Iterator[Remote]:
    """The upstream, reachable; secrets kept as `make serve` keeps them (encrypted table rows)."""
    key_file = tmp_path / "secret-key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    registry.configure(egress_allow_networks="127.0.0.1/32", local_secret_key_file=key_file)
    server = Remote()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body_of(remote: Remote, name: str = "mirror", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "type": "docker-registry",
        "url": remote.url + "/",
        "insecure": False,
        "description": "a mirror",
        "credential": {"type": "basic", "access_key": USER, "access_secret": PASSWORD},
    }
    body.update(overrides)
    return body


def create(registry: LiveRegistry, body: dict[str, Any]) -> int:
    response = registry.post(f"{API}/registries", json=body)
    assert response.status_code == 201, response.get_data()[:500]
    location = response.headers["Location"]
    assert location.startswith(f"{API}/registries/")
    return int(location.rsplit("/", 1)[1])


def harbor_error(response: TestResponse, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    document = response.get_json()
    assert isinstance(document, dict) and set(document) == {"errors"}, document
    entry = document["errors"][0]
    assert entry["code"] == code, entry
    assert isinstance(entry["message"], str) and entry["message"]
    return str(entry["message"])


def make_user(registry: LiveRegistry, name: str = "dev", password: str = "Dev-Pass-12") -> tuple[str, str]:
    response = registry.post(f"{API}/users", json={"username": name, "password": password,
                                                   "email": f"{name}@example.com", "realname": name})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    return name, password


# Creating and reading.


def test_create_get_list_and_the_secret_is_never_answered(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    got = registry.get(f"{API}/registries/{registry_id}")
    assert got.status_code == 200
    document = got.get_json()
    assert document["id"] == registry_id
    assert document["name"] == "mirror"
    assert document["url"] == remote.url  # normalised: the trailing slash goes
    assert document["type"] == "docker-registry"
    assert document["status"] == "healthy"
    assert document["description"] == "a mirror"
    assert "insecure" not in document  # Harbor omits a false `insecure`
    assert document["credential"] == {"type": "basic", "access_key": USER, "access_secret": "*****"}
    # The create checked the remote with the credentials.
    assert any(auth == remote.expected for _, auth in remote.calls)
    listed = registry.get(f"{API}/registries")
    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "1"
    assert [r["id"] for r in listed.get_json()] == [registry_id]
    for response in (got, listed):
        assert SECRET_MARK not in response.get_data(as_text=True)


def test_the_secret_is_kept_apart_from_the_record(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    items = registry.dynamodb.scan(TableName=registry.table)["Items"]
    record = [i for i in items if i["pk"]["S"] == f"REGISTRY#{registry_id}"]
    assert len(record) == 1
    assert SECRET_MARK not in json.dumps(record[0])
    assert record[0]["secret_ref"]["S"].startswith("local:")
    # The secret's own row holds it encrypted: no item of the table carries the value.
    assert [i["pk"]["S"] for i in items if i["pk"]["S"].startswith("SECRET#")] == [
        "SECRET#" + record[0]["secret_ref"]["S"].removeprefix("local:")
    ]
    assert not [i for i in items if SECRET_MARK in json.dumps(i, default=str)]


def test_without_credentials_the_answer_has_an_empty_credential(registry: LiveRegistry, remote: Remote) -> None:
    # Without credentials a 401 from /v2/ still shows a live registry (Harbor's rule).
    registry_id = create(registry, body_of(remote, credential=None, insecure=True))
    document = registry.get(f"{API}/registries/{registry_id}").get_json()
    assert document["credential"] == {}
    assert document["insecure"] is True


def test_list_filters_sorts_and_pages(registry: LiveRegistry, remote: Remote) -> None:
    ids = [create(registry, body_of(remote, name=name)) for name in ("alpha", "beta", "gamma")]
    page = registry.get(f"{API}/registries", query_string={"page": "1", "page_size": "2"})
    assert page.headers["X-Total-Count"] == "3"
    assert [r["id"] for r in page.get_json()] == ids[:2]
    assert 'rel="next"' in page.headers["Link"]
    fuzzy = registry.get(f"{API}/registries", query_string={"q": "name=~amm"})
    assert [r["name"] for r in fuzzy.get_json()] == ["gamma"]
    exact = registry.get(f"{API}/registries", query_string={"q": "type=docker-registry", "sort": "-name"})
    assert [r["name"] for r in exact.get_json()] == ["gamma", "beta", "alpha"]
    deprecated = registry.get(f"{API}/registries", query_string={"name": "et"})
    assert [r["name"] for r in deprecated.get_json()] == ["beta"]
    harbor_error(registry.get(f"{API}/registries", query_string={"q": "secret=x"}), 400, "BAD_REQUEST")


# Bad input on create.


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"name": ""}, "name cannot be empty"),
        ({"name": "n" * 65}, "max length of name is 64"),
        ({"url": "ftp://example.com"}, "scheme"),
        ({"url": ""}, "URL"),
        ({"url": "http://"}, "host"),
        ({"url": "http://exa mple.com"}, "URL"),
        ({"url": "http://user:pw@example.com"}, "credentials"),
        ({"url": "http://[::1"}, "URL"),
        ({"type": "no-such-type"}, "invalid registry type"),
        ({"type": ""}, "invalid registry type"),
        ({"credential": {"type": "kerberos", "access_key": USER, "access_secret": PASSWORD}}, "credential type"),
        ({"insecure": "true"}, "invalid request body"),
        ({"name": 7}, "invalid request body"),
        ({"unknown_field": 1}, "invalid request body"),
        ({"credential": {"type": "basic", "access_key": USER, "access_secret": PASSWORD, "x": 1}}, "invalid request"),
        ({"ca_certificate": "not a certificate"}, "invalid CA certificate"),
        ({"description": "d" * 5000}, "invalid request body"),
    ],
)
def test_create_refuses_bad_input(
    registry: LiveRegistry, remote: Remote, overrides: dict[str, Any], needle: str
) -> None:
    response = registry.post(f"{API}/registries", json=body_of(remote, **overrides))
    harbor_error(response, 400, "BAD_REQUEST")
    assert needle in response.get_data(as_text=True)
    assert registry.get(f"{API}/registries").headers["X-Total-Count"] == "0"


def test_create_refuses_malformed_deep_and_oversized_bodies(registry: LiveRegistry, remote: Remote) -> None:
    for data in (b"{", b"[]", b"null", b'"text"', b"\xff\xfe"):
        response = registry.post(f"{API}/registries", data=data, content_type="application/json")
        assert 400 <= response.status_code < 500, (data, response.status_code)
        assert "errors" in response.get_json()
    deep = "[" * 5000 + "]" * 5000
    response = registry.post(f"{API}/registries", data=f'{{"name": {deep}}}', content_type="application/json")
    harbor_error(response, 400, "BAD_REQUEST")
    huge = json.dumps(body_of(remote, description="x" * (2 * 1024 * 1024)))
    response = registry.post(f"{API}/registries", data=huge, content_type="application/json")
    assert response.status_code in (400, 413), response.status_code
    assert "errors" in response.get_json()


def test_duplicate_name_is_a_conflict(registry: LiveRegistry, remote: Remote) -> None:
    create(registry, body_of(remote))
    harbor_error(registry.post(f"{API}/registries", json=body_of(remote)), 409, "CONFLICT")


def test_wrong_password_unreachable_port_and_refused_address_are_400s(registry: LiveRegistry, remote: Remote) -> None:
    wrong = body_of(remote, credential={"type": "basic", "access_key": USER, "access_secret": "Wrong-Pass-1"})
    assert "unhealthy" in harbor_error(registry.post(f"{API}/registries", json=wrong), 400, "BAD_REQUEST")
    gone = body_of(remote, url=f"http://127.0.0.1:{closed_port()}")
    assert "unhealthy" in harbor_error(registry.post(f"{API}/registries", json=gone), 400, "BAD_REQUEST")
    # A remote that is not a registry at all (its /v2/ is a 404).
    remote.registry = False
    assert "unhealthy" in harbor_error(registry.post(f"{API}/registries", json=body_of(remote)), 400, "BAD_REQUEST")
    remote.registry = True
    registry.configure(egress_allow_networks="")
    message = harbor_error(registry.post(f"{API}/registries", json=body_of(remote)), 400, "BAD_REQUEST")
    assert "not allowed" in message
    metadata = body_of(remote, url="http://169.254.169.254/latest")
    assert "not allowed" in harbor_error(registry.post(f"{API}/registries", json=metadata), 400, "BAD_REQUEST")
    assert registry.get(f"{API}/registries").headers["X-Total-Count"] == "0"


# Reading, updating and deleting by id.


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_missing_and_malformed_ids(registry: LiveRegistry, method: str) -> None:
    body = {"json": {"description": "x"}} if method == "PUT" else {}
    harbor_error(registry.request(method, f"{API}/registries/999", **body), 404, "NOT_FOUND")
    harbor_error(registry.request(method, f"{API}/registries/abc", **body), 400, "BAD_REQUEST")
    harbor_error(registry.request(method, f"{API}/registries/-1", **body), 400, "BAD_REQUEST")
    harbor_error(registry.request(method, f"{API}/registries/{'9' * 30}", **body), 400, "BAD_REQUEST")
    harbor_error(registry.get(f"{API}/registries/999/info"), 404, "NOT_FOUND")


def test_update_renames_and_keeps_the_secret(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    other = create(registry, body_of(remote, name="other"))
    response = registry.put(f"{API}/registries/{registry_id}", json={"name": "renamed", "description": ""})
    assert response.status_code == 200, response.get_data()
    document = registry.get(f"{API}/registries/{registry_id}").get_json()
    assert document["name"] == "renamed"
    assert "description" not in document
    assert document["credential"]["access_secret"] == "*****"
    harbor_error(registry.put(f"{API}/registries/{registry_id}", json={"name": "other"}), 409, "CONFLICT")
    # The old name is free again, the new one taken.
    create(registry, body_of(remote, name="mirror"))
    assert registry.get(f"{API}/registries/{other}").get_json()["name"] == "other"


def test_update_checks_the_registry_again(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    wrong = registry.put(f"{API}/registries/{registry_id}", json={"access_secret": "Wrong-Pass-1"})
    assert "unhealthy" in harbor_error(wrong, 400, "BAD_REQUEST")
    harbor_error(registry.put(f"{API}/registries/{registry_id}", json={"credential_type": "x"}), 400, "BAD_REQUEST")
    harbor_error(registry.put(f"{API}/registries/{registry_id}", json={"url": "gopher://x"}), 400, "BAD_REQUEST")
    harbor_error(registry.put(f"{API}/registries/{registry_id}", json={"insecure": 1}), 400, "BAD_REQUEST")
    harbor_error(registry.put(f"{API}/registries/{registry_id}", json={"type": "harbor"}), 400, "BAD_REQUEST")
    # Nothing changed: the stored secret still works.
    assert registry.post(f"{API}/registries/ping", json={"id": registry_id}).status_code == 200


def test_a_new_url_without_a_new_secret_drops_the_stored_secret(registry: LiveRegistry, remote: Remote) -> None:
    second = Remote()
    try:
        registry_id = create(registry, body_of(remote))
        before = len(second.calls)
        # The stored password is not sent to the new URL: the new registry wants it, so the update fails.
        moved = registry.put(f"{API}/registries/{registry_id}", json={"url": second.url})
        assert "unhealthy" in harbor_error(moved, 400, "BAD_REQUEST")
        assert all(auth != second.expected for _, auth in second.calls[before:])
        # With the secret given again, the move is accepted.
        moved = registry.put(f"{API}/registries/{registry_id}", json={"url": second.url, "access_secret": PASSWORD})
        assert moved.status_code == 200, moved.get_data()
        assert registry.get(f"{API}/registries/{registry_id}").get_json()["url"] == second.url
    finally:
        second.close()


def test_delete_forgets_the_registry_and_its_secret(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    assert registry.delete(f"{API}/registries/{registry_id}").status_code == 200
    harbor_error(registry.get(f"{API}/registries/{registry_id}"), 404, "NOT_FOUND")
    items = registry.dynamodb.scan(TableName=registry.table)["Items"]
    assert not [i for i in items if SECRET_MARK in json.dumps(i)]
    assert not [i for i in items if i["pk"]["S"].startswith(("REGISTRY#", "SECRET#")) or i["pk"]["S"] == "REGISTRIES"]
    harbor_error(registry.delete(f"{API}/registries/{registry_id}"), 404, "NOT_FOUND")


def test_delete_of_a_registry_in_use_is_refused(registry: LiveRegistry, remote: Remote) -> None:
    from chalicelib.wiring import services

    registry_id = create(registry, body_of(remote))
    services().registries.register_in_use(
        lambda rid: (
            f"the registry {rid} is referenced by replication policies, cannot delete it"
            if rid == registry_id
            else None
        )
    )
    message = harbor_error(registry.delete(f"{API}/registries/{registry_id}"), 409, "CONFLICT")
    assert "referenced by replication policies" in message
    assert registry.get(f"{API}/registries/{registry_id}").status_code == 200


# Ping.


def test_ping_by_id_body_and_overrides(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    assert registry.post(f"{API}/registries/ping", json={"id": registry_id}).status_code == 200
    wrong = registry.post(f"{API}/registries/ping", json={"id": registry_id, "access_secret": "Wrong-Pass-1"})
    assert "unhealthy" in harbor_error(wrong, 400, "BAD_REQUEST")
    # By id, the stored URL is what is pinged: a URL in the body cannot take the stored secret elsewhere.
    elsewhere = registry.post(f"{API}/registries/ping", json={"id": registry_id, "url": "http://203.0.113.9"})
    assert elsewhere.status_code == 200
    whole = {"type": "docker-registry", "url": remote.url, "credential_type": "basic", "access_key": USER,
             "access_secret": PASSWORD}  # fmt: skip
    assert registry.post(f"{API}/registries/ping", json=whole).status_code == 200
    bad = registry.post(f"{API}/registries/ping", json={**whole, "access_secret": "Wrong-Pass-1"})
    assert "unhealthy" in harbor_error(bad, 400, "BAD_REQUEST")
    unreachable = registry.post(f"{API}/registries/ping", json={**whole, "url": f"127.0.0.1:{closed_port()}"})
    assert "unhealthy" in harbor_error(unreachable, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "BAD_REQUEST"),
        ({"type": "docker-registry"}, 400, "BAD_REQUEST"),
        ({"url": "http://example.com"}, 400, "BAD_REQUEST"),
        ({"type": "nope", "url": "http://example.com"}, 400, "BAD_REQUEST"),
        ({"type": "docker-registry", "url": "ftp://example.com"}, 400, "BAD_REQUEST"),
        ({"id": 12345}, 404, "NOT_FOUND"),
        ({"id": 0}, 400, "BAD_REQUEST"),
        ({"id": "1"}, 400, "BAD_REQUEST"),
        ({"id": 1, "name": "x"}, 200, ""),
        ({"type": "docker-registry", "url": "http://example.com", "extra": True}, 400, "BAD_REQUEST"),
    ],
)
def test_ping_refuses_bad_input(
    registry: LiveRegistry, remote: Remote, body: dict[str, Any], status: int, code: str
) -> None:
    if status == 200:  # `name` is a RegistryUpdate field the ping body shares: allowed, ignored
        body = {**body, "id": create(registry, body_of(remote))}
        assert registry.post(f"{API}/registries/ping", json=body).status_code == 200
        return
    harbor_error(registry.post(f"{API}/registries/ping", json=body), status, code)


# Info and the adapter catalogue.


def test_info_of_a_registry_and_of_the_local_registry(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    info = registry.get(f"{API}/registries/{registry_id}/info").get_json()
    assert info["type"] == "docker-registry"
    assert info["supported_resource_filters"] == [
        {"type": "name", "style": "input"},
        {"type": "tag", "style": "input"},
        {"type": "resource", "style": "radio", "values": ["image"]},
    ]
    assert info["supported_triggers"] == ["manual", "scheduled"]
    assert info["supported_copy_by_chunk"] is True
    label = registry.post(f"{API}/labels", json={"name": "release", "scope": "g"})
    assert label.status_code == 201
    local = registry.get(f"{API}/registries/0/info").get_json()
    assert local["type"] == "harbor"
    assert {"type": "label", "style": "list", "values": ["release"]} in local["supported_resource_filters"]
    assert local["supported_triggers"] == ["manual", "scheduled", "event_based"]
    assert local["supported_resource_filters"][-1] == {"type": "resource", "style": "radio", "values": ["image"]}


def test_registry_0_is_the_local_registry_as_harbor_answers_it(registry: LiveRegistry) -> None:
    local = registry.get(f"{API}/registries/0")
    assert local.status_code == 200, local.get_data()[:300]
    # Harbor's manager answers id 0 with its "Local" registry; omit-empty drops id 0 and "".
    assert local.get_json() == {
        "id": 0,
        "name": "Local",
        "type": "harbor",
        "url": "http://localhost",
        "credential": {"type": "secret", "access_secret": "*****"},
        "insecure": True,
        "status": "healthy",
        "creation_time": "0001-01-01T00:00:00.000Z",
        "update_time": "0001-01-01T00:00:00.000Z",
    }
    registry.configure(external_url="https://registry.example.com")
    answer = registry.get(f"{API}/registries/0").get_json()
    assert (answer["url"], answer.get("insecure", False)) == ("https://registry.example.com", False)
    assert [r for r in registry.get(f"{API}/registries").get_json() if r.get("id", 0) == 0] == []  # never listed
    # It is not a stored registry: it cannot be changed or deleted, and nothing answers 500.
    harbor_error(registry.put(f"{API}/registries/0", json={"description": "x"}), 404, "NOT_FOUND")
    harbor_error(registry.delete(f"{API}/registries/0"), 404, "NOT_FOUND")
    for bad in ("-0", "0x0", "%200", "0.0", "0" * 30 + "1"):
        response = registry.get(f"{API}/registries/{bad}")
        assert response.status_code in (400, 404), (bad, response.status_code)
    # Harbor's system `registry` read, as every registry: not for a user, not without credentials.
    harbor_error(registry.get(f"{API}/registries/0", auth=make_user(registry)), 403, "FORBIDDEN")
    harbor_error(registry.get(f"{API}/registries/0", auth=None), 401, "UNAUTHORIZED")


def test_adapters_and_adapter_infos(registry: LiveRegistry) -> None:
    types = registry.get(f"{API}/replication/adapters").get_json()
    assert types == sorted(types)
    assert {"docker-registry", "harbor", "docker-hub", "aws-ecr", "github-ghcr", "quay", "gitlab"} <= set(types)
    infos = registry.get(f"{API}/replication/adapterinfos").get_json()
    assert set(infos) == set(types)
    for info in infos.values():
        assert set(info) <= {"endpoint_pattern", "credential_pattern"}
    assert infos["github-ghcr"]["endpoint_pattern"]["endpoints"] == [{"key": "ghcr.io", "value": "https://ghcr.io"}]


# Who may call.

_ROUTES = [
    ("GET", "/registries", None),
    ("POST", "/registries", {"name": "x", "type": "docker-registry", "url": "http://203.0.113.1"}),
    ("POST", "/registries/ping", {"type": "docker-registry", "url": "http://203.0.113.1"}),
    ("GET", "/registries/1", None),
    ("PUT", "/registries/1", {"description": "x"}),
    ("DELETE", "/registries/1", None),
    ("GET", "/registries/1/info", None),
    ("GET", "/replication/adapters", None),
    ("GET", "/replication/adapterinfos", None),
]


def test_only_system_administrators_may_call(registry: LiveRegistry, remote: Remote) -> None:
    create(registry, body_of(remote))
    user = make_user(registry)
    for method, path, body in _ROUTES:
        extra = {"json": body} if body is not None else {}
        harbor_error(registry.request(method, f"{API}{path}", auth=user, **extra), 403, "FORBIDDEN")
        harbor_error(registry.request(method, f"{API}{path}", auth=None, **extra), 401, "UNAUTHORIZED")
        harbor_error(registry.request(method, f"{API}{path}", auth=("admin", "Wrong-1234"), **extra), 401,
                     "UNAUTHORIZED")  # fmt: skip
    # Nothing was changed by the refused calls.
    assert registry.get(f"{API}/registries/1").get_json()["description"] == "a mirror"


def test_a_system_robot_with_registry_permissions_may_call(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    robot = registry.post(f"{API}/robots", json={
        "name": "replicator", "level": "system", "duration": -1,
        "permissions": [{"kind": "system", "namespace": "/", "access": [
            {"resource": "registry", "action": "read"}, {"resource": "registry", "action": "list"}]}],
    })  # fmt: skip
    assert robot.status_code == 201, robot.get_data()
    auth = (robot.get_json()["name"], robot.get_json()["secret"])
    assert registry.get(f"{API}/registries", auth=auth).status_code == 200
    assert registry.get(f"{API}/registries/{registry_id}", auth=auth).status_code == 200
    harbor_error(registry.delete(f"{API}/registries/{registry_id}", auth=auth), 403, "FORBIDDEN")


# Audit.


def test_changes_are_audited(registry: LiveRegistry, remote: Remote) -> None:
    from chalicelib.wiring import services

    registry_id = create(registry, body_of(remote))
    assert registry.put(f"{API}/registries/{registry_id}", json={"description": "changed"}).status_code == 200
    assert registry.delete(f"{API}/registries/{registry_id}").status_code == 200
    assert services().events.drain(30)
    logs = registry.get(f"{API}/audit-logs", query_string={"q": "resource_type=registry"}).get_json()
    assert sorted((log["operation"], log["resource"], log["username"]) for log in logs) == [
        ("create", "mirror", "admin"), ("delete", "mirror", "admin"), ("update", "mirror", "admin"),
    ]  # fmt: skip


# Health on a schedule.


def test_the_scheduled_check_records_a_changed_status(registry: LiveRegistry, remote: Remote) -> None:
    from chalicelib.jobs.entrypoints import HANDLERS

    registry_id = create(registry, body_of(remote))
    assert HANDLERS["job_schedule"]({"check": "registry_health"}) == {"statuses": {str(registry_id): "healthy"}}
    remote.registry = False  # the remote stops answering as a registry
    assert HANDLERS["job_schedule"]({"check": "registry_health"}) == {"statuses": {str(registry_id): "unhealthy"}}
    assert registry.get(f"{API}/registries/{registry_id}").get_json()["status"] == "unhealthy"
    listed = registry.get(f"{API}/registries", query_string={"q": "status=unhealthy"}).get_json()
    assert [r["id"] for r in listed] == [registry_id]
    remote.registry = True
    HANDLERS["job_schedule"]({"check": "registry_health"})
    assert registry.get(f"{API}/registries/{registry_id}").get_json()["status"] == "healthy"


def test_the_local_scheduler_checks_registries_at_their_interval(registry: LiveRegistry, remote: Remote) -> None:
    from chalicelib.local.scheduler import Scheduler
    from chalicelib.wiring import services

    registry_id = create(registry, body_of(remote))
    remote.registry = False
    checks: list[object] = []

    def check() -> None:
        checks.append(services().registries.refresh_health())

    scheduler = Scheduler(lambda: services().jobs, interval=3600, registry_health=check, registry_health_seconds=300)
    scheduler.tick(1000.0)
    assert scheduler._health_thread is not None
    scheduler._health_thread.join(30)
    assert checks == [{str(registry_id): "unhealthy"}]
    scheduler.tick(1200.0)  # not due yet
    assert len(checks) == 1
    scheduler.tick(1300.0)
    scheduler._health_thread.join(30)
    assert len(checks) == 2
    assert registry.get(f"{API}/registries/{registry_id}").get_json()["status"] == "unhealthy"


# Proxy-cache projects.


def test_a_proxy_cache_project_holds_its_registry(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    response = registry.post(f"{API}/projects", json={"project_name": "hub-cache", "registry_id": registry_id,
                                                      "metadata": {"public": "true"}})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    project = registry.get(f"{API}/projects/hub-cache").get_json()
    assert project["registry_id"] == registry_id
    listed = registry.get(f"{API}/projects", query_string={"name": "hub-cache"}).get_json()
    assert [p["registry_id"] for p in listed] == [registry_id]
    assert "registry_id" not in registry.get(f"{API}/projects/library").get_json()  # omitted when 0, as Harbor
    message = harbor_error(registry.delete(f"{API}/registries/{registry_id}"), 409, "CONFLICT")
    assert "proxy cache project" in message
    assert registry.get(f"{API}/registries/{registry_id}").status_code == 200
    assert registry.delete(f"{API}/projects/hub-cache").status_code == 200
    assert registry.delete(f"{API}/registries/{registry_id}").status_code == 200


@pytest.mark.parametrize(
    ("registry_id", "status", "needle"),
    [
        (0, 400, "greater than 0"),
        (999, 400, "not found"),
        (-1, 400, "invalid request body"),
        ("1", 400, "invalid request body"),
    ],
)
def test_proxy_cache_project_refuses_a_bad_registry_id(
    registry: LiveRegistry, registry_id: Any, status: int, needle: str
) -> None:
    response = registry.post(f"{API}/projects", json={"project_name": "cache", "registry_id": registry_id})
    harbor_error(response, status, "BAD_REQUEST")
    assert needle in response.get_data(as_text=True)
    harbor_error(registry.get(f"{API}/projects/cache"), 404, "NOT_FOUND")


def test_only_proxyable_types_and_only_administrators(registry: LiveRegistry, remote: Remote) -> None:
    gitlab = create(registry, body_of(remote, name="lab", type="gitlab"))
    message = harbor_error(registry.post(f"{API}/projects", json={"project_name": "c", "registry_id": gitlab}), 400,
                           "BAD_REQUEST")  # fmt: skip
    assert "unsupported registry type gitlab" in message
    assert registry.delete(f"{API}/registries/{gitlab}").status_code == 200  # no project counted it
    usable = create(registry, body_of(remote))
    user = make_user(registry)
    response = registry.post(f"{API}/projects", json={"project_name": "c", "registry_id": usable}, auth=user)
    harbor_error(response, 403, "FORBIDDEN")
    assert registry.post(f"{API}/projects", json={"project_name": "plain"}, auth=user).status_code == 201
    assert registry.delete(f"{API}/registries/{usable}").status_code == 200


# Secrets Manager (the AWS credential store), on moto.


def test_secrets_manager_keeps_the_secret_and_the_record_its_arn(registry: LiveRegistry, remote: Remote) -> None:
    import boto3

    registry.configure(local_secret_key_file=None, secrets_prefix="stack/")
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    registry_id = create(registry, body_of(remote))
    items = registry.dynamodb.scan(TableName=registry.table)["Items"]
    assert not [i for i in items if SECRET_MARK in json.dumps(i)]
    (record,) = [i for i in items if i["pk"]["S"] == f"REGISTRY#{registry_id}"]
    arn = record["secret_ref"]["S"]
    assert arn.startswith("arn:aws:secretsmanager:") and ":secret:stack/registry/mirror/" in arn
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == PASSWORD
    assert registry.post(f"{API}/registries/ping", json={"id": registry_id}).status_code == 200
    # A wrong new secret is refused before anything is stored; the stored one still works.
    wrong = registry.put(f"{API}/registries/{registry_id}", json={"access_secret": "Wrong-Pass-1"})
    harbor_error(wrong, 400, "BAD_REQUEST")
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == PASSWORD
    # A new secret is a new Secrets Manager secret; the replaced one is deleted.
    assert registry.put(f"{API}/registries/{registry_id}", json={"access_secret": PASSWORD}).status_code == 200
    items = registry.dynamodb.scan(TableName=registry.table)["Items"]
    (record,) = [i for i in items if i["pk"]["S"] == f"REGISTRY#{registry_id}"]
    assert record["secret_ref"]["S"] != arn
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert len([n for n in names if n.startswith("stack/registry/")]) == 1
    assert registry.delete(f"{API}/registries/{registry_id}").status_code == 200
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert not [n for n in names if n.startswith("stack/registry/")]


def test_a_missing_stored_secret_is_a_400_asking_for_it_again(registry: LiveRegistry, remote: Remote) -> None:
    registry_id = create(registry, body_of(remote))
    items = registry.dynamodb.scan(TableName=registry.table)["Items"]
    (secret,) = [i for i in items if i["pk"]["S"].startswith("SECRET#")]
    registry.dynamodb.delete_item(TableName=registry.table, Key={"pk": secret["pk"], "sk": secret["sk"]})
    message = harbor_error(registry.post(f"{API}/registries/ping", json={"id": registry_id}), 400, "BAD_REQUEST")
    assert "set access_secret again" in message
    fixed = registry.put(f"{API}/registries/{registry_id}", json={"access_secret": PASSWORD})
    assert fixed.status_code == 200, fixed.get_data()
    assert registry.post(f"{API}/registries/ping", json={"id": registry_id}).status_code == 200


# What the routes cost.


def test_what_reading_registries_costs(registry: LiveRegistry, remote: Remote) -> None:
    from tests.functional.helpers import dynamodb_calls

    ids = [create(registry, body_of(remote, name=f"r{n}")) for n in range(3)]
    with dynamodb_calls() as listing:
        assert registry.get(f"{API}/registries").status_code == 200
    with dynamodb_calls() as one:
        assert registry.get(f"{API}/registries/{ids[0]}").status_code == 200
    with dynamodb_calls() as ping:
        assert registry.post(f"{API}/registries/ping", json={"id": ids[0]}).status_code == 200
    # Each request first reads the caller's account (Basic credentials are checked on every request).
    assert listing == ["GetItem", "Query", "BatchGetItem"]  # the name rows, then the records
    assert one == ["GetItem", "GetItem"]
    assert ping == ["GetItem", "GetItem", "GetItem"]  # the record, then its secret row
