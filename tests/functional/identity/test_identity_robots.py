"""/api/v2.0/robots: robot accounts, and what a robot can really do on /v2 and the token service."""

from __future__ import annotations

import re
import time

import pytest

from tests.functional.identity.identity_support import (
    API,
    PASSWORD,
    SERVICE,
    actions_in,
    envelope,
    expect_error,
    expect_status,
    unique,
)

PULL = [{"resource": "repository", "action": "pull"}]
PULL_PUSH = [{"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "push"}]
DAY = 86_400


@pytest.fixture(scope="module")
def project(harbor):
    name, project_id = harbor.create_project(public=False)
    harbor.push_image(f"{name}/app", "v1")
    return name, project_id


def _login(robot):
    return robot["name"], robot["secret"]


def test_create_project_robot(harbor, project):
    name, _ = project
    short = unique("ci")
    before = int(time.time())
    response = harbor.post(
        "robots",
        json_body={
            "name": short,
            "description": "CI pusher",
            "level": "project",
            "duration": 1,
            "permissions": [{"kind": "project", "namespace": name, "access": PULL_PUSH}],
        },
    )
    expect_status(response, 201)
    created = response.get_json()
    assert set(created) >= {"id", "name", "secret", "expires_at", "creation_time"}
    assert created["name"] == f"robot${name}+{short}"
    assert re.fullmatch(rf"{API}/robots/{created['id']}", response.headers["Location"])
    assert before + DAY - 5 <= created["expires_at"] <= int(time.time()) + DAY + 5
    secret = created["secret"]
    assert 8 <= len(secret) <= 128 and re.search("[a-z]", secret) and re.search("[A-Z]", secret)
    assert re.search("[0-9]", secret)
    # The secret is shown once: never in GET or list.
    robot = expect_status(harbor.get(f"robots/{created['id']}"), 200).get_json()
    assert "secret" not in robot
    assert robot["name"] == created["name"] and robot["level"] == "project" and robot["description"] == "CI pusher"
    assert robot["duration"] == 1 and robot["expires_at"] == created["expires_at"] and robot["disable"] is False
    assert robot["permissions"] == [
        {
            "kind": "project",
            "namespace": name,
            "access": [
                {"resource": "repository", "action": "pull", "effect": "allow"},
                {"resource": "repository", "action": "push", "effect": "allow"},
            ],
        }
    ]
    listed = expect_status(harbor.get("robots", query={"page_size": 100}), 200).get_json()
    assert all("secret" not in r for r in listed)


def test_create_system_robot(harbor, project):
    name, _ = project
    short = unique("sys")
    created = harbor.create_robot(
        {
            "name": short,
            "level": "system",
            "duration": -1,
            "permissions": [
                {"kind": "system", "namespace": "/", "access": [{"resource": "project", "action": "create"}]},
                {"kind": "project", "namespace": "*", "access": PULL},
            ],
        }
    )
    assert created["name"] == f"robot${short}"
    assert created["expires_at"] == -1
    auth = _login(created)
    # Pull in any project ("*"), create projects (system permission), but not push.
    expect_status(harbor.pull(f"{name}/app", "v1", auth=auth), 200)
    expect_error(harbor.start_upload(f"{name}/app", auth=auth), 401, "UNAUTHORIZED")
    harbor.create_project(auth=auth)
    # A non-administrator cannot create system robots.
    user, _ = harbor.create_user()
    response = harbor.post(
        "robots",
        auth=(user, PASSWORD),
        json_body={
            "name": unique("sys"),
            "level": "system",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": "*", "access": PULL}],
        },
    )
    expect_error(response, 403, "FORBIDDEN")


def test_default_duration_comes_from_configuration(harbor, project):
    before = int(time.time())
    robot = harbor.create_robot(
        {
            "name": unique("dflt"),
            "level": "project",  # no duration given
            "permissions": [{"kind": "project", "namespace": project[0], "access": PULL}],
        }
    )
    assert before + 30 * DAY - 5 <= robot["expires_at"] <= int(time.time()) + 30 * DAY + 5


@pytest.mark.parametrize(
    "secret", ["short1A", "alllowercase1", "ALLUPPER1", "NoDigitsHere", "A1" + "x" * 127, 12345678]
)
def test_provided_secret_must_be_strong(harbor, project, secret):
    body = {
        "name": unique("weak"),
        "level": "project",
        "duration": -1,
        "secret": secret,
        "permissions": [{"kind": "project", "namespace": project[0], "access": PULL}],
    }
    expect_error(harbor.post("robots", json_body=body), 400, "BAD_REQUEST")


def test_provided_strong_secret_is_used(harbor, project):
    robot = harbor.project_robot(project[0], PULL, secret="Chosen-Secret42")
    assert robot["secret"] == "Chosen-Secret42"
    expect_status(harbor.pull(f"{project[0]}/app", "v1", auth=(robot["name"], "Chosen-Secret42")), 200)


def test_duplicate_and_invalid_robots(harbor, project):
    short = unique("dup")
    harbor.project_robot(project[0], PULL, name=short)
    body = {
        "name": short,
        "level": "project",
        "duration": -1,
        "permissions": [{"kind": "project", "namespace": project[0], "access": PULL}],
    }
    expect_error(harbor.post("robots", json_body=body), 409, "CONFLICT")
    bad_bodies = [
        {**body, "name": "Bad Name"},
        {**body, "name": "has+plus"},
        {**body, "level": "galaxy"},
        {**body, "duration": -5},
        {**body, "permissions": []},
        {
            **body,
            "permissions": [
                {"kind": "project", "namespace": project[0], "access": [{"resource": "repository", "action": "fly"}]}
            ],
        },
        {
            **body,
            "permissions": [
                {"kind": "project", "namespace": project[0], "access": [{"resource": "spaceship", "action": "pull"}]}
            ],
        },
        {
            **body,
            "permissions": [
                {
                    "kind": "project",
                    "namespace": project[0],
                    "access": [{"resource": "repository", "action": "pull", "effect": "maybe"}],
                }
            ],
        },
        {**body, "permissions": [{"kind": "system", "namespace": "/", "access": PULL}]},  # system perm, project robot
    ]
    for bad in bad_bodies:
        renamed = {**bad, "name": bad["name"] if bad["name"] != short else unique("bad")}
        expect_error(harbor.post("robots", json_body=renamed), 400, "BAD_REQUEST")
    body = {
        **body,
        "name": unique("ghost"),
        "permissions": [{"kind": "project", "namespace": unique("noproj"), "access": PULL}],
    }
    expect_error(harbor.post("robots", json_body=body), 404, "NOT_FOUND")


def test_list_for_admin_and_for_project_members(harbor):
    name, project_id = harbor.create_project()
    other, _ = harbor.create_project()
    mine = [harbor.project_robot(name, PULL)["name"] for _ in range(2)]
    theirs = harbor.project_robot(other, PULL)["name"]

    everything = expect_status(harbor.get("robots", query={"page_size": 100}), 200)
    names = [r["name"] for r in everything.get_json()]
    assert set(mine) | {theirs} <= set(names)
    assert int(everything.headers["X-Total-Count"]) >= 3

    developer, _ = harbor.create_user()
    harbor.add_member(name, developer, 2)
    scoped = harbor.get("robots", auth=(developer, PASSWORD), query={"q": f"Level=project,ProjectID={project_id}"})
    assert sorted(r["name"] for r in expect_status(scoped, 200).get_json()) == sorted(mine)
    assert scoped.headers["X-Total-Count"] == "2"
    expect_error(harbor.get("robots", auth=(developer, PASSWORD)), 403, "FORBIDDEN")
    expect_error(harbor.get("robots", auth=None), 401, "UNAUTHORIZED")
    stranger, _ = harbor.create_user()
    expect_error(
        harbor.get("robots", auth=(stranger, PASSWORD), query={"q": f"Level=project,ProjectID={project_id}"}),
        404,
        "NOT_FOUND",
    )
    # Paging.
    page = expect_status(
        harbor.get("robots", query={"q": f"Level=project,ProjectID={project_id}", "page_size": 1}), 200
    )
    assert len(page.get_json()) == 1 and 'rel="next"' in page.headers["Link"]


def test_get_robot_permissions(harbor, project):
    robot = harbor.project_robot(project[0], PULL)
    guest, limited, stranger = (harbor.create_user()[0] for _ in range(3))
    harbor.add_member(project[0], guest, 3)
    harbor.add_member(project[0], limited, 5)
    expect_status(harbor.get(f"robots/{robot['id']}", auth=(guest, PASSWORD)), 200)
    expect_error(harbor.get(f"robots/{robot['id']}", auth=(limited, PASSWORD)), 403, "FORBIDDEN")
    expect_error(harbor.get(f"robots/{robot['id']}", auth=(stranger, PASSWORD)), 404, "NOT_FOUND")
    expect_error(harbor.get(f"robots/{robot['id']}", auth=None), 401, "UNAUTHORIZED")
    expect_error(harbor.get("robots/987654321"), 404, "NOT_FOUND")


def test_put_accepts_the_object_get_returned(harbor, project):
    """Harbor clients (portal, Terraform) PUT back the whole robot they read, with their changes."""
    robot = harbor.project_robot(project[0], PULL)
    current = expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={**current, "description": "changed"}), 200)
    assert expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()["description"] == "changed"


