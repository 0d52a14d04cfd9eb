"""Every write route of the management API checks a write action: a robot that may read and list
everything (system and every project) changes nothing.

The table below names every POST, PUT, PATCH and DELETE route of /api/v2.0 with a body that is
valid for it, so a refusal cannot come from validation; a route added without an entry here fails
the coverage test. This is the class of `PUT /configurations` checking `read`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.identity.identity_support import API, PASSWORD, expect_error, expect_status, unique

READ_ONLY = [{"resource": "*", "action": "read"}, {"resource": "*", "action": "list"}]
SELECTOR = {"kind": "doublestar", "decoration": "matches", "pattern": "**"}
REPO_SELECTOR = {"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}


def _retention_policy(project_id: int) -> dict[str, Any]:
    rule = {"disabled": False, "action": "retain", "template": "latestPushedK", "params": {"latestPushedK": 1},
            "tag_selectors": [{**SELECTOR, "extras": json.dumps({"untagged": True})}],
            "scope_selectors": {"repository": [REPO_SELECTOR]}}  # fmt: skip
    return {"algorithm": "or", "rules": [rule], "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
            "scope": {"level": "project", "ref": project_id}}  # fmt: skip


@pytest.fixture(scope="module")
def world(harbor) -> dict[str, Any]:
    """Objects of every kind a write route names, created by the administrator."""
    project, project_id = harbor.create_project(public=False)
    digest, _ = harbor.push_image(f"{project}/app", "v1")
    user, user_id = harbor.create_user()
    member_id = harbor.add_member(project, user, 3)
    robot = harbor.project_robot(project, [{"resource": "repository", "action": "pull"}])
    label = expect_status(
        harbor.post("labels", json_body={"name": unique("lbl"), "scope": "p", "project_id": project_id}), 201
    )
    retention = expect_status(harbor.post("retentions", json_body=_retention_policy(project_id)), 201)
    rule = {"tag_selectors": [SELECTOR], "scope_selectors": {"repository": [REPO_SELECTOR]}}
    immutable = expect_status(harbor.post(f"projects/{project}/immutabletagrules", json_body=rule), 201)
    reader = harbor.create_robot(
        {
            "name": unique("reader"),
            "level": "system",
            "duration": -1,
            "permissions": [
                {"kind": "system", "namespace": "/", "access": READ_ONLY},
                {
                    "kind": "project",
                    "namespace": "*",
                    "access": [*READ_ONLY, {"resource": "repository", "action": "pull"}],
                },
            ],
        }
    )
    return {
        "project": project,
        "project_id": project_id,
        "digest": digest,
        "user_id": user_id,
        "member_id": member_id,
        "robot_id": robot["id"],
        "label_id": int(label.headers["Location"].rsplit("/", 1)[1]),
        "policy_id": int(retention.headers["Location"].rsplit("/", 1)[1]),
        "rule_id": int(immutable.headers["Location"].rsplit("/", 1)[1]),
        "reader": (reader["name"], reader["secret"]),
    }


ARTIFACT = "/projects/{project}/repositories/{repository}/artifacts/{reference}"
UNKNOWN_SCANNER = "00000000-0000-4000-8000-000000000000"
# A public address literal: valid under any egress policy and needs no DNS; no push follows its
# creation here, so nothing is ever sent to it.
HOOK = {
    "name": "hook",
    "event_types": ["PUSH_ARTIFACT"],
    "targets": [{"type": "http", "address": "https://8.8.8.8/hook"}],
}
REMOTE = {"name": "remote", "type": "docker-registry", "url": "https://203.0.113.7"}
RULE = {"tag_selectors": [SELECTOR], "scope_selectors": {"repository": [REPO_SELECTOR]}}
# (method, route under /api/v2.0, body); route placeholders are the world's keys. Each object's
# delete comes after its other writes, so the administrator's control below can run them in order.
WRITES: list[tuple[str, str, Any]] = [
    ("PUT", "/configurations", {"token_expiration": 30}),
    ("POST", "/users", {"username": "made-by-reader", "password": PASSWORD}),
    ("PUT", "/users/{user_id}", {"realname": "renamed"}),
    ("PUT", "/users/{user_id}/password", {"old_password": PASSWORD, "new_password": "Other-Pass3"}),
    ("PUT", "/users/{user_id}/sysadmin", {"sysadmin_flag": True}),
    ("DELETE", "/users/{user_id}", None),
    ("POST", "/projects", {"project_name": "made-by-reader"}),
    ("PUT", "/projects/{project}", {"metadata": {"public": "true"}}),
    ("POST", "/projects/{project}/metadatas", {"auto_scan": "true"}),
    ("PUT", "/projects/{project}/metadatas/{meta_name}", {"public": "true"}),
    ("DELETE", "/projects/{project}/metadatas/{meta_name}", None),
    ("POST", "/projects/{project}/members", {"role_id": 1, "member_user": {"username": "admin"}}),
    ("PUT", "/projects/{project}/members/{member_id}", {"role_id": 1}),
    ("DELETE", "/projects/{project}/members/{member_id}", None),
    ("POST", "/projects/{project}/immutabletagrules", RULE),
    ("PUT", "/projects/{project}/immutabletagrules/{rule_id}", {"disabled": True, **RULE}),
    ("DELETE", "/projects/{project}/immutabletagrules/{rule_id}", None),
    ("PUT", "/projects/{project}/repositories/{repository}", {"description": "changed"}),
    ("POST", "/projects/{project}/repositories/{repository}/artifacts?from={project}/app@{digest}", None),
    ("POST", ARTIFACT + "/labels", {"id": "{label_id}"}),
    ("DELETE", ARTIFACT + "/labels/{label_id}", None),
    ("POST", ARTIFACT + "/tags", {"name": "v2"}),
    ("DELETE", ARTIFACT + "/tags/{tag_name}", None),
    ("POST", ARTIFACT + "/scan", {"scan_type": "vulnerability"}),
    ("POST", ARTIFACT + "/scan/stop", {"scan_type": "vulnerability"}),
    ("DELETE", ARTIFACT, None),
    ("DELETE", "/projects/{project}/repositories/{repository}", None),
    ("POST", "/projects/{project}/webhook/policies", HOOK),
    ("PUT", "/projects/{project}/webhook/policies/{policy_id}", HOOK),
    ("DELETE", "/projects/{project}/webhook/policies/{policy_id}", None),
    ("POST", "/labels", {"name": "by-reader", "scope": "g"}),
    ("PUT", "/labels/{label_id}", {"name": "renamed"}),
    ("DELETE", "/labels/{label_id}", None),
    ("PUT", "/quotas/{quota_id}", {"hard": {"storage": 1024}}),
    ("POST", "/retentions", "retention"),
    ("PUT", "/retentions/{policy_id}", "retention"),
    ("POST", "/retentions/{policy_id}/executions", {"dry_run": True}),
    ("PATCH", "/retentions/{policy_id}/executions/{execution_id}", {"action": "stop"}),
    ("DELETE", "/retentions/{policy_id}", None),
    ("POST", "/robots", {"name": "by-reader", "level": "project", "duration": -1,
                         "permissions": [{"kind": "project", "namespace": "{project}",
                                          "access": [{"resource": "repository", "action": "pull"}]}]}),
    ("PUT", "/robots/{robot_id}", {"description": "changed"}),
    ("PATCH", "/robots/{robot_id}", {}),
    ("DELETE", "/robots/{robot_id}", None),
    ("POST", "/system/gc/schedule", {"schedule": {"type": "Hourly"}}),
    ("PUT", "/system/gc/schedule", {"schedule": {"type": "None"}}),
    ("PUT", "/system/gc/1", None),  # stop an execution
    # Scanning policy: the system CVE allowlist and scan all (412 for the administrator while no
    # default scanner is registered, which this suite does not register).
    ("PUT", "/system/CVEAllowlist", {"items": [{"cve_id": "CVE-2024-0001"}]}),
    ("POST", "/system/scanAll/schedule", {"schedule": {"type": "Hourly"}}),
    ("PUT", "/system/scanAll/schedule", {"schedule": {"type": "None"}}),
    ("POST", "/system/scanAll/stop", None),
    # Scanner registrations: an unknown registration (the administrator gets 404, the robot 403 first).
    ("POST", "/scanners", {"name": "by-reader", "url": "https://8.8.8.8:1"}),
    ("POST", "/scanners/ping", {"name": "by-reader", "url": "https://8.8.8.8:1"}),
    ("PUT", "/scanners/{registration_id}", {"name": "renamed", "url": "https://8.8.8.8:1"}),
    ("PATCH", "/scanners/{registration_id}", {"is_default": True}),
    ("DELETE", "/scanners/{registration_id}", None),
    ("PUT", "/projects/{project}/scanner", {"uuid": UNKNOWN_SCANNER}),
    # registries: a documentation address (TEST-NET-3), which the egress policy refuses before any
    # call, so nothing is sent anywhere; the ids name no registry (the control gets 404s)
    ("POST", "/registries", REMOTE),
    ("PUT", "/registries/{registry_id}", {"description": "changed"}),
    ("DELETE", "/registries/{registry_id}", None),
    # replication: the ids name no policy or execution (the control gets 404s; a new policy names a
    # registry that does not exist, a 400 for the administrator)
    ("POST", "/replication/policies", {"name": "by-reader", "dest_registry": {"id": 999999}, "enabled": True}),
    ("PUT", "/replication/policies/{registry_id}", {"name": "renamed", "dest_registry": {"id": 999999}}),
    ("DELETE", "/replication/policies/{registry_id}", None),
    ("POST", "/replication/executions", {"policy_id": 999999}),
    ("PUT", "/replication/executions/{registry_id}", None),  # stop an execution
    # scan data export: a robot is no user (Harbor refuses it 403)
    ("POST", "/export/cve", {"job_name": "by-reader", "projects": [999999]}),
    ("DELETE", "/projects/{project}", None),
]  # fmt: skip
_VALUES = {"meta_name": "public", "repository": "app", "tag_name": "v1", "execution_id": "1",
           "registration_id": UNKNOWN_SCANNER, "registry_id": "999999"}  # fmt: skip
_ROUTE_OF = {"/system/gc/schedule": "/system/gc/{gc_id}", "/system/gc/1": "/system/gc/{gc_id}",
             "/registries/{registry_id}": "/registries/{id}",
             "/replication/policies/{registry_id}": "/replication/policies/{id}",
             "/replication/executions/{registry_id}": "/replication/executions/{id}"}  # fmt: skip


def _path(route: str, world: dict[str, Any]) -> str:
    return route.format(**world, **_VALUES, quota_id=world["project_id"], reference=world["digest"]).lstrip("/")


def _body(body: Any, world: dict[str, Any]) -> Any:
    """The body with `{project}` and `{label_id}` values replaced by the world's."""
    if body == "retention":
        return _retention_policy(world["project_id"])
    if isinstance(body, dict):
        return {k: _body(v, world) for k, v in body.items()}
    if isinstance(body, list):
        return [_body(v, world) for v in body]
    return (
        {"{project}": world["project"], "{label_id}": world["label_id"]}.get(body, body)
        if isinstance(body, str)
        else body
    )


