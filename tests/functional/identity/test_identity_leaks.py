"""Small leaks: what a failed sign-in, a probe or an error message tells a caller it should not.

- a sign-in of an unknown name costs the same argon2 verification as a wrong password;
- repeated failed sign-ins of one name, or from one address, are throttled (429, Retry-After);
- an anonymous caller cannot tell a missing project from a private one (HEAD ?project_name=,
  GET /projects/{name} and the routes under it);
- GET /users/{id} of someone else is 403 whether or not the id exists;
- token errors do not say why a token failed;
- JSON booleans are booleans (`"disable": "no"` is not `true`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.functional.identity.identity_support import (
    PASSWORD,
    SERVICE,
    basic,
    expect_error,
    expect_status,
    unique,
)


def _oauth_login(harbor, username: str, password: str, source: str) -> Any:
    form = {"grant_type": "password", "client_id": "docker", "username": username, "password": password,
            "service": SERVICE, "scope": "repository:library/none:pull"}  # fmt: skip
    return harbor.http.open("/service/token", method="POST", data=urlencode(form),
                            content_type="application/x-www-form-urlencoded",
                            environ_overrides={"REMOTE_ADDR": source})  # fmt: skip


def _basic_get(harbor, path: str, username: str, password: str, source: str) -> Any:
    return harbor.http.open(path, method="GET", headers={"Authorization": basic(username, password)},
                            environ_overrides={"REMOTE_ADDR": source})  # fmt: skip


@pytest.fixture
def throttle_clock(clock):
    """Move the app's clock (the sign-in throttle's windows read it) forward."""
    return clock


# ------------------------------------------------------------------------------------------ sign-in


def test_an_unknown_name_costs_an_argon2_verification_like_a_wrong_password(harbor, monkeypatch):
    from chalicelib.auth import secrets

    real = secrets.verify_password
    calls: list[str] = []

    def counting(password: str, stored: str) -> bool:
        calls.append(stored[:9])
        return real(password, stored)

    monkeypatch.setattr(secrets, "verify_password", counting)
    user, _ = harbor.create_user()
    for name in (user, unique("nobody")):
        calls.clear()
        expect_error(_oauth_login(harbor, name, "Wrong-Pass9", "10.20.0.1"), 401, "UNAUTHORIZED")
        assert calls == ["$argon2id"], (name, calls)


def test_failed_sign_ins_of_one_account_are_throttled(harbor, throttle_clock):
    user, _ = harbor.create_user()
    for _ in range(10):
        expect_error(_oauth_login(harbor, user, "Wrong-Pass9", "10.20.1.1"), 401, "UNAUTHORIZED")
    # Even the right password waits now, from any address and on every sign-in path.
    response = _oauth_login(harbor, user, PASSWORD, "10.20.1.2")
    expect_error(response, 429, "TOOMANYREQUESTS")
    assert 1 <= int(response.headers["Retry-After"]) <= 300
    expect_error(_basic_get(harbor, "/api/v2.0/users/current", user, PASSWORD, "10.20.1.3"), 429, "TOOMANYREQUESTS")
    expect_error(_basic_get(harbor, "/v2/", user, PASSWORD, "10.20.1.3"), 429, "TOOMANYREQUESTS")
    # Others are not affected.
    other, _ = harbor.create_user()
    expect_status(_oauth_login(harbor, other, PASSWORD, "10.20.1.1"), 200)
    throttle_clock(301)
    expect_status(_oauth_login(harbor, user, PASSWORD, "10.20.1.1"), 200)


def test_a_success_clears_the_accounts_count(harbor):
    user, _ = harbor.create_user()
    for _ in range(3):
        for _ in range(9):
            expect_error(_oauth_login(harbor, user, "Wrong-Pass9", "10.20.2.1"), 401, "UNAUTHORIZED")
        expect_status(_oauth_login(harbor, user, PASSWORD, "10.20.2.1"), 200)


def test_failed_sign_ins_from_one_source_are_throttled(harbor, throttle_clock):
    source = "10.20.3.1"
    for _ in range(100):
        expect_error(_oauth_login(harbor, unique("spray"), "Wrong-Pass9", source), 401, "UNAUTHORIZED")
    user, _ = harbor.create_user()
    expect_error(_oauth_login(harbor, user, PASSWORD, source), 429, "TOOMANYREQUESTS")
    expect_status(_oauth_login(harbor, user, PASSWORD, "10.20.3.2"), 200)
    throttle_clock(301)
    expect_status(_oauth_login(harbor, user, PASSWORD, source), 200)


def test_the_throttle_holds_a_bounded_number_of_names():
    from chalicelib.services.signin_throttle import SignInThrottle

    now = {"t": 0.0}
    throttle = SignInThrottle(2, 0, 60, max_keys=100, clock=lambda: now["t"])
    for n in range(10_000):
        throttle.failed(f"name-{n}", None)
    assert len(throttle._accounts._entries) == 100
    throttle.failed("name-9999", None)
    with pytest.raises(Exception, match="too many failed sign-ins"):
        throttle.check("name-9999", None)
    throttle.check("name-0", None)  # dropped: the oldest go first


# ----------------------------------------------------------------------------------------- probing


def test_anonymous_callers_cannot_tell_missing_projects_from_private_ones(harbor):
    private, private_id = harbor.create_project(public=False)
    missing = unique("nosuch")
    for name in (private, missing):
        head = harbor.head("projects", auth=None, query={"project_name": name})
        assert head.status_code == 401, (name, head.status_code)
        for path in (f"projects/{name}", f"projects/{name}/summary", f"projects/{name}/repositories",
                     f"projects/{name}/members"):  # fmt: skip
            expect_error(harbor.get(path, auth=None), 401, "UNAUTHORIZED")
    for project_id in (private_id, 987_654):
        expect_error(harbor.get(f"projects/{project_id}", auth=None), 401, "UNAUTHORIZED")
        expect_error(harbor.get(f"quotas/{project_id}", auth=None), 401, "UNAUTHORIZED")
    # A logged-in caller may check whether a name is taken, as in Harbor.
    user, _ = harbor.create_user()
    assert harbor.head("projects", auth=(user, PASSWORD), query={"project_name": private}).status_code == 200
    assert harbor.head("projects", auth=(user, PASSWORD), query={"project_name": missing}).status_code == 404


def test_another_users_id_is_403_whether_it_exists_or_not(harbor):
    user, _ = harbor.create_user()
    _, other_id = harbor.create_user()
    for user_id in (other_id, 987_654):
        expect_error(harbor.get(f"users/{user_id}", auth=(user, PASSWORD)), 403, "FORBIDDEN")
        expect_error(harbor.get(f"users/{user_id}", auth=None), 401, "UNAUTHORIZED")
    expect_error(harbor.get("users/987654"), 404, "NOT_FOUND")


def test_token_errors_do_not_say_why(harbor):
    project, _ = harbor.create_project(public=False)
    token = harbor.token([f"repository:{project}/app:pull"])
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for bad in (tampered, "not-a-jwt", token.split(".")[0] + ".e30.x"):
        entry = expect_error(harbor.get(f"/v2/{project}/app/tags/list", auth=bad), 401, "UNAUTHORIZED")
        assert entry["message"] == "invalid token", entry


# ---------------------------------------------------------------------------------- strict booleans


def test_a_string_is_not_a_boolean(harbor):
    name, _ = harbor.create_project()
    body = {"name": unique("bot"), "level": "project", "duration": -1, "disable": "no",
            "permissions": [{"kind": "project", "namespace": name,
                             "access": [{"resource": "repository", "action": "pull"}]}]}  # fmt: skip
    expect_error(harbor.post("robots", json_body=body), 400, "BAD_REQUEST")
    listed = expect_status(harbor.get("robots", query={"page_size": 100}), 200).get_json()
    assert f"robot${name}+{body['name']}" not in [r["name"] for r in listed]
    _, user_id = harbor.create_user()
    for flag in ("true", 1):
        response = harbor.put(f"users/{user_id}/sysadmin", json_body={"sysadmin_flag": flag})
        expect_error(response, 400, "BAD_REQUEST")
    assert expect_status(harbor.get(f"users/{user_id}"), 200).get_json()["sysadmin_flag"] is False
    expect_error(harbor.post("projects", json_body={"project_name": unique("p"), "public": "no"}), 400, "BAD_REQUEST")
    expect_error(harbor.put(f"projects/{name}", json_body={"storage_limit": "5"}), 400, "BAD_REQUEST")


def test_anonymous_callers_cannot_tell_which_robot_ids_exist(harbor):
    name, _ = harbor.create_project(public=True)
    robot = harbor.project_robot(name, [{"resource": "repository", "action": "pull"}])
    for robot_id in (robot["id"], 987_654):
        expect_error(harbor.get(f"robots/{robot_id}", auth=None), 401, "UNAUTHORIZED")
        expect_error(harbor.patch(f"robots/{robot_id}", auth=None, json_body={}), 401, "UNAUTHORIZED")
        expect_error(harbor.delete(f"robots/{robot_id}", auth=None), 401, "UNAUTHORIZED")


def test_a_name_longer_than_any_account_is_a_plain_401_without_a_lookup(harbor, monkeypatch):
    """DynamoDB refuses keys over 2 KB (moto does not), so such a name must never reach a GetItem."""
    from chalicelib.wiring import services

    access = services().access
    looked_up: list[str] = []
    for store in (access._users, access._robots):
        real = store.get
        monkeypatch.setattr(store, "get", lambda name, real=real: looked_up.append(name) or real(name))
    for name in ("x" * 3000, "robot$" + "y" * 3000, "ü" * 700):
        expect_error(harbor.get("users/current", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")
    assert looked_up == []
