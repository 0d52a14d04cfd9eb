"""CVE allowlists over HTTP: the system list (`/system/CVEAllowlist`) and a project's own list in
the project body, with Harbor's validation (blank and duplicate ids refused, ids trimmed), size
bounds, and bad input answered with Harbor's 4xx envelope."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.helpers import Registry

API = "/api/v2.0"


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    entry = response.get_json()["errors"][0]
    assert entry["code"] == code, entry
    return str(entry["message"])


def test_system_allowlist_starts_empty_and_round_trips(registry: Registry) -> None:
    empty = registry.get(f"{API}/system/CVEAllowlist")
    assert empty.status_code == 200
    body = empty.get_json()
    assert body.get("project_id", 0) == 0 and body["id"] == 1 and body.get("items", []) == []
    assert "expires_at" not in body

    put = registry.put(
        f"{API}/system/CVEAllowlist",
        json={
            "items": [{"cve_id": " CVE-2024-0001 "}, {"cve_id": "GHSA-xxxx-yyyy-zzzz"}],
            "expires_at": 4102444800,
            "id": 77,
            "project_id": 9,
            "creation_time": "2020-01-01T00:00:00Z",
        },
    )  # echoed fields are ignored
    assert put.status_code == 200, put.get_data()
    got = registry.get(f"{API}/system/CVEAllowlist").get_json()
    assert [i["cve_id"] for i in got["items"]] == ["CVE-2024-0001", "GHSA-xxxx-yyyy-zzzz"]
    assert got["expires_at"] == 4102444800 and "project_id" not in got and got["id"] == 1
    assert got["creation_time"].endswith("Z") and got["update_time"].endswith("Z")

    # A PUT replaces the whole list; no expires_at means it never expires.
    assert registry.put(f"{API}/system/CVEAllowlist", json={"items": []}).status_code == 200
    cleared = registry.get(f"{API}/system/CVEAllowlist").get_json()
    assert cleared.get("items", []) == [] and "expires_at" not in cleared


@pytest.mark.parametrize(("body", "needle"), [
    ({"items": [{"cve_id": "CVE-1"}, {"cve_id": "CVE-1"}]}, "duplicate"),
    ({"items": [{"cve_id": "CVE-1"}, {"cve_id": " CVE-1"}]}, "duplicate"),
    ({"items": [{"cve_id": "   "}]}, "empty"),
    ({"items": [{"cve_id": ""}]}, "empty"),
    ({"items": [{"cve_id": 5}]}, "cve_id"),
    ({"items": [{}]}, "cve_id"),
    ({"items": ["CVE-1"]}, "cve_id"),
    ({"items": "CVE-1"}, "items"),
    ({"items": [{"cve_id": "C" * 129}]}, "128"),
    ({"items": [{"cve_id": f"CVE-{n}"} for n in range(1001)]}, "1000"),
    ({"items": [], "expires_at": -1}, "expires_at"),
    ({"items": [], "expires_at": "tomorrow"}, "expires_at"),
    ({"items": [], "expires_at": True}, "expires_at"),
    ({"items": [], "expires_at": 10**30}, "JSON number"),
    ({"items": [], "expires_at": 10**15}, "expires_at"),
    ([], "object"),
    ("CVE-1", "object"),
])  # fmt: skip
def test_system_allowlist_bad_input_is_a_400_and_changes_nothing(registry: Registry, body: Any, needle: str) -> None:
    assert registry.put(f"{API}/system/CVEAllowlist", json={"items": [{"cve_id": "CVE-KEEP"}]}).status_code == 200
    message = _error(registry.put(f"{API}/system/CVEAllowlist", json=body), 400, "BAD_REQUEST")
    assert needle in message
    kept = registry.get(f"{API}/system/CVEAllowlist").get_json()
    assert [i["cve_id"] for i in kept["items"]] == ["CVE-KEEP"]


def test_system_allowlist_malformed_and_deep_bodies_are_400(registry: Registry) -> None:
    bad = registry.put(f"{API}/system/CVEAllowlist", data=b"{not json", headers={"Content-Type": "application/json"})
    _error(bad, 400, "BAD_REQUEST")
    deep = b'{"items":' + b"[" * 5000 + b"]" * 5000 + b"}"
    _error(registry.put(f"{API}/system/CVEAllowlist", data=deep, headers={"Content-Type": "application/json"}),
           400, "BAD_REQUEST")  # fmt: skip


def test_system_allowlist_permissions(registry: Registry) -> None:
    anonymous = registry.get(f"{API}/system/CVEAllowlist", auth=None)
    _error(anonymous, 401, "UNAUTHORIZED")
    _error(registry.put(f"{API}/system/CVEAllowlist", json={"items": []}, auth=None), 401, "UNAUTHORIZED")
    user = {"username": "alice", "password": "Alice-Pass-1", "email": "alice@example.com", "realname": "Alice"}
    assert registry.post(f"{API}/users", json=user).status_code == 201
    alice = ("alice", "Alice-Pass-1")
    assert registry.get(f"{API}/system/CVEAllowlist", auth=alice).status_code == 200  # any signed-in user reads
    _error(registry.put(f"{API}/system/CVEAllowlist", json={"items": []}, auth=alice), 403, "FORBIDDEN")
    _error(registry.put(f"{API}/system/CVEAllowlist", json={"items": []}, auth=("admin", "wrong")),
           401, "UNAUTHORIZED")  # fmt: skip


def test_project_allowlist_in_create_update_and_get(registry: Registry) -> None:
    body = {"project_name": "allowed", "metadata": {"reuse_sys_cve_allowlist": "false"},
            "cve_allowlist": {"items": [{"cve_id": "CVE-2023-1 "}], "expires_at": 4102444800}}  # fmt: skip
    assert registry.post(f"{API}/projects", json=body).status_code == 201
    project = registry.get(f"{API}/projects/allowed").get_json()
    assert project["metadata"]["reuse_sys_cve_allowlist"] == "false"
    allowlist = project["cve_allowlist"]
    assert [i["cve_id"] for i in allowlist["items"]] == ["CVE-2023-1"]
    assert allowlist["expires_at"] == 4102444800 and allowlist["project_id"] == project["project_id"]

    update = {"cve_allowlist": {"items": [{"cve_id": "CVE-2023-2"}, {"cve_id": "CVE-2023-3"}]}}
    assert registry.put(f"{API}/projects/allowed", json=update).status_code == 200
    allowlist = registry.get(f"{API}/projects/allowed").get_json()["cve_allowlist"]
    assert [i["cve_id"] for i in allowlist["items"]] == ["CVE-2023-2", "CVE-2023-3"]
    assert "expires_at" not in allowlist


@pytest.mark.parametrize("allowlist", [
    {"items": [{"cve_id": "CVE-1"}, {"cve_id": "CVE-1"}]},
    {"items": [{"cve_id": " "}]},
    {"items": [{"cve_id": "x" * 200}]},
    {"items": [{"cve_id": f"CVE-{n}"} for n in range(1001)]},
    {"items": [], "expires_at": -5},
    {"items": 7},
])  # fmt: skip
def test_project_allowlist_bad_input(registry: Registry, allowlist: dict[str, Any]) -> None:
    _error(registry.post(f"{API}/projects", json={"project_name": "badlist", "cve_allowlist": allowlist}),
           400, "BAD_REQUEST")  # fmt: skip
    assert registry.get(f"{API}/projects/badlist").status_code == 404  # nothing half-created
    assert registry.post(f"{API}/projects", json={"project_name": "goodlist"}).status_code == 201
    _error(registry.put(f"{API}/projects/goodlist", json={"cve_allowlist": allowlist}), 400, "BAD_REQUEST")
    assert registry.get(f"{API}/projects/goodlist").get_json()["cve_allowlist"].get("items", []) == []