def test_update_description_disable_and_permissions(harbor, project):
    name, _ = project
    robot = harbor.project_robot(name, PULL)
    auth = _login(robot)

    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"description": "changed"}), 200)
    assert expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()["description"] == "changed"

    # Grant push: the token and Basic rights follow at once.
    expect_error(harbor.start_upload(f"{name}/app", auth=auth), 401, "UNAUTHORIZED")
    permissions = [{"kind": "project", "namespace": name, "access": PULL_PUSH}]
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"permissions": permissions}), 200)
    assert expect_status(harbor.start_upload(f"{name}/app", auth=auth), 202)
    assert actions_in(harbor.token([f"repository:{name}/app:pull,push"], auth=auth), f"{name}/app") == {"pull", "push"}
    # A project robot's permissions cannot move to another project.
    other, _ = harbor.create_project()
    moved = [{"kind": "project", "namespace": other, "access": PULL}]
    expect_error(harbor.put(f"robots/{robot['id']}", json_body={"permissions": moved}), 400, "BAD_REQUEST")

    # Disable: refused everywhere with 401; enable again: works again.
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"disable": True}), 200)
    assert expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()["disable"] is True
    expect_error(harbor.pull(f"{name}/app", "v1", auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.get("/v2/", auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.token_response([f"repository:{name}/app:pull"], auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.get(f"projects/{name}", auth=auth), 401, "UNAUTHORIZED")
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"disable": False}), 200)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=auth), 200)

    expect_error(harbor.put(f"robots/{robot['id']}", json_body={"disable": "yes"}), 400, "BAD_REQUEST")
    expect_error(harbor.put(f"robots/{robot['id']}", json_body={"duration": "long"}), 400, "BAD_REQUEST")


