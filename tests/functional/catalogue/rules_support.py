"""Shared by the immutability and audit suites: management-API calls and users with roles."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.functional.helpers import OCI_CONFIG, Registry, canonical, descriptor, image_manifest

API = "/api/v2.0"
PASSWORD = "Rules-Pass1"
ROLES = {"admin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limited": 5}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def api(registry: Registry, method: str, path: str, *, auth: Any = "default", **kwargs: Any) -> TestResponse:
    if auth != "default":
        kwargs["auth"] = auth
    return registry.request(method, f"{API}{path}", **kwargs)


def expect(response: TestResponse, status: int) -> TestResponse:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    return response


def harbor_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Harbor's envelope with a 4xx; returns the first error."""
    expect(response, status)
    body = response.get_json(force=True, silent=True)
    assert isinstance(body, dict) and body.get("errors"), response.get_data()[:500]
    entry = body["errors"][0]
    assert isinstance(entry.get("message"), str) and entry["message"]
    if code is not None:
        assert entry["code"] == code, entry
    return entry


def create_project(registry: Registry, *, public: bool = False) -> tuple[str, int]:
    name = unique("proj")
    body = {"project_name": name, "metadata": {"public": str(public).lower()}}
    response = expect(api(registry, "POST", "/projects", json=body), 201)
    return name, int(response.headers["Location"].rsplit("/", 1)[1])


def create_user(registry: Registry) -> tuple[str, str]:
    name = unique("user")
    body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com", "realname": name}
    expect(api(registry, "POST", "/users", json=body), 201)
    return name, PASSWORD


def member(registry: Registry, project: str, role: str) -> tuple[str, str]:
    """A new user holding `role` in `project`; returns its Basic credentials."""
    user = create_user(registry)
    body = {"role_id": ROLES[role], "member_user": {"username": user[0]}}
    expect(api(registry, "POST", f"/projects/{project}/members", json=body), 201)
    return user


def small_image(registry: Registry, repo: str, seed: str) -> bytes:
    """Push a config blob and return the bytes of an image manifest that uses it (not pushed)."""
    config = canonical({"seed": seed})
    registry.push_blob(repo, config)
    return canonical(image_manifest(descriptor(OCI_CONFIG, config), []))


@pytest.fixture
def atomic_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto handles one AWS call at a time, as DynamoDB is atomic per call (see test_concurrency)."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
