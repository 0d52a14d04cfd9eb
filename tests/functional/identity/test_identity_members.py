"""/api/v2.0/projects/{p}/members: add (each role), validation, list, get, update, delete."""

from __future__ import annotations

import re

import pytest

from tests.functional.identity.identity_support import (
    API,
    PASSWORD,
    ROLE_IDS,
    expect_error,
    expect_status,
    unique,
)

ROLE_NAMES = {v: k for k, v in ROLE_IDS.items()}


@pytest.fixture(scope="module")
def project(harbor):
    return harbor.create_project()


@pytest.mark.parametrize("role_id", [1, 2, 3, 4, 5])
def test_add_member_by_username_with_each_role(harbor, project, role_id):
    name, project_id = project
    username, user_id = harbor.create_user()
    response = harbor.post(
        f"projects/{name}/members", json_body={"role_id": role_id, "member_user": {"username": username}}
    )
    expect_status(response, 201)
    location = response.headers["Location"]
    assert re.fullmatch(rf"{API}/projects/{name}/members/\d+", location), location
    member_id = int(location.rsplit("/", 1)[1])
    member = expect_status(harbor.get(f"projects/{project_id}/members/{member_id}"), 200).get_json()
    assert member == {
        "id": member_id,
        "project_id": project_id,
        "entity_name": username,
        "entity_type": "u",
        "entity_id": user_id,
        "role_id": role_id,
        "role_name": ROLE_NAMES[role_id],
    }
    # The membership is effective at once.
    project_view = expect_status(harbor.get(f"projects/{name}", auth=(username, PASSWORD)), 200).get_json()
    assert project_view["current_user_role_ids"] == [role_id]


def test_add_member_by_user_id(harbor, project):
    name, _ = project
    username, user_id = harbor.create_user()
    response = harbor.post(f"projects/{name}/members", json_body={"role_id": 3, "member_user": {"user_id": user_id}})
    expect_status(response, 201)
    listed = expect_status(harbor.get(f"projects/{name}/members", query={"entityname": username}), 200).get_json()
    assert [(m["entity_name"], m["role_id"]) for m in listed] == [(username, 3)]


@pytest.mark.parametrize("role_id", [0, 6, -1, 100, "2", 2.0, True])
def test_invalid_role_is_400(harbor, project, role_id):
    name, _ = project
    username, _ = harbor.create_user()
    response = harbor.post(
        f"projects/{name}/members", json_body={"role_id": role_id, "member_user": {"username": username}}
    )
    expect_error(response, 400, "BAD_REQUEST")
    listed = expect_status(harbor.get(f"projects/{name}/members", query={"entityname": username}), 200).get_json()
    assert listed == []


def test_duplicate_member_is_409(harbor, project):
    name, _ = project
    username, _ = harbor.create_user()
    harbor.add_member(name, username, 2)
    response = harbor.post(f"projects/{name}/members", json_body={"role_id": 3, "member_user": {"username": username}})
    expect_error(response, 409, "CONFLICT")


def test_unknown_user_is_404_and_missing_member_user_is_400(harbor, project):
    name, _ = project
    response = harbor.post(
        f"projects/{name}/members", json_body={"role_id": 2, "member_user": {"username": unique("ghost")}}
    )
    expect_error(response, 404, "NOT_FOUND")
    expect_error(harbor.post(f"projects/{name}/members", json_body={"role_id": 2}), 400, "BAD_REQUEST")
    expect_error(
        harbor.post(f"projects/{name}/members", json_body={"role_id": 2, "member_user": {}}), 400, "BAD_REQUEST"
    )
    response = harbor.post(
        f"projects/{unique('noproj')}/members", json_body={"role_id": 2, "member_user": {"username": "admin"}}
    )
    expect_error(response, 404, "NOT_FOUND")


def test_list_get_update_delete(harbor):
    name, project_id = harbor.create_project()
    users = [harbor.create_user()[0] for _ in range(3)]
    ids = [harbor.add_member(name, u, role) for u, role in zip(users, (2, 3, 4), strict=True)]
    response = expect_status(harbor.get(f"projects/{project_id}/members"), 200)
    listed = response.get_json()
    assert response.headers["X-Total-Count"] == str(len(listed)) == "4"  # the creator (admin) + 3
    by_name = {m["entity_name"]: m for m in listed}
    assert by_name["admin"]["role_id"] == 1 and by_name["admin"]["role_name"] == "projectAdmin"
    assert [by_name[u]["role_name"] for u in users] == ["developer", "guest", "maintainer"]
    paged = expect_status(harbor.get(f"projects/{project_id}/members", query={"page": 2, "page_size": 3}), 200)
    assert len(paged.get_json()) == 1 and paged.headers["X-Total-Count"] == "4"

    # Update the guest to developer: their rights follow at once.
    guest_auth = (users[1], PASSWORD)
    expect_error(harbor.start_upload(f"{name}/app", auth=guest_auth), 401, "UNAUTHORIZED")
    expect_status(harbor.put(f"projects/{name}/members/{ids[1]}", json_body={"role_id": 2}), 200)
    member = expect_status(harbor.get(f"projects/{name}/members/{ids[1]}"), 200).get_json()
    assert (member["role_id"], member["role_name"]) == (2, "developer")
    assert harbor.start_upload(f"{name}/app", auth=guest_auth).status_code == 202
    expect_error(harbor.put(f"projects/{name}/members/{ids[1]}", json_body={"role_id": 9}), 400, "BAD_REQUEST")

    # Delete: the user loses access (the project is private, so it disappears for them).
    expect_status(harbor.delete(f"projects/{name}/members/{ids[1]}"), 200)
    expect_error(harbor.get(f"projects/{name}/members/{ids[1]}"), 404, "NOT_FOUND")
    expect_error(harbor.delete(f"projects/{name}/members/{ids[1]}"), 404, "NOT_FOUND")
    expect_error(harbor.put(f"projects/{name}/members/{ids[1]}", json_body={"role_id": 2}), 404, "NOT_FOUND")
    expect_error(harbor.get(f"projects/{name}", auth=guest_auth), 404, "NOT_FOUND")
    expect_error(harbor.start_upload(f"{name}/app", auth=guest_auth), 401, "UNAUTHORIZED")
    expect_error(harbor.get(f"projects/{name}/members/987654"), 404, "NOT_FOUND")