def test_disabled_robot_cannot_refresh_its_token(harbor, project):
    name, _ = project
    robot = harbor.project_robot(name, PULL)
    response = harbor.token_response([f"repository:{name}/app:pull"], auth=_login(robot), offline_token="true")
    refresh = expect_status(response, 200).get_json()["refresh_token"]
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"disable": True}), 200)
    response = harbor.oauth(
        {
            "grant_type": "refresh_token",
            "client_id": "docker",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": f"repository:{name}/app:pull",
        }
    )
    expect_error(response, 401, "UNAUTHORIZED")


def test_refresh_secret(harbor, project):
    name, _ = project
    robot = harbor.project_robot(name, PULL)
    old = _login(robot)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=old), 200)
    refreshed = expect_status(harbor.patch(f"robots/{robot['id']}", json_body={}), 200).get_json()["secret"]
    assert refreshed != robot["secret"]
    expect_error(harbor.pull(f"{name}/app", "v1", auth=old), 401, "UNAUTHORIZED")
    expect_error(harbor.token_response([f"repository:{name}/app:pull"], auth=old), 401, "UNAUTHORIZED")
    expect_status(harbor.pull(f"{name}/app", "v1", auth=(robot["name"], refreshed)), 200)
    # Set a chosen secret; weak ones are refused.
    expect_status(harbor.patch(f"robots/{robot['id']}", json_body={"secret": "Picked-Secret7"}), 200)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=(robot["name"], "Picked-Secret7")), 200)
    expect_error(harbor.pull(f"{name}/app", "v1", auth=(robot["name"], refreshed)), 401, "UNAUTHORIZED")
    expect_error(harbor.patch(f"robots/{robot['id']}", json_body={"secret": "weak"}), 400, "BAD_REQUEST")
    expect_error(
        harbor.patch(f"robots/{robot['id']}", json_body={"secret": "Picked-Secret8", "x": 1}), 400, "BAD_REQUEST"
    )
    # Only someone who may update the robot may refresh it.
    developer, _ = harbor.create_user()
    harbor.add_member(name, developer, 2)
    expect_error(harbor.patch(f"robots/{robot['id']}", auth=(developer, PASSWORD), json_body={}), 403, "FORBIDDEN")
    expect_error(harbor.patch(f"robots/{robot['id']}", auth=None, json_body={}), 401, "UNAUTHORIZED")


