"""Scanner registrations through Harbor's `scanner` API group and the project's scanner, against an
adapter that answers as goharbor/harbor-scanner-trivy does (tests/unit/adapters/trivy_fake.py) on
127.0.0.1; and bad input on every route (Harbor's envelope with a 4xx, never a 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.conftest import LiveRegistry
from tests.unit.adapters.trivy_fake import METADATA, TrivyFake

API = "/api/v2.0"
PASSWORD = "Scanner-Tests-1"
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def trivy() -> Iterator[TrivyFake]:
    fake = TrivyFake().start()
    yield fake
    fake.close()


@pytest.fixture
def other_trivy() -> Iterator[TrivyFake]:
    fake = TrivyFake().start()
    yield fake
    fake.close()


@pytest.fixture
def reg(registry: LiveRegistry) -> LiveRegistry:
    # The fakes listen on 127.0.0.1, which only the scanner networks setting opens (webhooks stay refused).
    registry.configure(scanner_allow_networks="127.0.0.1/32", scanner_metadata_cache_seconds=0)
    return registry


def _errors(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert isinstance(body["errors"], list) and body["errors"][0]["code"] and body["errors"][0]["message"], body
    return str(body["errors"][0]["message"])


def _create(reg: LiveRegistry, fake: TrivyFake, name: str = "trivy-1", **extra: Any) -> str:
    response = reg.post(f"{API}/scanners", json={"name": name, "url": fake.url, **extra})
    assert response.status_code == 201, response.get_data()[:500]
    location = response.headers["Location"]
    assert location.startswith(f"{API}/scanners/")
    return location.rsplit("/", 1)[-1]


def _get(reg: LiveRegistry, uuid: str) -> dict[str, Any]:
    response = reg.get(f"{API}/scanners/{uuid}")
    assert response.status_code == 200, response.get_data()[:300]
    return dict(response.get_json())


def _user(reg: LiveRegistry, name: str) -> tuple[str, str]:
    response = reg.post(f"{API}/users", json={"username": name, "password": PASSWORD, "email": f"{name}@example.com",
                                              "realname": name})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    return name, PASSWORD


def _member(reg: LiveRegistry, project: str, username: str, role_id: int) -> None:
    response = reg.post(f"{API}/projects/{project}/members",
                        json={"role_id": role_id, "member_user": {"username": username}})  # fmt: skip
    assert response.status_code == 201, response.get_data()


# Registrations.


def test_a_registration_is_created_read_and_listed_without_its_credential(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy, description="the trivy", auth="Bearer", access_credential="s3cret-token")
    record = _get(reg, uuid)
    assert record["name"] == "trivy-1" and record["url"] == trivy.url and record["description"] == "the trivy"
    assert record["auth"] == "Bearer" and record["access_credential"] == ""
    assert record["is_default"] is True and record["disabled"] is False  # the first one is the default
    assert record["capabilities"] == {"support_vulnerability": True, "support_sbom": True}
    assert "s3cret-token" not in reg.get(f"{API}/scanners").get_data(as_text=True)
    # The adapter was asked for its metadata with the credential in the header Harbor uses.
    assert any(h.get("Authorization") == "Bearer s3cret-token" for _, path, h in trivy.requests
               if path == "/api/v1/metadata")  # fmt: skip
    listed = reg.get(f"{API}/scanners")
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    assert [r["uuid"] for r in listed.get_json()] == [uuid]


def test_the_credential_is_kept_as_a_secret_reference_not_in_the_table(reg: LiveRegistry, trivy: TrivyFake) -> None:
    _create(reg, trivy, auth="APIKey", access_credential="the-api-key-123")
    items = reg.dynamodb.scan(TableName=reg.table)["Items"]
    assert "the-api-key-123" not in json.dumps(items)
    assert any(h.get("X-Scanneradapter-Api-Key") == "the-api-key-123" or h.get("X-ScannerAdapter-API-Key")
               == "the-api-key-123" for _, _, h in trivy.requests)  # fmt: skip


def test_the_older_api_key_spelling_is_accepted_as_harbors_apikey(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy, auth="X-ScannerAdapter-API-Key", access_credential="k-123")
    assert _get(reg, uuid)["auth"] == "APIKey"


def test_list_puts_the_default_first_then_newest_and_filters(
    reg: LiveRegistry, trivy: TrivyFake, other_trivy: TrivyFake, clock: Any
) -> None:
    first = _create(reg, trivy, "alpha")
    clock.advance(5)
    second = _create(reg, other_trivy, "beta")
    assert [r["uuid"] for r in reg.get(f"{API}/scanners").get_json()] == [first, second]
    assert [r["name"] for r in reg.get(f"{API}/scanners", query_string={"q": "name=~bet"}).get_json()] == ["beta"]
    assert [r["name"] for r in reg.get(f"{API}/scanners", query_string={"ex_name": "alpha"}).get_json()] == ["alpha"]
    page = reg.get(f"{API}/scanners", query_string={"page": "2", "page_size": "1"})
    assert page.headers["X-Total-Count"] == "2" and [r["uuid"] for r in page.get_json()] == [second]


def test_update_keeps_the_credential_when_none_is_sent(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy, auth="Bearer", access_credential="tok-1")
    record = _get(reg, uuid)
    record.update(description="changed", name="renamed")
    response = reg.put(f"{API}/scanners/{uuid}", json=record)  # what GET gave back, credential ""
    assert response.status_code == 200, response.get_data()
    after = _get(reg, uuid)
    assert after["name"] == "renamed" and after["description"] == "changed" and after["auth"] == "Bearer"
    trivy.requests.clear()
    assert reg.get(f"{API}/scanners/{uuid}/metadata").status_code == 200
    assert any(h.get("Authorization") == "Bearer tok-1" for _, _, h in trivy.requests)


def test_set_default_moves_the_flag_and_the_default_cannot_be_deleted(
    reg: LiveRegistry, trivy: TrivyFake, other_trivy: TrivyFake
) -> None:
    first = _create(reg, trivy, "one")
    second = _create(reg, other_trivy, "two")
    assert _get(reg, second)["is_default"] is False
    _errors(reg.delete(f"{API}/scanners/{first}"), 403)
    assert reg.patch(f"{API}/scanners/{second}", json={"is_default": True}).status_code == 200
    assert _get(reg, second)["is_default"] is True and _get(reg, first)["is_default"] is False
    deleted = reg.delete(f"{API}/scanners/{first}")
    assert deleted.status_code == 200 and deleted.get_json()["uuid"] == first
    _errors(reg.get(f"{API}/scanners/{first}"), 404)


def test_the_default_cannot_be_disabled(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy)
    record = _get(reg, uuid)
    record["disabled"] = True
    _errors(reg.put(f"{API}/scanners/{uuid}", json=record), 400)


def test_a_disabled_registration_cannot_become_the_default(
    reg: LiveRegistry, trivy: TrivyFake, other_trivy: TrivyFake
) -> None:
    _create(reg, trivy, "one")
    second = _create(reg, other_trivy, "two", disabled=True)
    _errors(reg.patch(f"{API}/scanners/{second}", json={"is_default": True}), 404)


def test_metadata_is_the_adapters(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy)
    response = reg.get(f"{API}/scanners/{uuid}/metadata")
    assert response.status_code == 200
    body = response.get_json()
    assert body["scanner"] == METADATA["scanner"]
    assert [c["type"] for c in body["capabilities"]] == ["vulnerability", "sbom"]
    assert body["properties"]["harbor.scanner-adapter/scanner-type"] == "os-package-vulnerability"


def test_an_adapter_that_stops_answering_is_a_502_for_metadata_and_no_capabilities(
    reg: LiveRegistry, trivy: TrivyFake
) -> None:
    uuid = _create(reg, trivy)
    trivy.close()
    _errors(reg.get(f"{API}/scanners/{uuid}/metadata"), 502)
    assert "capabilities" not in _get(reg, uuid)


def test_ping_checks_the_settings_and_stores_nothing(reg: LiveRegistry, trivy: TrivyFake) -> None:
    assert reg.post(f"{API}/scanners/ping", json={"name": "p", "url": trivy.url}).status_code == 200
    assert reg.get(f"{API}/scanners").get_json() == []
    trivy.metadata["capabilities"] = []
    assert "capability" in _errors(reg.post(f"{API}/scanners/ping", json={"name": "p", "url": trivy.url}), 400)


def test_changes_are_audited(reg: LiveRegistry, trivy: TrivyFake) -> None:
    from chalicelib.wiring import services

    uuid = _create(reg, trivy, "audited")
    record = _get(reg, uuid)
    record["description"] = "x"
    assert reg.put(f"{API}/scanners/{uuid}", json=record).status_code == 200
    assert services().events.drain(10)
    logs = reg.get(f"{API}/audit-logs").get_json()
    seen = {(e["operation"], e["resource_type"], e["resource"]) for e in logs}
    assert {("create", "scanner", "audited"), ("update", "scanner", "audited")} <= seen


# The project's scanner.


def test_a_project_uses_the_default_until_it_chooses(
    reg: LiveRegistry, trivy: TrivyFake, other_trivy: TrivyFake
) -> None:
    empty = reg.get(f"{API}/projects/library/scanner")
    assert empty.status_code == 200 and empty.get_data() == b""
    first = _create(reg, trivy, "one")
    second = _create(reg, other_trivy, "two")
    assert reg.get(f"{API}/projects/library/scanner").get_json()["uuid"] == first
    assert reg.put(f"{API}/projects/library/scanner", json={"uuid": second}).status_code == 200
    assert reg.get(f"{API}/projects/library/scanner").get_json()["uuid"] == second
    assert reg.get(f"{API}/projects/1/scanner").get_json()["uuid"] == second  # by id too
    candidates = reg.get(f"{API}/projects/library/scanner/candidates", query_string={"page_size": "1"})
    assert candidates.status_code == 200 and candidates.headers["X-Total-Count"] == "2"
    # The chosen registration deleted: the project falls back to the default.
    assert reg.delete(f"{API}/scanners/{second}").status_code == 200
    assert reg.get(f"{API}/projects/library/scanner").get_json()["uuid"] == first


def test_project_roles_read_and_choose_as_harbor_allows(reg: LiveRegistry, trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy)
    guest = _user(reg, "scanguest")
    admin = _user(reg, "scanadmin")
    outsider = _user(reg, "scanoutsider")
    created = reg.post(f"{API}/projects", json={"project_name": "scanproj", "metadata": {"public": "false"}})
    assert created.status_code == 201
    _member(reg, "scanproj", guest[0], 3)
    _member(reg, "scanproj", admin[0], 1)
    assert reg.get(f"{API}/projects/scanproj/scanner", auth=guest).status_code == 200
    _errors(reg.put(f"{API}/projects/scanproj/scanner", json={"uuid": uuid}, auth=guest), 403)
    _errors(reg.get(f"{API}/projects/scanproj/scanner/candidates", auth=guest), 403)
    assert reg.put(f"{API}/projects/scanproj/scanner", json={"uuid": uuid}, auth=admin).status_code == 200
    assert reg.get(f"{API}/projects/scanproj/scanner/candidates", auth=admin).status_code == 200
    assert reg.get(f"{API}/projects/scanproj/scanner", auth=outsider).status_code in (403, 404)
    # The system registrations are the administrators'.
    for method, path in (("GET", "/scanners"), ("GET", f"/scanners/{uuid}"), ("DELETE", f"/scanners/{uuid}"),
                         ("GET", f"/scanners/{uuid}/metadata")):  # fmt: skip
        _errors(reg.request(method, f"{API}{path}", auth=admin), 403)
    _errors(reg.post(f"{API}/scanners", json={"name": "x", "url": trivy.url}, auth=admin), 403)
    _errors(reg.post(f"{API}/scanners/ping", json={"name": "x", "url": trivy.url}, auth=admin), 403)
    _errors(reg.patch(f"{API}/scanners/{uuid}", json={"is_default": True}, auth=admin), 403)


# Bad input: Harbor's envelope and a 4xx, never a 500.


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/scanners", None),
        ("POST", "/scanners", {"name": "n", "url": "http://example.com"}),
        ("POST", "/scanners/ping", {"name": "n", "url": "http://example.com"}),
        ("GET", f"/scanners/{UNKNOWN_UUID}", None),
        ("PUT", f"/scanners/{UNKNOWN_UUID}", {"name": "n", "url": "http://example.com"}),
        ("PATCH", f"/scanners/{UNKNOWN_UUID}", {"is_default": True}),
        ("DELETE", f"/scanners/{UNKNOWN_UUID}", None),
        ("GET", f"/scanners/{UNKNOWN_UUID}/metadata", None),
        ("GET", "/projects/library/scanner", None),
        ("PUT", "/projects/library/scanner", {"uuid": UNKNOWN_UUID}),
        ("GET", "/projects/library/scanner/candidates", None),
    ],
)
@pytest.mark.parametrize("auth", [None, ("admin", "wrong-Password-1"), ("nobody", "Nobody-Password-1")])
def test_missing_or_wrong_credentials_are_401(reg: LiveRegistry, method: str, path: str, body: Any, auth: Any) -> None:
    # Even the public `library` project's scanner: Harbor asks for a signed-in caller first.
    _errors(reg.request(method, f"{API}{path}", json=body, auth=auth), 401)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("registration_id", [UNKNOWN_UUID, "not-a-uuid", "1", "%00", "a" * 300])
def test_an_unknown_registration_is_404(reg: LiveRegistry, trivy: TrivyFake, method: str, registration_id: str) -> None:
    _create(reg, trivy)
    body = {"name": "n", "url": "http://example.com"} if method == "PUT" else None
    _errors(reg.request(method, f"{API}/scanners/{registration_id}", json=body), 404)
    if method == "GET":
        _errors(reg.get(f"{API}/scanners/{registration_id}/metadata"), 404)
        _errors(reg.patch(f"{API}/scanners/{registration_id}", json={"is_default": True}), 404)


@pytest.mark.parametrize(
    "url",
    ["", "ftp://example.com", "http://", "http://user:pass@example.com", "http://exa mple.com", "javascript:alert(1)",
     "http://example.com:99999", "http://[::1", "http://example.com/?q=1", "x" * 600],
)  # fmt: skip
def test_a_bad_url_is_400(reg: LiveRegistry, url: str) -> None:
    _errors(reg.post(f"{API}/scanners", json={"name": "n", "url": url}), 400)
    _errors(reg.post(f"{API}/scanners/ping", json={"name": "n", "url": url}), 400)
    assert reg.get(f"{API}/scanners").get_json() == []


def test_an_address_the_egress_policy_refuses_is_400(registry: LiveRegistry, trivy: TrivyFake) -> None:
    # Without the scanner networks setting, 127.0.0.1 is not a place the registry calls.
    message = _errors(registry.post(f"{API}/scanners", json={"name": "n", "url": trivy.url}), 400)
    assert "not allowed" in message
    assert trivy.requests == []


def test_duplicate_names_and_urls_are_409(reg: LiveRegistry, trivy: TrivyFake, other_trivy: TrivyFake) -> None:
    uuid = _create(reg, trivy, "dup")
    _errors(reg.post(f"{API}/scanners", json={"name": "dup", "url": other_trivy.url}), 409)
    _errors(reg.post(f"{API}/scanners", json={"name": "other", "url": trivy.url + "/"}), 409)  # same URL normalised
    second = _create(reg, other_trivy, "second")
    record = _get(reg, second)
    record["name"] = "dup"
    _errors(reg.put(f"{API}/scanners/{second}", json=record), 409)
    assert [r["uuid"] for r in reg.get(f"{API}/scanners").get_json()] == [uuid, second]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "n", "url": "U", "auth": "Digest", "access_credential": "x"}, 400),
        ({"name": "n", "url": "U", "auth": "basic", "access_credential": "x"}, 400),
        ({"name": "n", "url": "U", "auth": "Basic"}, 400),  # a credential is required
        ({"name": "n", "url": "U", "auth": "Bearer", "access_credential": ""}, 400),
        ({"name": "Trivy", "url": "U"}, 400),  # Harbor's reserved name
        ({"name": "", "url": "U"}, 400),
        ({"name": "n" * 129, "url": "U"}, 400),
        ({"name": "n"}, 400),
        ({"url": "U"}, 400),
        ({"name": "n", "url": "U", "disabled": "yes"}, 400),
        ({"name": "n", "url": "U", "skip_certVerify": 1}, 400),
        ({"name": "n", "url": "U", "unknown": 1}, 400),
        ({"name": 5, "url": "U"}, 400),
        ({"name": "n", "url": "U", "access_credential": "c" * 600, "auth": "Bearer"}, 400),
        ({"name": "n", "url": "U", "description": "d" * 2000}, 400),
        ([], 400),
        ("text", 400),
    ],
)
def test_bad_registration_bodies_are_400(reg: LiveRegistry, trivy: TrivyFake, body: Any, status: int) -> None:
    if isinstance(body, dict) and body.get("url") == "U":
        body = {**body, "url": trivy.url}
    _errors(reg.post(f"{API}/scanners", json=body), status)
    uuid = _create(reg, trivy, "valid")
    _errors(reg.put(f"{API}/scanners/{uuid}", json=body), status)
    assert _get(reg, uuid)["name"] == "valid"


def test_an_adapter_whose_metadata_harbor_would_refuse_is_not_registered(reg: LiveRegistry, trivy: TrivyFake) -> None:
    trivy.metadata["scanner"]["version"] = ""
    _errors(reg.post(f"{API}/scanners", json={"name": "n", "url": trivy.url}), 400)
    assert reg.get(f"{API}/scanners").get_json() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{" * 500 + b"}" * 500,
        b'{"name": "n", "url": "http://example.com", "description": ' + b'"' + b"d" * (2 * 1024 * 1024) + b'"}',
        b'{"name": "n", "url": "http://example.com", "capabilities": ' + b'{"a":' * 200 + b"1" + b"}" * 201,
        b"\xff\xfe not json",
        b'{"name": "n", "url": "http://example.com"',
    ],
)
def test_oversized_deep_or_malformed_json_is_400(reg: LiveRegistry, trivy: TrivyFake, raw: bytes) -> None:
    uuid = _create(reg, trivy)
    headers = {"Content-Type": "application/json"}
    for method, path in (("POST", "/scanners"), ("PUT", f"/scanners/{uuid}"), ("POST", "/scanners/ping"),
                         ("PATCH", f"/scanners/{uuid}"), ("PUT", "/projects/library/scanner")):  # fmt: skip
        response = reg.request(method, f"{API}{path}", data=raw, headers=headers)
        assert response.status_code in (400, 413), (method, path, response.status_code)
        _errors(response, response.status_code)


@pytest.mark.parametrize("body", [{"uuid": UNKNOWN_UUID}, {"uuid": "nope"}, {"uuid": ""}])
def test_choosing_an_unknown_registration_is_404(reg: LiveRegistry, trivy: TrivyFake, body: dict[str, Any]) -> None:
    _create(reg, trivy)
    _errors(reg.put(f"{API}/projects/library/scanner", json=body), 404)


@pytest.mark.parametrize("body", [{}, {"uuid": 5}, {"uuid": None}, {"uuid": "x", "more": 1}])
def test_a_bad_project_scanner_body_is_400(reg: LiveRegistry, body: dict[str, Any]) -> None:
    _errors(reg.put(f"{API}/projects/library/scanner", json=body), 400)


@pytest.mark.parametrize("project", ["nosuchproject", "999999", "Bad Name"])
def test_an_unknown_project_is_404(reg: LiveRegistry, project: str) -> None:
    for method, path in (("GET", "scanner"), ("GET", "scanner/candidates")):
        response = reg.request(method, f"{API}/projects/{project}/{path}")
        assert response.status_code in (400, 404), response.status_code
        _errors(response, response.status_code)
    response = reg.put(f"{API}/projects/{project}/scanner", json={"uuid": UNKNOWN_UUID})
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("query", [{"q": "nokey=1"}, {"page": "0"}, {"page_size": "1000"}, {"sort": "secret"}])
def test_bad_list_queries_are_400(reg: LiveRegistry, query: dict[str, str]) -> None:
    _errors(reg.get(f"{API}/scanners", query_string=query), 400)
    _errors(reg.get(f"{API}/projects/library/scanner/candidates", query_string=query), 400)