# POST routes that change nothing, and that Harbor authorises with `read` (a ping of a registry).
READS_BY_POST = {("POST", "/registries/ping")}


def test_every_write_route_is_in_the_table():
    from app import app

    routes = {(m, p.removeprefix(API)) for p, methods in app.routes.items() if p.startswith(API)
              for m in methods if m in ("POST", "PUT", "PATCH", "DELETE")}  # fmt: skip
    listed = {(m, _ROUTE_OF.get(path, path.split("?")[0])) for m, path, _ in WRITES} | READS_BY_POST
    assert routes == listed, (sorted(routes - listed), sorted(listed - routes))


# Harbor asks only scanner `read` to ping an adapter (it stores nothing): a POST that is no write.
_READS = {("POST", "/scanners/ping")}
_WRITES_ONLY = [w for w in WRITES if (w[0], w[1]) not in _READS]


@pytest.mark.parametrize(("method", "route", "payload"), _WRITES_ONLY, ids=[f"{m} {r}" for m, r, _ in _WRITES_ONLY])
def test_a_read_only_robot_changes_nothing(harbor, world, method, route, payload):
    response = harbor.request(method, _path(route, world), auth=world["reader"], json_body=_body(payload, world))
    expect_error(response, 403, "FORBIDDEN")


def test_a_read_only_robot_may_ping_a_registry(harbor, world):
    """Harbor asks `registry:read` of a ping, which reads and changes nothing."""
    response = harbor.post("registries/ping", auth=world["reader"], json_body={"id": 999999})
    expect_error(response, 404, "NOT_FOUND")