def test_delete_robot(harbor, project):
    name, _ = project
    robot = harbor.project_robot(name, PULL)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=_login(robot)), 200)
    maintainer, _ = harbor.create_user()
    harbor.add_member(name, maintainer, 4)
    expect_error(harbor.delete(f"robots/{robot['id']}", auth=(maintainer, PASSWORD)), 403, "FORBIDDEN")
    expect_status(harbor.delete(f"robots/{robot['id']}"), 200)
    expect_error(harbor.get(f"robots/{robot['id']}"), 404, "NOT_FOUND")
    expect_error(harbor.pull(f"{name}/app", "v1", auth=_login(robot)), 401, "UNAUTHORIZED")
    expect_error(harbor.delete(f"robots/{robot['id']}"), 404, "NOT_FOUND")


def test_pull_only_robot_can_do_exactly_that(harbor, project):
    name, _ = project
    repo = f"{name}/app"
    robot = harbor.project_robot(name, PULL)
    auth = _login(robot)
    expect_status(harbor.get("/v2/", auth=auth), 200)
    expect_status(harbor.pull(repo, "v1", auth=auth), 200)
    expect_status(harbor.get(f"/v2/{repo}/tags/list", auth=auth), 200)
    expect_error(harbor.start_upload(repo, auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.upload_blob(repo, b"robot data", auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.get("/v2/_catalog", auth=auth), (401, 403), ("UNAUTHORIZED", "DENIED"))

    token = harbor.token([f"repository:{repo}:pull,push,delete"], auth=auth)
    assert actions_in(token, repo) == {"pull"}
    expect_status(harbor.pull(repo, "v1", auth=token), 200)
    expect_error(harbor.start_upload(repo, auth=token), 401, "UNAUTHORIZED")
    # Another project is closed to it.
    other, _ = harbor.create_project()
    harbor.push_image(f"{other}/app", "v1")
    expect_error(harbor.pull(f"{other}/app", "v1", auth=auth), 401, "UNAUTHORIZED")
    assert actions_in(harbor.token([f"repository:{other}/app:pull"], auth=auth), f"{other}/app") == set()


def test_push_robot_pushes_and_delete_needs_artifact_delete(harbor, project):
    name, _ = project
    repo = f"{name}/robot-pushed"
    pusher = harbor.project_robot(name, PULL_PUSH)
    digest, _ = harbor.push_image(repo, "v1", auth=_login(pusher))
    expect_error(harbor.delete(f"/v2/{repo}/manifests/{digest}", auth=_login(pusher)), 401, "UNAUTHORIZED")
    deleter = harbor.project_robot(name, [*PULL, {"resource": "artifact", "action": "delete"}])
    token = harbor.token([f"repository:{repo}:pull,delete"], auth=_login(deleter))
    assert actions_in(token, repo) == {"pull", "delete"}
    expect_status(harbor.delete(f"/v2/{repo}/manifests/{digest}", auth=_login(deleter)), 202)


def test_deny_overrides_allow(harbor, project):
    name, _ = project
    repo = f"{name}/app"
    robot = harbor.project_robot(
        name,
        [{"resource": "repository", "action": "*"}, {"resource": "repository", "action": "push", "effect": "deny"}],
    )
    auth = _login(robot)
    expect_status(harbor.pull(repo, "v1", auth=auth), 200)
    expect_error(harbor.start_upload(repo, auth=auth), 401, "UNAUTHORIZED")
    granted = actions_in(harbor.token([f"repository:{repo}:pull,push"], auth=auth), repo)
    assert "pull" in granted and "push" not in granted, granted  # `*` may legitimately include scanner-pull
    # A blanket deny wins over a specific allow, in either order.
    denied = harbor.project_robot(name, [{"resource": "*", "action": "*", "effect": "deny"}, *PULL])
    expect_error(harbor.pull(repo, "v1", auth=_login(denied)), 401, "UNAUTHORIZED")
    assert actions_in(harbor.token([f"repository:{repo}:pull"], auth=_login(denied)), repo) == set()


def test_expired_robot_is_refused_everywhere(harbor, project, clock):
    name, _ = project
    robot = harbor.project_robot(name, PULL, duration=1)
    auth = _login(robot)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=auth), 200)
    clock(DAY + 60)
    expect_error(harbor.pull(f"{name}/app", "v1", auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.token_response([f"repository:{name}/app:pull"], auth=auth), 401, "UNAUTHORIZED")
    expect_error(harbor.get(f"projects/{name}", auth=auth), 401, "UNAUTHORIZED")
    # Extending its duration brings it back (expires_at is recomputed from now).
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={"duration": -1}), 200)
    expect_status(harbor.pull(f"{name}/app", "v1", auth=auth), 200)


