"""Hostile bodies against every /api/v2.0 route that takes one: never a 500, never a partial write.

The routes are read from the app itself, so a new route is covered the day it is added: it gets the
generic hostile bodies at once, and `test_every_body_route_has_a_template` fails until it is given a
valid body here, whose every leaf is then replaced in turn by huge numbers, wrong types and huge
strings. After a refused request the table must be exactly as before; after every route the main
listings (`/projects`, `/robots`, `/statistics`, `/search`, ...) must still answer 200.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.conftest import LiveRegistry, table_items

API = "/api/v2.0"
PROJECT = "hostile"
BODY_METHODS = ("POST", "PUT", "PATCH")
PASSWORD = "Hostile-Pass1"

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
WHOLE_BODIES: dict[str, bytes] = {
    "deep array": DEEP_ARRAY,
    "deep object": DEEP_OBJECT,
    "deep inside an object": b'{"name":' + DEEP_ARRAY + b"}",
    "huge number": b"1" + b"0" * 40,
    "5000 digits": b'{"id":' + b"9" * 5000 + b"}",
    "1e999": b'{"id":1e999}',
    "NaN": b'{"id":NaN}',
    "invalid UTF-8": b'{"name":"\xff\xfe\xfd"}',
    "lone surrogate": b'{"name":"\\ud800"}',
    "array": b"[]",
    "string": b'"x"',
    "null": b"null",
    "truncated": b'{"name":',
}
NUMBERS = [10**40, -(10**40), 2**63, 10**19, -(2**63) - 1, 1e308]
WRONG_TYPES: list[Any] = [[], {}, "text", True, None]
HUGE_STRING = "x" * 100_000


def _templates(ids: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body for each (method, route) that takes one."""
    project = f"{API}/projects/{{project}}"
    artifact = f"{project}/repositories/{{repository}}/artifacts/{{reference}}"
    selectors = {
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    }
    immutable = {"action": "immutable", "template": "immutable_template", "priority": 0, **selectors}
    retention = {
        "algorithm": "or",
        "rules": [{"action": "retain", "template": "latestPushedK", "params": {"latestPushedK": 3}, **selectors}],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
        "scope": {"level": "project", "ref": ids["project_id"]},
    }
    webhook = {
        "name": "hook",
        "targets": [{"type": "http", "address": "http://127.0.0.1:9/hook", "skip_cert_verify": True}],
        "event_types": ["PUSH_ARTIFACT"],
        "enabled": True,
    }
    robot = {
        "name": "bot2",
        "level": "project",
        "duration": 30,
        "description": "d",
        "disable": False,
        "permissions": [
            {"kind": "project", "namespace": PROJECT, "access": [{"resource": "repository", "action": "pull"}]}
        ],
    }
    replication = {
        "name": "rep1", "dest_registry": {"id": ids.get("registry_id", 1)}, "dest_namespace": "mirror",
        "dest_namespace_replace_count": 1, "trigger": {"type": "manual"}, "enabled": True, "override": True,
        "filters": [{"type": "name", "value": f"{PROJECT}/**"},
                    {"type": "tag", "value": "v*", "decoration": "matches"}],
    }  # fmt: skip
    return {
        ("PUT", f"{API}/configurations"): {
            "token_expiration": 30,
            "robot_token_duration": 30,
            "storage_per_project": -1,
        },
        ("POST", f"{API}/labels"): {"name": "l2", "color": "#000000", "scope": "g", "description": "d"},
        ("PUT", f"{API}/labels/{{label_id}}"): {"name": "l3", "description": "d"},
        ("POST", f"{API}/projects"): {"project_name": "p2", "metadata": {"public": "false"}, "storage_limit": 100},
        ("PUT", project): {"metadata": {"public": "true"}, "storage_limit": 1000},
        ("POST", f"{project}/immutabletagrules"): immutable,
        ("PUT", f"{project}/immutabletagrules/{{rule_id}}"): immutable,
        ("POST", f"{project}/members"): {"role_id": 2, "member_user": {"username": ids["other_user"]}},
        ("PUT", f"{project}/members/{{member_id}}"): {"role_id": 3},
        ("POST", f"{project}/metadatas"): {"auto_scan": "true"},
        ("PUT", f"{project}/metadatas/{{meta_name}}"): {"public": "true"},
        ("PUT", f"{project}/repositories/{{repository}}"): {"description": "d"},
        ("POST", f"{project}/repositories/{{repository}}/artifacts"): {},
        ("POST", f"{artifact}/labels"): {"id": ids["label_id"]},
        ("POST", f"{artifact}/tags"): {"name": "v2"},
        ("POST", f"{artifact}/scan"): {"scan_type": "vulnerability"},
        ("POST", f"{artifact}/scan/stop"): {"scan_type": "vulnerability"},
        ("POST", f"{project}/webhook/policies"): webhook,
        ("PUT", f"{project}/webhook/policies/{{policy_id}}"): webhook,
        ("PUT", f"{API}/quotas/{{quota_id}}"): {"hard": {"storage": 1000}},
        ("POST", f"{API}/retentions"): retention,
        ("PUT", f"{API}/retentions/{{policy_id}}"): retention,
        ("POST", f"{API}/retentions/{{policy_id}}/executions"): {"dry_run": True},
        ("PATCH", f"{API}/retentions/{{policy_id}}/executions/{{execution_id}}"): {"action": "stop"},
        ("POST", f"{API}/robots"): robot,
        ("PUT", f"{API}/robots/{{robot_id}}"): {**robot, "name": "bot1"},
        ("PATCH", f"{API}/robots/{{robot_id}}"): {"secret": "Hostile-Secret-1"},
        ("POST", f"{API}/system/gc/{{gc_id}}"): {"schedule": {"type": "Custom", "cron": "0 30 2 * * *"}},
        ("PUT", f"{API}/system/gc/{{gc_id}}"): {"schedule": {"type": "Custom", "cron": "0 30 3 * * *"}},
        ("POST", f"{API}/users"): {"username": "u2", "password": PASSWORD, "email": "u2@example.com", "realname": "u"},
        ("PUT", f"{API}/users/{{user_id}}"): {"email": "u3@example.com", "realname": "r", "comment": "c"},
        ("PUT", f"{API}/users/{{user_id}}/password"): {"new_password": "Hostile-Pass2"},
        ("PUT", f"{API}/users/{{user_id}}/sysadmin"): {"sysadmin_flag": False},
        # Nothing answers on 127.0.0.1:9: a create or ping is refused (400) after its body was read.
        ("POST", f"{API}/scanners"): {
            "name": "s2",
            "url": "http://127.0.0.1:9",
            "auth": "Bearer",
            "access_credential": "t",
            "skip_certVerify": False,
            "disabled": False,
        },
        ("POST", f"{API}/scanners/ping"): {
            "name": "s2",
            "url": "http://127.0.0.1:9",
            "auth": "",
            "access_credential": "",
        },
        ("PUT", f"{API}/scanners/{{registration_id}}"): {
            "name": "s3",
            "url": "http://127.0.0.1:9",
            "description": "d",
            "use_internal_addr": True,
        },
        ("PATCH", f"{API}/scanners/{{registration_id}}"): {"is_default": True},
        ("PUT", f"{API}/system/CVEAllowlist"): {"items": [{"cve_id": "CVE-2024-0001"}], "expires_at": 4102444800},
        ("POST", f"{API}/system/scanAll/schedule"): {"schedule": {"type": "Custom", "cron": "0 0 3 * * *"}},
        ("PUT", f"{API}/system/scanAll/schedule"): {"schedule": {"type": "Custom", "cron": "0 0 4 * * *"}},
        ("POST", f"{API}/system/scanAll/stop"): {},
        ("PUT", f"{project}/scanner"): {"uuid": ids.get("registration_id", "")},
        ("POST", f"{API}/registries"): {"name": "r2", "type": "docker-registry", "url": ids.get("remote", "http://x"),
                                        "credential": {"type": "basic", "access_key": "u", "access_secret": "p"},
                                        "insecure": False, "description": "d"},
        ("POST", f"{API}/registries/ping"): {"id": ids.get("registry_id", 1), "access_key": "u", "access_secret": "p"},
        ("PUT", f"{API}/registries/{{id}}"): {"name": "r3", "description": "d", "access_key": "u",
                                              "access_secret": "p", "insecure": False},
        ("POST", f"{API}/replication/policies"): replication,
        ("PUT", f"{API}/replication/policies/{{id}}"): {**replication, "name": "rep2"},
        ("POST", f"{API}/replication/executions"): {"policy_id": 1},
        ("PUT", f"{API}/replication/executions/{{id}}"): {},  # stop: Harbor's takes no body
        # Sent without `X-Scan-Data-Type`: always refused after the body is read, nothing started.
        ("POST", f"{API}/export/cve"): {"job_name": "j", "projects": [ids["project_id"]], "labels": [1],
                                         "repositories": "app", "cveIds": "CVE-1", "tags": "v1"},
    }  # fmt: skip


