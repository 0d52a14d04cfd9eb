"""Numbers at the edge (issue 9, finding 6) and a project delete that completes or does not happen.

A robot `duration` and a `storage_limit` of 10^40 were stored; afterwards every `GET /projects`,
`/robots`, `/statistics` and `/search` answered 500 for everyone, and deleting the project answered
500 after its row was gone, skipping its robots and the delete event.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.conftest import LiveRegistry

API = "/api/v2.0"
HUGE = [10**40, 10**19, 2**63, -(10**40)]


def _call(registry: LiveRegistry, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return registry.request(method, f"{API}{path}", json=body, **kwargs)


def _project(registry: LiveRegistry, name: str = "bounded") -> int:
    response = _call(registry, "POST", "/projects", {"project_name": name})
    assert response.status_code == 201, response.get_data()
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _robot(registry: LiveRegistry, project: str, **extra: Any) -> Any:
    access = [{"resource": "repository", "action": "pull"}]
    body = {"name": "bot", "level": "project", "duration": 30,
            "permissions": [{"kind": "project", "namespace": project, "access": access}], **extra}  # fmt: skip
    return _call(registry, "POST", "/robots", body)


def _bad_request(response: Any) -> None:
    assert response.status_code == 400, (response.status_code, response.get_data()[:300])
    assert response.get_json()["errors"][0]["code"] == "BAD_REQUEST"


def _everything_lists(registry: LiveRegistry) -> None:
    for path in ("/projects", "/robots", "/statistics", "/search?q=bounded", "/quotas", "/projects/bounded"):
        response = registry.get(f"{API}{path}")
        assert response.status_code == 200, (path, response.status_code, response.get_data()[:300])


@pytest.mark.parametrize("number", HUGE)
def test_huge_numbers_are_refused_and_everything_still_lists(registry: LiveRegistry, number: int) -> None:
    project_id = _project(registry)
    _bad_request(_robot(registry, "bounded", duration=number))
    _bad_request(_call(registry, "POST", "/projects", {"project_name": "other", "storage_limit": number}))
    _bad_request(_call(registry, "PUT", "/projects/bounded", {"storage_limit": number}))
    _bad_request(_call(registry, "PUT", f"/quotas/{project_id}", {"hard": {"storage": number}}))
    _bad_request(_call(registry, "PUT", "/projects/bounded", {"cve_allowlist": {"items": [], "expires_at": number}}))
    _everything_lists(registry)
    assert _call(registry, "DELETE", "/projects/bounded").status_code == 200


def test_the_largest_accepted_numbers_still_list(registry: LiveRegistry) -> None:
    from chalicelib.core.bounds import MAX_DURATION_DAYS, MAX_EPOCH, MAX_STORAGE_BYTES

    project_id = _project(registry)
    assert _robot(registry, "bounded", duration=MAX_DURATION_DAYS).status_code == 201
    _bad_request(_robot(registry, "bounded", name="bot2", duration=MAX_DURATION_DAYS + 1))
    assert _call(registry, "PUT", f"/quotas/{project_id}", {"hard": {"storage": MAX_STORAGE_BYTES}}).status_code == 200
    allowlist = {"cve_allowlist": {"items": [], "expires_at": MAX_EPOCH}}
    assert _call(registry, "PUT", "/projects/bounded", allowlist).status_code == 200
    _everything_lists(registry)


@pytest.mark.parametrize("page", ["1" + "0" * 40, "9" * 5000])
def test_huge_page_numbers_are_400(registry: LiveRegistry, page: str) -> None:
    for path in ("/projects", "/robots", "/users"):
        response = registry.get(f"{API}{path}", query_string={"page": page, "page_size": "10"})
        assert response.status_code == 400, (path, response.status_code, response.get_data()[:200])


def _failing_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Make `owner.name` raise on its first call (a lost connection), then behave."""
    original = getattr(owner, name)
    calls: list[int] = []

    def fail_first(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("injected failure")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, fail_first)
    return calls


@pytest.mark.parametrize("failing", ["robot delete", "project transaction"])
def test_a_failed_project_delete_leaves_it_whole_for_a_retry(
    registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    from chalicelib.stores import projects as project_store
    from chalicelib.stores.robots import RobotStore

    _project(registry)
    user = {"username": "member1", "password": "Bounded-Pass1", "email": "m@example.com"}
    assert _call(registry, "POST", "/users", user).status_code == 201
    member = {"role_id": 2, "member_user": {"username": "member1"}}
    assert _call(registry, "POST", "/projects/bounded/members", member).status_code == 201
    robot = _robot(registry, "bounded").get_json()
    if failing == "robot delete":
        calls = _failing_once(monkeypatch, RobotStore, "delete")
    else:
        calls = _failing_once(monkeypatch, project_store.TransactWrite, "__exit__")

    assert _call(registry, "DELETE", "/projects/bounded").status_code == 500
    assert calls
    # Nothing a client can see went: the project, its members, and (when the robot delete failed)
    # its robot; the retry then takes it all.
    assert _call(registry, "GET", "/projects/bounded").status_code == 200
    members = _call(registry, "GET", "/projects/bounded/members").get_json()
    assert "member1" in [m["entity_name"] for m in members]
    if failing == "robot delete":
        assert _call(registry, "GET", f"/robots/{robot['id']}").status_code == 200

    assert _call(registry, "DELETE", "/projects/bounded").status_code == 200
    assert _call(registry, "GET", "/projects/bounded").status_code == 404
    assert _call(registry, "GET", f"/robots/{robot['id']}").status_code == 404
    # A project re-created under the name starts clean: no member or robot of the old one.
    _project(registry)
    members = _call(registry, "GET", "/projects/bounded/members").get_json()
    assert "member1" not in [m["entity_name"] for m in members]
    assert _robot(registry, "bounded").status_code == 201


@pytest.mark.parametrize("number", ["\u00b2", "\u0663", "9" * 5000, "1" + "0" * 40])
def test_odd_digits_in_paths_and_queries_are_never_a_500(registry: LiveRegistry, number: str) -> None:
    """`str.isdigit()` is true of "²" (which int() refuses) and 5,000 digits pass it (which int()
    refuses too): each was a 500 wherever a number was parsed that way."""
    registry.push_image("library/app", "v1")
    for path, query in [
        (f"{API}/projects/{number}", {}),
        (f"{API}/projects/{number}/summary", {}),
        (f"{API}/robots/{number}", {}),
        (f"{API}/users/{number}", {}),
        (f"{API}/labels/{number}", {}),
        (f"{API}/projects/library/repositories/app/artifacts", {"cursor": f"{number}.10.key"}),
        ("/v2/_catalog", {"n": number}),
        ("/v2/library/app/tags/list", {"n": number}),
    ]:
        response = registry.get(path, query_string=query)
        # A cursor of another page is ignored (200), as a hand-edited `page` is.
        expected = (200, 400) if "cursor" in query else (400, 404)
        assert response.status_code in expected, (path, query, response.status_code, response.get_data()[:200])
    schedule = {"schedule": {"type": "Custom", "cron": f"0 {number} * * * *"}}
    response = _call(registry, "PUT", "/system/gc/schedule", schedule)
    assert response.status_code == 400, response.get_data()[:200]