def test_project_admin_manages_robots_of_own_project_only(harbor):
    owner, _ = harbor.create_user()
    mine, mine_id = harbor.create_project(auth=(owner, PASSWORD))
    robot = harbor.project_robot(mine, PULL, auth=(owner, PASSWORD))
    expect_status(harbor.get(f"robots/{robot['id']}", auth=(owner, PASSWORD)), 200)
    expect_status(harbor.put(f"robots/{robot['id']}", auth=(owner, PASSWORD), json_body={"description": "x"}), 200)
    listed = harbor.get("robots", auth=(owner, PASSWORD), query={"q": f"Level=project,ProjectID={mine_id}"})
    assert [r["name"] for r in expect_status(listed, 200).get_json()] == [robot["name"]]
    foreign, _ = harbor.create_project()
    response = harbor.post(
        "robots",
        auth=(owner, PASSWORD),
        json_body={
            "name": unique("bot"),
            "level": "project",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": foreign, "access": PULL}],
        },
    )
    expect_error(response, 404, "NOT_FOUND")
    expect_status(harbor.delete(f"robots/{robot['id']}", auth=(owner, PASSWORD)), 200)


def test_deleting_a_project_removes_its_robots(harbor):
    """Harbor deletes a project's robots with the project (robot manager DeleteByProjectID)."""
    name, _ = harbor.create_project()
    robot = harbor.project_robot(name, PULL_PUSH)
    expect_status(harbor.delete(f"projects/{name}"), 200)
    expect_error(harbor.get(f"robots/{robot['id']}"), 404, "NOT_FOUND")
    listed = expect_status(harbor.get("robots", query={"page_size": 100}), 200).get_json()
    assert robot["name"] not in [r["name"] for r in listed]
    expect_error(harbor.get("/v2/", auth=_login(robot)), 401, "UNAUTHORIZED")
    expect_error(harbor.token_response([f"repository:{name}/app:pull"], auth=_login(robot)), 401, "UNAUTHORIZED")


def test_a_recreated_project_is_closed_to_the_old_projects_robots(harbor):
    """Another user re-creating a deleted project's name must not let the old robot in."""
    name, _ = harbor.create_project()
    robot = harbor.project_robot(name, PULL_PUSH)
    expect_status(harbor.delete(f"projects/{name}"), 200)
    owner, _ = harbor.create_user()
    harbor.create_project(name, auth=(owner, PASSWORD))
    harbor.push_image(f"{name}/app", "v1", auth=(owner, PASSWORD))
    response = harbor.pull(f"{name}/app", "v1", auth=_login(robot))
    assert response.status_code == 401, (response.status_code, response.get_data()[:300])
    response = harbor.start_upload(f"{name}/app", auth=_login(robot))
    assert response.status_code == 401, (response.status_code, response.get_data()[:300])


