"""/api/v2.0/users: creation, listing, search, current user, passwords, sysadmin, deletion."""

from __future__ import annotations

import re

import pytest

from tests.functional.identity.identity_support import (
    ADMIN,
    API,
    PASSWORD,
    expect_error,
    expect_status,
    unique,
)


def _user_body(name: str, password: str = PASSWORD) -> dict[str, str]:
    return {"username": name, "password": password, "email": f"{name}@example.com", "realname": "Real Name"}


def test_create_returns_201_with_location_and_the_user_logs_in(harbor):
    name = unique("alice")
    response = expect_status(harbor.post("users", json_body=_user_body(name)), 201)
    location = response.headers["Location"]
    assert re.fullmatch(rf"{API}/users/\d+", location), location
    user = expect_status(harbor.get(location), 200).get_json()
    assert user["username"] == name
    assert user["email"] == f"{name}@example.com"
    assert user["realname"] == "Real Name"
    assert user["sysadmin_flag"] is False
    assert "password" not in user and "password_hash" not in user
    assert user["user_id"] == int(location.rsplit("/", 1)[1])
    for key in ("creation_time", "update_time"):
        assert isinstance(user[key], str) and user[key]
    expect_status(harbor.get("/v2/", auth=(name, PASSWORD)), 200)


def test_duplicate_username_is_409(harbor):
    name, _ = harbor.create_user()
    expect_error(harbor.post("users", json_body=_user_body(name)), 409, "CONFLICT")


@pytest.mark.parametrize("password", ["short1A", "alllowercase1", "ALLUPPERCASE1", "NoDigitsHere", "x" * 129 + "A1"])
def test_weak_password_is_400(harbor, password):
    expect_error(harbor.post("users", json_body=_user_body(unique("weak"), password)), 400, "BAD_REQUEST")


def test_list_pages_with_total_count_and_link(harbor):
    prefix = unique("pager")
    for i in range(3):
        harbor.create_user(f"{prefix}-{i}")
    response = expect_status(harbor.get("users", query={"page": 1, "page_size": 2}), 200)
    total = int(response.headers["X-Total-Count"])
    assert total >= 4  # admin + ours
    assert len(response.get_json()) == 2
    link = response.headers["Link"]
    assert 'rel="next"' in link and "page=2" in link and "page_size=2" in link
    last_page = (total + 1) // 2
    last = expect_status(harbor.get("users", query={"page": last_page, "page_size": 2}), 200)
    assert 'rel="prev"' in last.headers["Link"] and 'rel="next"' not in last.headers["Link"]

    fuzzy = expect_status(harbor.get("users", query={"q": f"username=~{prefix}"}), 200)
    assert sorted(u["username"] for u in fuzzy.get_json()) == [f"{prefix}-{i}" for i in range(3)]
    assert fuzzy.headers["X-Total-Count"] == "3"
    exact = expect_status(harbor.get("users", query={"q": f"username={prefix}-1"}), 200).get_json()
    assert [u["username"] for u in exact] == [f"{prefix}-1"]


def test_get_current_and_search(harbor):
    name, user_id = harbor.create_user(unique("searchme"))
    me = expect_status(harbor.get("users/current", auth=(name, PASSWORD)), 200).get_json()
    assert me["username"] == name and me["user_id"] == user_id and me["sysadmin_flag"] is False
    # Anyone logged in may search (to add members); the answer is minimal.
    other, _ = harbor.create_user()
    found = expect_status(harbor.get("users/search", auth=(other, PASSWORD), query={"username": name}), 200)
    assert [u["username"] for u in found.get_json()] == [name]
    assert found.get_json()[0]["user_id"] == user_id
    assert found.headers["X-Total-Count"] == "1"
    expect_error(harbor.get("users/search", auth=None, query={"username": name}), 401, "UNAUTHORIZED")
    # A user reads themselves, not others.
    expect_status(harbor.get(f"users/{user_id}", auth=(name, PASSWORD)), 200)
    admin_id = expect_status(harbor.get("users/current"), 200).get_json()["user_id"]
    expect_error(harbor.get(f"users/{admin_id}", auth=(name, PASSWORD)), 403, "FORBIDDEN")
    expect_error(harbor.get("users/99999999"), 404, "NOT_FOUND")
    expect_error(harbor.get("users/current", auth=None), 401, "UNAUTHORIZED")


def test_profile_update(harbor):
    name, user_id = harbor.create_user()
    body = {"email": "new@example.com", "realname": "New Name", "comment": "hello"}
    expect_status(harbor.put(f"users/{user_id}", json_body=body, auth=(name, PASSWORD)), 200)
    user = expect_status(harbor.get(f"users/{user_id}"), 200).get_json()
    assert (user["email"], user["realname"], user["comment"]) == ("new@example.com", "New Name", "hello")


