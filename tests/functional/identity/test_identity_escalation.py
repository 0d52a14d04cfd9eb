"""No caller hands out more than it holds, and every write checks a write action.

A robot's permissions (system and project, on create and on update), a member's role and the
system-administrator flag are the routes that grant rights; each is tried here by a caller that
holds less than it tries to give. Then the configuration and user routes are tried by robots that
hold only `read` or the wrong action.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.identity.identity_support import (
    PASSWORD,
    expect_error,
    expect_status,
    unique,
)

PULL = [{"resource": "repository", "action": "pull"}]
EVERYTHING = [{"resource": "*", "action": "*"}]


@pytest.fixture(scope="module")
def project(harbor):
    name, project_id = harbor.create_project(public=False)
    harbor.push_image(f"{name}/app", "v1")
    return name, project_id


def _login(robot: dict[str, Any]) -> tuple[str, str]:
    return robot["name"], robot["secret"]


def _system_robot(harbor, system: list[dict[str, str]], projects: dict[str, list[dict[str, str]]] | None = None):
    permissions = [{"kind": "system", "namespace": "/", "access": system}]
    permissions += [{"kind": "project", "namespace": ns, "access": a} for ns, a in (projects or {}).items()]
    return harbor.create_robot({"name": unique("sys"), "level": "system", "duration": -1, "permissions": permissions})


def _robot_names(harbor) -> set[str]:
    listed = expect_status(harbor.get("robots", query={"page_size": 100}), 200).get_json()
    return {r["name"] for r in listed}


def test_a_system_robot_cannot_create_a_robot_with_everything(harbor, project):
    """The reported hole: `robot$sysops` holding only system `*:create` made a `*:*` robot."""
    sysops = _system_robot(harbor, [{"resource": "*", "action": "create"}])
    wanted = unique("allofit")
    body = {
        "name": wanted,
        "level": "system",
        "duration": -1,
        "permissions": [
            {"kind": "system", "namespace": "/", "access": EVERYTHING},
            {"kind": "project", "namespace": "*", "access": EVERYTHING},
        ],
    }
    expect_error(harbor.post("robots", json_body=body, auth=_login(sysops)), 403, "FORBIDDEN")
    # Each half alone is refused too: the system part and the project part are both checked.
    for half in body["permissions"]:
        response = harbor.post("robots", json_body={**body, "permissions": [half]}, auth=_login(sysops))
        expect_error(response, 403, "FORBIDDEN")
    assert f"robot${wanted}" not in _robot_names(harbor)
    # What it holds it may hand on.
    child = harbor.create_robot(
        {
            "name": unique("child"),
            "level": "system",
            "duration": -1,
            "permissions": [
                {"kind": "system", "namespace": "/", "access": [{"resource": "project", "action": "create"}]}
            ],
        },
        auth=_login(sysops),
    )
    expect_status(harbor.post("projects", json_body={"project_name": unique("made")}, auth=_login(child)), 201)


def test_project_grants_of_a_system_robot_need_the_creators(harbor, project):
    name, _ = project
    creator = _system_robot(harbor, [{"resource": "*", "action": "create"}], {"*": PULL})

    def attempt(namespace: str, access: list[dict[str, str]]) -> Any:
        body = {
            "name": unique("sub"),
            "level": "system",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": namespace, "access": access}],
        }
        return harbor.post("robots", json_body=body, auth=_login(creator))

    expect_error(attempt("*", [{"resource": "repository", "action": "push"}]), 403, "FORBIDDEN")
    expect_error(attempt(name, [{"resource": "repository", "action": "*"}]), 403, "FORBIDDEN")
    expect_error(attempt("*", [{"resource": "*", "action": "pull"}]), 403, "FORBIDDEN")
    child = expect_status(attempt(name, PULL), 201).get_json()
    expect_status(harbor.pull(f"{name}/app", "v1", auth=_login(child)), 200)
    expect_status(attempt("*", PULL), 201)


def test_a_deny_of_the_creator_inside_the_wanted_scope_blocks_the_grant(harbor, project):
    name, _ = project
    creator = _system_robot(
        harbor,
        [{"resource": "*", "action": "create"}],
        {
            "*": [{"resource": "repository", "action": "*"}],
            name: [{"resource": "repository", "action": "push", "effect": "deny"}],
        },
    )
    body = {
        "name": unique("wide"),
        "level": "system",
        "duration": -1,
        "permissions": [
            {"kind": "project", "namespace": "*", "access": [{"resource": "repository", "action": "push"}]}
        ],
    }
    expect_error(harbor.post("robots", json_body=body, auth=_login(creator)), 403, "FORBIDDEN")


def test_a_robot_cannot_widen_a_robot_with_put(harbor, project):
    name, _ = project
    editor = harbor.project_robot(
        name, [{"resource": "robot", "action": "update"}, {"resource": "robot", "action": "read"}, *PULL]
    )
    target = harbor.project_robot(name, PULL)
    current = expect_status(harbor.get(f"robots/{target['id']}"), 200).get_json()
    wider = {**current, "permissions": [{"kind": "project", "namespace": name, "access": EVERYTHING}]}
    expect_error(harbor.put(f"robots/{target['id']}", json_body=wider, auth=_login(editor)), 403, "FORBIDDEN")
    # Nor itself.
    own = expect_status(harbor.get(f"robots/{editor['id']}"), 200).get_json()
    own["permissions"] = [{"kind": "project", "namespace": name, "access": EVERYTHING}]
    expect_error(harbor.put(f"robots/{editor['id']}", json_body=own, auth=_login(editor)), 403, "FORBIDDEN")
    after = expect_status(harbor.get(f"robots/{target['id']}"), 200).get_json()
    assert after["permissions"] == current["permissions"]
    expect_error(harbor.start_upload(f"{name}/app", auth=_login(target)), 401, "UNAUTHORIZED")
    # A change within the editor's own rights is fine.
    narrower = {**current, "description": "still pull only"}
    expect_status(harbor.put(f"robots/{target['id']}", json_body=narrower, auth=_login(editor)), 200)


def test_a_system_robots_put_is_checked_too(harbor):
    """Only administrators manage system robots today; the escalation check guards the PUT anyway."""
    target = _system_robot(harbor, [{"resource": "project", "action": "create"}])
    current = expect_status(harbor.get(f"robots/{target['id']}"), 200).get_json()
    wider = {**current, "permissions": [{"kind": "system", "namespace": "/", "access": EVERYTHING}]}
    expect_error(harbor.put(f"robots/{target['id']}", json_body=wider, auth=_login(target)), 403, "FORBIDDEN")
    after = expect_status(harbor.get(f"robots/{target['id']}"), 200).get_json()
    assert after["permissions"] == current["permissions"]


def test_a_robot_with_member_rights_cannot_make_a_project_admin(harbor, project):
    name, _ = project
    user, _ = harbor.create_user()
    other, _ = harbor.create_user()
    manager = harbor.project_robot(
        name,
        [{"resource": "member", "action": a} for a in ("create", "update", "read", "list")] + PULL,
    )
    body = {"role_id": 1, "member_user": {"username": user}}
    expect_error(harbor.post(f"projects/{name}/members", json_body=body, auth=_login(manager)), 403, "FORBIDDEN")
    listed = expect_status(harbor.get(f"projects/{name}/members"), 200).get_json()
    assert user not in [m["entity_name"] for m in listed]
    # Raising an existing guest is the same grant.
    member_id = harbor.add_member(name, other, 3)
    response = harbor.put(f"projects/{name}/members/{member_id}", json_body={"role_id": 1}, auth=_login(manager))
    expect_error(response, 403, "FORBIDDEN")
    assert expect_status(harbor.get(f"projects/{name}/members/{member_id}"), 200).get_json()["role_id"] == 3
    expect_error(harbor.start_upload(f"{name}/app", auth=(other, PASSWORD)), 401, "UNAUTHORIZED")


def test_a_project_admin_still_gives_any_role(harbor):
    owner, _ = harbor.create_user()
    name, _ = harbor.create_project(auth=(owner, PASSWORD))
    user, _ = harbor.create_user()
    harbor.add_member(name, user, 1, auth=(owner, PASSWORD))


def test_user_rights_of_a_system_robot_do_not_make_administrators(harbor):
    users = _system_robot(harbor, [{"resource": "user", "action": a} for a in ("create", "read", "update", "list")])
    _, user_id = harbor.create_user()
    response = harbor.put(f"users/{user_id}/sysadmin", json_body={"sysadmin_flag": True}, auth=_login(users))
    expect_error(response, 403, "FORBIDDEN")
    assert expect_status(harbor.get(f"users/{user_id}"), 200).get_json()["sysadmin_flag"] is False
    # It may create users (Harbor's `user:create`), which start without any right.
    created = harbor.post("users", json_body={"username": unique("made"), "password": PASSWORD}, auth=_login(users))
    expect_status(created, 201)


# ---------------------------------------------------------------------------- actions of write routes


def test_put_configurations_needs_update_not_read(harbor):
    """The reported hole: a robot with system `*:read` changed `token_expiration`."""
    reader = _system_robot(harbor, [{"resource": "*", "action": "read"}])
    before = expect_status(harbor.get("configurations"), 200).get_json()
    expect_status(harbor.get("configurations", auth=_login(reader)), 200)
    for change in ({"token_expiration": 5}, {"robot_name_prefix": "locked_"}):
        expect_error(harbor.put("configurations", json_body=change, auth=_login(reader)), 403, "FORBIDDEN")
    assert expect_status(harbor.get("configurations"), 200).get_json() == before
    writer = _system_robot(harbor, [{"resource": "*", "action": "update"}])
    token_expiration = before["token_expiration"]["value"]
    expect_status(
        harbor.put("configurations", json_body={"token_expiration": token_expiration}, auth=_login(writer)), 200
    )


def test_user_routes_check_their_own_action(harbor):
    creator = _system_robot(harbor, [{"resource": "user", "action": "create"}])
    lister = _system_robot(harbor, [{"resource": "user", "action": "list"}])
    expect_error(harbor.get("users", auth=_login(creator)), 403, "FORBIDDEN")
    expect_status(harbor.get("users", auth=_login(lister)), 200)
    _, user_id = harbor.create_user()
    expect_error(harbor.delete(f"users/{user_id}", auth=_login(creator)), 403, "FORBIDDEN")
    expect_status(harbor.get(f"users/{user_id}"), 200)