def test_a_robot_cannot_create_a_more_powerful_robot(harbor, project):
    """Harbor (isValidPermissionScope): a robot may only create robots whose permissions are a subset
    of its own. Otherwise `robot:create` would be a key to every right in the project."""
    name, project_id = project
    creator = harbor.project_robot(name, [{"resource": "robot", "action": "create"}, *PULL])
    body = {
        "name": unique("escalated"),
        "level": "project",
        "duration": -1,
        "permissions": [{"kind": "project", "namespace": name, "access": [{"resource": "*", "action": "*"}]}],
    }
    response = harbor.post("robots", auth=_login(creator), json_body=body)
    assert response.status_code in (400, 403), (response.status_code, response.get_data()[:300])
    envelope(response)
    listed = expect_status(
        harbor.get("robots", query={"q": f"Level=project,ProjectID={project_id}", "page_size": 100}), 200
    ).get_json()
    assert f"robot${name}+{body['name']}" not in [r["name"] for r in listed]


def test_a_robot_may_create_a_robot_with_a_subset_of_its_rights(harbor, project):
    name, _ = project
    creator = harbor.project_robot(name, [{"resource": "robot", "action": "create"}, *PULL])
    child = harbor.project_robot(name, PULL, auth=_login(creator))
    expect_status(harbor.pull(f"{name}/app", "v1", auth=_login(child)), 200)
    expect_error(harbor.start_upload(f"{name}/app", auth=_login(child)), 401, "UNAUTHORIZED")


def test_robot_name_prefix_is_configurable(harbor, project):
    name, _ = project
    robot = harbor.project_robot(name, PULL)
    stored = robot["name"].removeprefix("robot$")
    harbor.set_config(robot_name_prefix="bot_")
    try:
        shown = expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()["name"]
        assert shown == f"bot_{stored}"
        expect_status(harbor.pull(f"{name}/app", "v1", auth=(f"bot_{stored}", robot["secret"])), 200)
        expect_error(harbor.pull(f"{name}/app", "v1", auth=_login(robot)), 401, "UNAUTHORIZED")
        token = harbor.token([f"repository:{name}/app:pull"], auth=(f"bot_{stored}", robot["secret"]))
        assert actions_in(token, f"{name}/app") == {"pull"}
    finally:
        harbor.set_config(robot_name_prefix="robot$")
    expect_status(harbor.pull(f"{name}/app", "v1", auth=_login(robot)), 200)


def test_a_robot_is_not_an_administrator_on_the_api(harbor, project):
    robot = harbor.project_robot(project[0], [{"resource": "*", "action": "*"}])
    auth = _login(robot)
    expect_error(harbor.get("users", auth=auth), 403, "FORBIDDEN")
    expect_error(harbor.get("configurations", auth=auth), 403, "FORBIDDEN")
    expect_error(harbor.get("robots", auth=auth), 403, "FORBIDDEN")
    expect_error(harbor.post("projects", auth=auth, json_body={"project_name": unique("robotmade")}), 403, "FORBIDDEN")
    expect_error(harbor.get("/v2/_catalog", auth=auth), (401, 403), ("UNAUTHORIZED", "DENIED"))
    expect_error(harbor.get("users/current", auth=auth), (401, 403), ("UNAUTHORIZED", "FORBIDDEN"))


def test_an_expiring_robot_is_not_subject_to_the_table_ttl(harbor, project):
    """DynamoDB deletes items whose `expires_at` has passed; Harbor keeps expired robots listed."""
    import boto3

    from chalicelib.wiring import services

    name, _ = project
    robot = harbor.project_robot(name, PULL, duration=1)
    settings = services().settings
    stored_name = robot["name"].removeprefix("robot$")
    item = boto3.client("dynamodb", region_name=settings.aws_region).get_item(
        TableName=settings.table_name, Key={"pk": {"S": f"ROBOT#{stored_name}"}, "sk": {"S": "ENTITY"}}
    )["Item"]
    assert "expires_at" not in item
    assert int(item["robot_expires_at"]["N"]) == robot["expires_at"]
