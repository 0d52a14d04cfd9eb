"""/api/v2.0/projects: create, look up, metadata, summary, deletability, visibility, restriction."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.functional.identity.identity_support import (
    API,
    PASSWORD,
    expect_error,
    expect_status,
    unique,
)


@pytest.fixture(scope="module")
def user(harbor):
    name, user_id = harbor.create_user()
    return name, user_id


def test_create_returns_201_and_location(harbor):
    name = unique("newproj")
    response = harbor.post("projects", json_body={"project_name": name, "metadata": {"public": "false"}})
    expect_status(response, 201)
    location = response.headers["Location"]
    assert re.fullmatch(rf"{API}/projects/\d+", location), location
    project = expect_status(harbor.get(location), 200).get_json()
    assert project["name"] == name
    assert project["project_id"] == int(location.rsplit("/", 1)[1])
    assert project["metadata"]["public"] == "false"
    for key in ("owner_id", "owner_name", "creation_time", "update_time", "current_user_role_ids", "metadata"):
        assert key in project, key
    assert project["owner_name"] == "admin"


def test_create_with_resource_name_in_location(harbor):
    name = unique("named")
    response = harbor.post(
        "projects", json_body={"project_name": name}, headers={"X-Resource-Name-In-Location": "true"}
    )
    expect_status(response, 201)
    assert response.headers["Location"] == f"{API}/projects/{name}"


def test_duplicate_project_is_409(harbor):
    name, _ = harbor.create_project()
    expect_error(harbor.post("projects", json_body={"project_name": name}), 409, "CONFLICT")


@pytest.mark.parametrize("name", ["UPPER", "has space", "-leading", "trailing-", "a/b", ""])
def test_invalid_project_names_are_400(harbor, name):
    expect_error(harbor.post("projects", json_body={"project_name": name}), 400, "BAD_REQUEST")


def test_head_by_project_name(harbor):
    name, _ = harbor.create_project()
    response = harbor.head("projects", query={"project_name": name})
    assert response.status_code == 200
    assert harbor.head("projects", query={"project_name": unique("absent")}).status_code == 404


def test_get_by_id_by_name_and_numeric_name(harbor):
    name, project_id = harbor.create_project()
    by_id = expect_status(harbor.get(f"projects/{project_id}"), 200).get_json()
    by_name = expect_status(harbor.get(f"projects/{name}"), 200).get_json()
    assert by_id["project_id"] == by_name["project_id"] == project_id
    # A project whose name is all digits: the header says "this is a name".
    numeric = str(900_000_000 + uuid.uuid4().int % 99_999_999)
    _, numeric_id = harbor.create_project(numeric)
    expect_error(harbor.get(f"projects/{numeric}"), 404, "NOT_FOUND")  # read as an id, which does not exist
    found = expect_status(harbor.get(f"projects/{numeric}", headers={"X-Is-Resource-Name": "true"}), 200).get_json()
    assert found["project_id"] == numeric_id and found["name"] == numeric
    expect_error(harbor.get(f"projects/{unique('nope')}"), 404, "NOT_FOUND")
    expect_error(harbor.get("projects/987654321"), 404, "NOT_FOUND")


def test_update_metadata(harbor):
    name, project_id = harbor.create_project()
    body = {"metadata": {"public": "true", "auto_scan": "true", "severity": "high", "prevent_vul": "true"}}
    expect_status(harbor.put(f"projects/{project_id}", json_body=body), 200)
    metadata = expect_status(harbor.get(f"projects/{name}"), 200).get_json()["metadata"]
    assert metadata["public"] == "true"
    assert metadata["auto_scan"] == "true"
    assert metadata["severity"] == "high"
    assert metadata["prevent_vul"] == "true"
    # Partial updates keep the other keys.
    expect_status(harbor.put(f"projects/{project_id}", json_body={"metadata": {"auto_scan": "false"}}), 200)
    metadata = expect_status(harbor.get(f"projects/{name}"), 200).get_json()["metadata"]
    assert metadata["auto_scan"] == "false" and metadata["public"] == "true" and metadata["severity"] == "high"


@pytest.mark.parametrize(
    "metadata",
    [{"public": "maybe"}, {"auto_scan": "yes"}, {"severity": "extreme"}, {"public": 1}, {"prevent_vul": ["true"]}],
)
def test_invalid_metadata_is_400(harbor, metadata):
    _, project_id = harbor.create_project()
    expect_error(harbor.put(f"projects/{project_id}", json_body={"metadata": metadata}), 400, "BAD_REQUEST")
    expect_error(
        harbor.post("projects", json_body={"project_name": unique("badmeta"), "metadata": metadata}), 400, "BAD_REQUEST"
    )


def test_metadatas_crud(harbor):
    name, project_id = harbor.create_project()
    listed = expect_status(harbor.get(f"projects/{project_id}/metadatas"), 200).get_json()
    assert listed.get("public") == "false"
    expect_status(harbor.post(f"projects/{project_id}/metadatas", json_body={"auto_scan": "true"}), 200)
    assert expect_status(harbor.get(f"projects/{name}/metadatas/auto_scan"), 200).get_json() == {"auto_scan": "true"}
    expect_status(harbor.put(f"projects/{name}/metadatas/auto_scan", json_body={"auto_scan": "false"}), 200)
    assert expect_status(harbor.get(f"projects/{name}/metadatas/auto_scan"), 200).get_json() == {"auto_scan": "false"}
    # PUT must name the same key as the path; values are validated.
    expect_error(harbor.put(f"projects/{name}/metadatas/auto_scan", json_body={"severity": "low"}), 400, "BAD_REQUEST")
    expect_error(
        harbor.put(f"projects/{name}/metadatas/auto_scan", json_body={"auto_scan": "perhaps"}), 400, "BAD_REQUEST"
    )
    expect_status(harbor.delete(f"projects/{name}/metadatas/auto_scan"), 200)
    expect_error(harbor.get(f"projects/{name}/metadatas/auto_scan"), 404, "NOT_FOUND")
    expect_error(harbor.delete(f"projects/{name}/metadatas/auto_scan"), 404, "NOT_FOUND")
    assert "auto_scan" not in expect_status(harbor.get(f"projects/{name}"), 200).get_json()["metadata"]


def test_summary(harbor, user):
    name, project_id = harbor.create_project(storage_limit=10_000_000)
    harbor.add_member(name, user[0], 2)
    harbor.push_image(f"{name}/one")
    harbor.push_image(f"{name}/two")
    summary = expect_status(harbor.get(f"projects/{project_id}/summary"), 200).get_json()
    assert summary["repo_count"] == 2
    assert summary["project_admin_count"] == 1  # the creator
    assert summary["developer_count"] == 1
    # Harbor omits zero counts (omitempty).
    assert not {"maintainer_count", "guest_count", "limited_guest_count"} & set(summary)
    assert summary["quota"]["hard"]["storage"] == 10_000_000
    assert summary["quota"]["used"]["storage"] > 0
    # A member may read it, a stranger may not see the project at all.
    expect_status(harbor.get(f"projects/{name}/summary", auth=(user[0], PASSWORD)), 200)
    stranger, _ = harbor.create_user()
    expect_error(harbor.get(f"projects/{name}/summary", auth=(stranger, PASSWORD)), 404, "NOT_FOUND")


def test_deletable_and_delete(harbor):
    name, project_id = harbor.create_project()
    assert expect_status(harbor.get(f"projects/{project_id}/_deletable"), 200).get_json()["deletable"] is True
    harbor.push_image(f"{name}/app")
    verdict = expect_status(harbor.get(f"projects/{project_id}/_deletable"), 200).get_json()
    assert "deletable" not in verdict and verdict["message"]  # false: omitted, as Harbor does
    expect_error(harbor.delete(f"projects/{project_id}"), 412, "PRECONDITION")
    expect_status(harbor.get(f"projects/{project_id}"), 200)

    empty, empty_id = harbor.create_project()
    expect_status(harbor.delete(f"projects/{empty}"), 200)
    expect_error(harbor.get(f"projects/{empty_id}"), 404, "NOT_FOUND")
    assert harbor.head("projects", query={"project_name": empty}).status_code == 404
    expect_error(harbor.delete(f"projects/{empty_id}"), 404, "NOT_FOUND")
    # The name can be used again.
    harbor.create_project(empty)


def test_private_project_is_invisible_to_non_members(harbor, user):
    name, project_id = harbor.create_project(public=False)
    for path in (
        f"projects/{project_id}",
        f"projects/{name}",
        f"projects/{name}/summary",
        f"projects/{name}/metadatas",
        f"projects/{name}/members",
    ):
        expect_error(harbor.get(path, auth=(user[0], PASSWORD)), 404, "NOT_FOUND")
        expect_error(harbor.get(path, auth=None), 401, "UNAUTHORIZED")
    names = [
        p["name"]
        for p in expect_status(
            harbor.get("projects", auth=(user[0], PASSWORD), query={"page_size": 100}), 200
        ).get_json()
    ]
    assert name not in names


def test_list_shows_public_and_member_projects(harbor):
    viewer, _ = harbor.create_user()
    public, _ = harbor.create_project(public=True)
    private, _ = harbor.create_project(public=False)
    member_of, _ = harbor.create_project(public=False)
    harbor.add_member(member_of, viewer, 3)

    def names(auth):
        response = expect_status(harbor.get("projects", auth=auth, query={"page_size": 100}), 200)
        return {p["name"]: p for p in response.get_json()}

    seen = names((viewer, PASSWORD))
    assert public in seen and member_of in seen and "library" in seen
    assert private not in seen
    assert seen[member_of]["current_user_role_ids"] == [3]
    anonymous = names(None)
    assert public in anonymous and private not in anonymous and member_of not in anonymous
    admin = names(("admin", "Harbor12345"))
    assert {public, private, member_of} <= set(admin)
    # Filters.
    only_public = expect_status(
        harbor.get("projects", auth=(viewer, PASSWORD), query={"public": "true", "page_size": 100}), 200
    ).get_json()
    assert all(p["metadata"]["public"] == "true" for p in only_public)
    by_name = expect_status(harbor.get("projects", query={"name": public}), 200).get_json()
    assert [p["name"] for p in by_name] == [public]


def test_normal_user_creates_a_project_and_becomes_its_admin(harbor, user):
    name, project_id = harbor.create_project(auth=(user[0], PASSWORD))
    project = expect_status(harbor.get(f"projects/{project_id}", auth=(user[0], PASSWORD)), 200).get_json()
    assert project["owner_name"] == user[0]
    assert project["current_user_role_ids"] == [1]
    members = expect_status(harbor.get(f"projects/{name}/members", auth=(user[0], PASSWORD)), 200).get_json()
    assert [(m["entity_name"], m["role_id"]) for m in members] == [(user[0], 1)]


def test_a_normal_user_cannot_set_a_storage_limit(harbor, user):
    response = harbor.post(
        "projects", auth=(user[0], PASSWORD), json_body={"project_name": unique("limited"), "storage_limit": 1024}
    )
    expect_error(response, 403, "FORBIDDEN")


def test_adminonly_creation_restriction(harbor, user):
    expect_status(harbor.put("configurations", json_body={"project_creation_restriction": "adminonly"}), 200)
    try:
        config = expect_status(harbor.get("configurations"), 200).get_json()
        assert config["project_creation_restriction"] == {"value": "adminonly", "editable": True}
        info = expect_status(harbor.get("systeminfo", auth=(user[0], PASSWORD)), 200).get_json()
        assert info["project_creation_restriction"] == "adminonly"
        response = harbor.post("projects", auth=(user[0], PASSWORD), json_body={"project_name": unique("denied")})
        expect_error(response, 403, "FORBIDDEN")
        harbor.create_project()  # the administrator still can
    finally:
        expect_status(harbor.put("configurations", json_body={"project_creation_restriction": "everyone"}), 200)
    harbor.create_project(auth=(user[0], PASSWORD))


def test_anonymous_cannot_create_projects(harbor):
    expect_error(harbor.post("projects", auth=None, json_body={"project_name": unique("anon")}), 401, "UNAUTHORIZED")


def test_toggling_public_opens_and_closes_anonymous_pulls(harbor):
    name, project_id = harbor.create_project(public=False)
    harbor.push_image(f"{name}/app", "v1")
    expect_error(harbor.pull(f"{name}/app", "v1", auth=None), 401, "UNAUTHORIZED")
    expect_status(harbor.put(f"projects/{name}/metadatas/public", json_body={"public": "true"}), 200)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=None), 200)
    expect_status(harbor.get(f"projects/{project_id}", auth=None), 200)
    expect_status(harbor.put(f"projects/{project_id}", json_body={"metadata": {"public": "false"}}), 200)
    expect_error(harbor.pull(f"{name}/app", "v1", auth=None), 401, "UNAUTHORIZED")
    expect_error(harbor.get(f"projects/{project_id}", auth=None), 401, "UNAUTHORIZED")