def body_routes() -> list[tuple[str, str]]:
    from app import app

    return sorted(
        (method, path)
        for path, methods in app.routes.items()
        if path.startswith(API)
        for method in methods
        if method in BODY_METHODS
    )


# ------------------------------------------------------------------------------------- the world


def _call(registry: LiveRegistry, method: str, path: str, body: Any = None) -> Any:
    response = registry.request(method, f"{API}{path}", json=body)
    assert response.status_code < 300, (method, path, response.status_code, response.get_data()[:300])
    return response


def _created_id(response: Any) -> int:
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def world(registry: LiveRegistry) -> Iterator[tuple[LiveRegistry, dict[str, Any]]]:
    """One of each object a route's path names, so each route gets as far as reading its body."""
    registry.configure(egress_allow_networks="127.0.0.0/8")
    project_id = _created_id(_call(registry, "POST", "/projects", {"project_name": PROJECT}))
    registry.push_image(f"{PROJECT}/app", "v1", layers=1)
    user_id = _created_id(
        _call(registry, "POST", "/users", {"username": "u1", "password": PASSWORD, "email": "u1@x.io"})
    )
    _call(registry, "POST", "/users", {"username": "u9", "password": PASSWORD, "email": "u9@x.io"})
    member_id = _created_id(
        _call(registry, "POST", f"/projects/{PROJECT}/members", {"role_id": 2, "member_user": {"username": "u1"}})
    )
    label_id = _created_id(_call(registry, "POST", "/labels", {"name": "l1", "scope": "g"}))
    remote = _remote_registry()
    registry_id = _created_id(_call(registry, "POST", "/registries", {"name": "r1", "type": "docker-registry",
                                                                      "url": remote}))  # fmt: skip
    templates = _templates({"project_id": project_id, "label_id": label_id, "other_user": "u9", "remote": remote,
                            "registry_id": registry_id})  # fmt: skip
    rule_id = _created_id(
        _call(registry, "POST", f"/projects/{PROJECT}/immutabletagrules", templates[_key("POST", "immutabletagrules")])
    )
    hook_id = _created_id(
        _call(registry, "POST", f"/projects/{PROJECT}/webhook/policies", templates[_key("POST", "webhook/policies")])
    )
    retention_id = _created_id(_call(registry, "POST", "/retentions", templates[("POST", f"{API}/retentions")]))
    from chalicelib import wiring

    scanner = wiring.services().scanners.ensure_builtin("osv-lite", "http://127.0.0.1:9", "key")
    templates = _templates({"project_id": project_id, "label_id": label_id, "other_user": "u9", "remote": remote,
                            "registry_id": registry_id, "registration_id": scanner.uuid})  # fmt: skip
    robot = _call(registry, "POST", "/robots", {**templates[("POST", f"{API}/robots")], "name": "bot1"}).get_json()
    params = {
        "project": PROJECT, "repository": "app", "reference": "v1", "label_id": label_id, "rule_id": rule_id,
        "member_id": member_id, "meta_name": "public", "quota_id": project_id, "robot_id": robot["id"],
        "gc_id": "schedule", "user_id": user_id, "execution_id": 1, "registration_id": scanner.uuid, "id": registry_id,
    }  # fmt: skip
    # Settle what the setup left pending (events, ids given on first read) before comparing tables.
    _listings_answer(registry, "setup")
    _call(registry, "GET", f"/projects/{PROJECT}/repositories/app/artifacts/v1")
    _state(registry)
    yield registry, {"templates": templates, "params": params, "hook_id": hook_id, "retention_id": retention_id}