# Starting a retention run needs the state machine, which this suite does not deploy (the jobs
# suite does); the row stays in the robot's test above.
# Creating a scanner registration (or pinging one) calls the adapter, which this suite does not run
# (tests/functional/test_scanners.py does): the administrator gets 400 from the unreachable address.
# Stopping a scan when none runs is Harbor's 400 (tests/functional/jobs/test_scans.py runs scans).
# An export needs Harbor's `X-Scan-Data-Type` header (400 without it) and its state machine
# (tests/functional/scanning/test_scan_export.py runs exports).
_CONTROLLED = [w for w in _WRITES_ONLY if (w[0], w[1]) not in {("POST", "/retentions/{policy_id}/executions"),
                                                                ("POST", "/scanners"), ("POST", "/export/cve"),
                                                                ("POST", ARTIFACT + "/scan/stop")}]  # fmt: skip


@pytest.fixture(scope="module")
def control_world(harbor) -> dict[str, Any]:
    return world.__wrapped__(harbor)


@pytest.mark.parametrize(("method", "route", "payload"), _CONTROLLED, ids=[f"{m} {r}" for m, r, _ in _CONTROLLED])
def test_the_table_is_valid_for_an_administrator(harbor, control_world, method, route, payload):
    """The control: the administrator, running the rows in order on a world of its own, is
    neither refused nor told a request is malformed, so the robot's 403 above is an authorisation
    decision. What it gets otherwise (2xx, or 404/409/412 because of the state an earlier row left
    the object in) does not matter here."""
    response = harbor.request(method, _path(route, control_world), json_body=_body(payload, control_world))
    assert response.status_code not in (401, 403, 500), (response.status_code, response.get_data()[:300])
    if response.status_code == 400:
        message = response.get_json()["errors"][0]["message"]
        # A registry is checked by calling it once the caller is authorised: refused by the egress policy here.
        assert (
            "already has a retention policy" in message
            or (route == "/registries" and "not allowed" in message)
            or (route == "/replication/policies" and "registry 999999 not found" in message)
        ), message