def test_own_password_change_needs_the_old_password(harbor):
    name, user_id = harbor.create_user()
    new = "Changed-Pass2"
    # Wrong old password: 403, and nothing changed.
    response = harbor.put(
        f"users/{user_id}/password",
        auth=(name, PASSWORD),
        json_body={"old_password": "Wrong-Pass9", "new_password": new},
    )
    expect_error(response, 403, "FORBIDDEN")
    # Missing old password: refused too.
    response = harbor.put(f"users/{user_id}/password", auth=(name, PASSWORD), json_body={"new_password": new})
    assert response.status_code in (400, 403), response.get_data()
    expect_status(harbor.get("/v2/", auth=(name, PASSWORD)), 200)
    # A weak new password is a 400.
    response = harbor.put(
        f"users/{user_id}/password", auth=(name, PASSWORD), json_body={"old_password": PASSWORD, "new_password": "weak"}
    )
    expect_error(response, 400, "BAD_REQUEST")
    # The right old password works; the old one stops working at once.
    response = harbor.put(
        f"users/{user_id}/password", auth=(name, PASSWORD), json_body={"old_password": PASSWORD, "new_password": new}
    )
    expect_status(response, 200)
    expect_error(harbor.get("/v2/", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")
    expect_error(harbor.get("users/current", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")
    expect_status(harbor.get("/v2/", auth=(name, new)), 200)


def test_admin_resets_another_users_password_without_the_old_one(harbor):
    name, user_id = harbor.create_user()
    expect_status(harbor.put(f"users/{user_id}/password", json_body={"new_password": "Reset-Pass3"}), 200)
    expect_status(harbor.get("/v2/", auth=(name, "Reset-Pass3")), 200)
    expect_error(harbor.get("/v2/", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")


def test_a_user_cannot_change_another_users_password(harbor):
    name, _ = harbor.create_user()
    _, victim_id = harbor.create_user()
    response = harbor.put(
        f"users/{victim_id}/password",
        auth=(name, PASSWORD),
        json_body={"old_password": PASSWORD, "new_password": "Hijack-Pass4"},
    )
    expect_error(response, 403, "FORBIDDEN")


def test_sysadmin_flag_grants_and_revokes_administration(harbor):
    name, user_id = harbor.create_user()
    expect_error(harbor.get("users", auth=(name, PASSWORD)), 403, "FORBIDDEN")
    expect_status(harbor.put(f"users/{user_id}/sysadmin", json_body={"sysadmin_flag": True}), 200)
    assert expect_status(harbor.get(f"users/{user_id}"), 200).get_json()["sysadmin_flag"] is True
    expect_status(harbor.get("users", auth=(name, PASSWORD)), 200)
    expect_status(harbor.get("/v2/_catalog", auth=(name, PASSWORD)), 200)
    expect_status(harbor.put(f"users/{user_id}/sysadmin", json_body={"sysadmin_flag": False}), 200)
    expect_error(harbor.get("users", auth=(name, PASSWORD)), 403, "FORBIDDEN")


def test_delete_user(harbor):
    name, user_id = harbor.create_user()
    expect_status(harbor.get("/v2/", auth=(name, PASSWORD)), 200)
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    expect_error(harbor.get(f"users/{user_id}"), 404, "NOT_FOUND")
    expect_error(harbor.get("/v2/", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")
    expect_error(harbor.delete(f"users/{user_id}"), 404, "NOT_FOUND")


def test_admin_account_cannot_be_deleted_or_demoted(harbor):
    admin_id = expect_status(harbor.get("users/current"), 200).get_json()["user_id"]
    assert harbor.delete(f"users/{admin_id}").status_code in (403, 400)
    assert harbor.put(f"users/{admin_id}/sysadmin", json_body={"sysadmin_flag": False}).status_code in (403, 400)
    expect_status(harbor.get("users"), 200)


def test_non_admin_is_403_and_anonymous_401_on_admin_endpoints(harbor):
    name, user_id = harbor.create_user()
    _, other_id = harbor.create_user()
    calls = [
        ("GET", "users", None),
        ("POST", "users", _user_body(unique("nope"))),
        ("PUT", f"users/{other_id}/sysadmin", {"sysadmin_flag": True}),
        ("PUT", f"users/{user_id}/sysadmin", {"sysadmin_flag": True}),  # not even for oneself
        ("DELETE", f"users/{other_id}", None),
        ("GET", "configurations", None),
        ("PUT", "configurations", {"token_expiration": 10}),
    ]
    for method, path, body in calls:
        expect_error(harbor.request(method, path, auth=(name, PASSWORD), json_body=body), 403, "FORBIDDEN")
        expect_error(harbor.request(method, path, auth=None, json_body=body), 401, "UNAUTHORIZED")
    # Nothing happened.
    assert expect_status(harbor.get(f"users/{user_id}"), 200).get_json()["sysadmin_flag"] is False
    expect_status(harbor.get(f"users/{other_id}"), 200)


def test_robot_prefix_is_not_a_valid_username(harbor):
    expect_error(harbor.post("users", json_body=_user_body("robot$sneaky")), 400, "BAD_REQUEST")


def test_admin_can_use_basic_on_api_and_v2(harbor):
    assert ADMIN[0] == "admin"
    expect_status(harbor.get("users", auth=ADMIN), 200)


def test_deleting_a_user_removes_their_memberships(harbor):
    """Harbor's user delete cleans up the user's project memberships (DeleteMemberByUserID)."""
    project, _ = harbor.create_project()
    name, user_id = harbor.create_user()
    harbor.add_member(project, name, 2)
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    members = expect_status(harbor.get(f"projects/{project}/members"), 200).get_json()
    assert name not in [m["entity_name"] for m in members], members
    summary = expect_status(harbor.get(f"projects/{project}/summary"), 200).get_json()
    assert "developer_count" not in summary  # zero: omitted, as Harbor does


def test_a_recreated_user_does_not_inherit_the_old_accounts_rights(harbor):
    project, _ = harbor.create_project()
    name, user_id = harbor.create_user()
    harbor.add_member(project, name, 1)
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    _, new_id = harbor.create_user(name)
    assert new_id != user_id
    expect_error(harbor.get(f"projects/{project}", auth=(name, PASSWORD)), 404, "NOT_FOUND")
    expect_error(harbor.start_upload(f"{project}/app", auth=(name, PASSWORD)), 401, "UNAUTHORIZED")