def _remote_registry() -> str:
    """A distribution-shaped remote on loopback (every `/v2/` answers 200), for the registries routes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.rstrip("/") == "/v2" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _key(method: str, tail: str) -> tuple[str, str]:
    return method, f"{API}/projects/{{project}}/{tail}"


def _path(route: str, world: dict[str, Any]) -> str:
    params = dict(world["params"])
    params["policy_id"] = world["retention_id"] if "/retentions/" in route else world["hook_id"]
    return route[len(API) :].format(**params)


def _state(registry: LiveRegistry) -> list[str]:
    """Every row of the table, except id counters: an id taken by a request that then failed is a
    gap in the sequence (as in a database), not a partial write."""
    from chalicelib import wiring

    wiring.services().events.drain()
    rows = (item for item in table_items() if not item["pk"]["S"].startswith("COUNTER#"))
    return sorted(json.dumps(item, sort_keys=True) for item in rows)


def _mutations(template: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """The template with one leaf replaced by each hostile value, leaf by leaf."""
    if isinstance(template, dict):
        for key, value in template.items():
            for label, replaced in _mutations(value, (*at, key)):
                yield label, {**template, key: replaced}
        return
    if isinstance(template, list):
        for index, value in enumerate(template):
            for label, replaced in _mutations(value, (*at, index)):
                yield label, [*template[:index], replaced, *template[index + 1 :]]
        return
    where = "/".join(map(str, at))
    hostile: list[Any] = [*NUMBERS, *WRONG_TYPES, HUGE_STRING]
    for value in hostile:
        if value != template:
            yield f"{where}={str(value)[:12]!r}", value


def _assert_handled(response: Any, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and body["errors"][0]["code"] and body["errors"][0]["message"], what


def _listings_answer(registry: LiveRegistry, what: str) -> None:
    for path in ("/projects", "/robots", "/statistics", "/search?q=a", "/users", "/labels?scope=g", "/quotas",
                 f"/projects/{PROJECT}/webhook/policies", "/retentions/1", "/configurations"):  # fmt: skip
        response = registry.get(f"{API}{path}")
        assert response.status_code == 200, (what, path, response.status_code, response.get_data()[:300])


# ------------------------------------------------------------------------------------------ tests


def test_every_body_route_has_a_template() -> None:
    templates = _templates({"project_id": 1, "label_id": 1, "other_user": "x"})
    missing = [route for route in body_routes() if route not in templates]
    assert not missing, f"give these routes a valid body in _templates: {missing}"


@pytest.mark.parametrize(("method", "route"), body_routes(), ids=lambda value: value.replace(API, ""))
def test_hostile_bodies(world: tuple[LiveRegistry, dict[str, Any]], method: str, route: str) -> None:
    registry, setup = world
    path = _path(route, setup)
    for label, raw in WHOLE_BODIES.items():
        before = _state(registry)
        response = registry.request(method, f"{API}{path}", data=raw, content_type="application/json")
        _assert_handled(response, label)
        assert response.status_code >= 400, (label, response.status_code)
        assert _state(registry) == before, f"{label}: a refused request changed the table"
    for label, body in _mutations(setup["templates"].get((method, route), {})):
        before = _state(registry)
        response = registry.request(method, f"{API}{path}", json=body)
        _assert_handled(response, label)
        if response.status_code >= 400:
            assert _state(registry) == before, f"{label}: a refused request changed the table"
    _listings_answer(registry, f"{method} {route}")
