"""Webhooks end to end: policies through Harbor's API, events from /v2 pushes, pulls and deletes,
delivered to a real HTTP receiver on 127.0.0.1 (a `http.server` in a thread), with retries,
executions, tasks, logs and last trigger times read back through the API; and bad input on every
endpoint (Harbor's envelope with a 4xx, nothing half-written)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import digest_of

API = "/api/v2.0"
PASSWORD = "Webhook-Tests-1"
HOST = "registry.example.com"
# The receivers listen on 127.0.0.1, which the egress policy refuses unless a network allows it.
RECEIVER_NETWORK = "127.0.0.1/32"


class Receiver:
    """An HTTP server that records every POST and answers with the next queued status (else 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.delay = 0.0
        # When set, each POST is held until the test sets it (a receiver that has not answered yet).
        self.gate: threading.Event | None = None
        self.answered = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})  # fmt: skip
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.gate is not None:
                    receiver.gate.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooks(registry: LiveRegistry) -> Iterator[LiveRegistry]:
    registry.configure(
        webhook_backoff_seconds=0.05,
        webhook_policy_cache_seconds=0,
        external_url=f"https://{HOST}",
        egress_allow_networks=RECEIVER_NETWORK,
    )
    yield registry
    settle()


def settle() -> None:
    """Every published event delivered and every webhook delivery ended."""
    from chalicelib.wiring import services

    assert services().events.drain(30)
    assert services().webhook_delivery.drain(30)


def _policy(address: str, **overrides: Any) -> dict[str, Any]:
    target = {"type": "http", "address": address, "auth_header": "", "skip_cert_verify": False,
              "payload_format": "Default"}  # fmt: skip
    target.update(overrides.pop("target", {}))
    body = {"name": "hook", "description": "d", "enabled": True, "event_types": ["PUSH_ARTIFACT"],
            "targets": [target]}  # fmt: skip
    body.update(overrides)
    return body


def _create(reg: LiveRegistry, body: dict[str, Any], project: str = "library") -> int:
    response = reg.post(f"{API}/projects/{project}/webhook/policies", json=body)
    assert response.status_code == 201, response.get_data()[:500]
    return int(response.headers["Location"].rsplit("/", 1)[-1])


def _errors(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert isinstance(body["errors"], list) and body["errors"][0]["message"], body


def _user(reg: LiveRegistry, name: str) -> tuple[str, str]:
    response = reg.post(f"{API}/users", json={"username": name, "password": PASSWORD, "email": f"{name}@example.com",
                                              "realname": name})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    return name, PASSWORD


def _executions(reg: LiveRegistry, policy_id: int, project: str = "library") -> list[dict[str, Any]]:
    response = reg.get(f"{API}/projects/{project}/webhook/policies/{policy_id}/executions")
    assert response.status_code == 200, response.get_data()[:300]
    return list(response.get_json())


def _tasks(reg: LiveRegistry, policy_id: int, execution_id: int) -> list[dict[str, Any]]:
    response = reg.get(f"{API}/projects/library/webhook/policies/{policy_id}/executions/{execution_id}/tasks")
    assert response.status_code == 200, response.get_data()[:300]
    return list(response.get_json())


def _log(reg: LiveRegistry, policy_id: int, execution_id: int, task_id: int) -> str:
    path = f"{API}/projects/library/webhook/policies/{policy_id}/executions/{execution_id}/tasks/{task_id}/log"
    response = reg.get(path)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return response.get_data(as_text=True)


# Policies.


def test_policy_crud_has_harbors_shapes(hooks: LiveRegistry, receiver: Receiver) -> None:
    policy_id = _create(hooks, _policy(receiver.url, target={"auth_header": "Bearer s3cret"}))
    listed = hooks.get(f"{API}/projects/library/webhook/policies")
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    policy = hooks.get(f"{API}/projects/library/webhook/policies/{policy_id}").get_json()
    assert policy == listed.get_json()[0]
    assert set(policy) == {"id", "name", "description", "project_id", "targets", "event_types", "creator",
                           "creation_time", "update_time", "enabled"}  # fmt: skip
    assert policy["creator"] == "admin" and policy["project_id"] == 1 and policy["enabled"] is True
    assert policy["targets"] == [
        {"type": "http", "address": receiver.url, "auth_header": "Bearer s3cret", "payload_format": "Default"}
    ]  # skip_cert_verify false: omitted, as Harbor

    # A PUT may send back what GET returned, changed.
    changed = {**policy, "name": "renamed", "enabled": False, "event_types": ["PULL_ARTIFACT", "DELETE_ARTIFACT"]}
    assert hooks.put(f"{API}/projects/library/webhook/policies/{policy_id}", json=changed).status_code == 200
    again = hooks.get(f"{API}/projects/library/webhook/policies/{policy_id}").get_json()
    assert (again["name"], again["enabled"], again["event_types"]) == ("renamed", False, changed["event_types"])
    assert again["creation_time"] == policy["creation_time"]

    second = _create(hooks, _policy(receiver.url, name="other"))
    page = hooks.get(f"{API}/projects/library/webhook/policies", query_string={"page_size": 1, "page": 2})
    assert page.headers["X-Total-Count"] == "2" and [p["id"] for p in page.get_json()] == [second]
    named = hooks.get(f"{API}/projects/library/webhook/policies", query_string={"q": "name=other"})
    assert [p["id"] for p in named.get_json()] == [second]

    assert hooks.delete(f"{API}/projects/library/webhook/policies/{policy_id}").status_code == 200
    _errors(hooks.get(f"{API}/projects/library/webhook/policies/{policy_id}"), 404)
    assert hooks.get(f"{API}/projects/library/webhook/policies").headers["X-Total-Count"] == "1"


def test_supported_event_types(hooks: LiveRegistry) -> None:
    response = hooks.get(f"{API}/projects/library/webhook/events")
    assert response.status_code == 200
    body = response.get_json()
    assert body["event_type"] == ["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT", "QUOTA_EXCEED",
                                  "QUOTA_WARNING", "SCANNING_FAILED", "SCANNING_STOPPED", "SCANNING_COMPLETED",
                                  "REPLICATION", "TAG_RETENTION"]  # fmt: skip
    assert body["notify_type"] == ["http", "slack"]
    assert {"notify_type": "http", "formats": ["Default", "CloudEvents"]} in body["payload_formats"]


def test_every_harbor_event_type_is_accepted_and_emitted_ones_are_delivered(
    hooks: LiveRegistry, receiver: Receiver
) -> None:
    """Harbor's UI and Terraform provider send every type Harbor lists; the registry delivers those it
    publishes (a scan or replication type waits for those features)."""
    every = ["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT", "QUOTA_EXCEED", "QUOTA_WARNING",
             "SCANNING_FAILED", "SCANNING_STOPPED", "SCANNING_COMPLETED", "REPLICATION", "TAG_RETENTION"]  # fmt: skip
    policy_id = _create(hooks, _policy(receiver.url, event_types=every))
    assert hooks.get(f"{API}/projects/library/webhook/policies/{policy_id}").get_json()["event_types"] == every
    scans = {**_policy(receiver.url, name="scans"), "event_types": ["SCANNING_FAILED", "SCANNING_COMPLETED"]}
    scans_id = _create(hooks, scans)
    changed = {**scans, "event_types": ["SCANNING_STOPPED", "REPLICATION"]}
    assert hooks.put(f"{API}/projects/library/webhook/policies/{scans_id}", json=changed).status_code == 200
    hooks.push_image("library/app", "v1")
    settle()
    assert [d["type"] for d in receiver.documents()] == ["PUSH_ARTIFACT"]
    unknown = {**_policy(receiver.url, name="bad"), "event_types": ["SCANNING_EXPLODED"]}
    _errors(hooks.post(f"{API}/projects/library/webhook/policies", json=unknown), 400)


# Delivery.


def test_push_pull_delete_send_harbors_default_payloads(hooks: LiveRegistry, receiver: Receiver) -> None:
    events = ["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT"]
    policy_id = _create(hooks, _policy(receiver.url, event_types=events, target={"auth_header": "Basic abc"}))
    digest, _ = hooks.push_image("library/app", "v1")
    settle()
    assert hooks.get("/v2/library/app/manifests/v1").status_code == 200
    settle()
    assert hooks.delete(f"/v2/library/app/manifests/{digest}").status_code == 202
    settle()

    documents = receiver.documents()
    assert [d["type"] for d in documents] == events
    assert all(r["headers"]["Authorization"] == "Basic abc" for r in receiver.requests)
    assert all(r["headers"]["Content-Type"] == "application/json" for r in receiver.requests)
    push = documents[0]
    assert push["operator"] == "admin" and abs(push["occur_at"] - time.time()) < 60
    assert push["event_data"] == {
        "resources": [{"digest": digest, "tag": "v1", "resource_url": f"{HOST}/library/app:v1"}],
        "repository": {"date_created": push["event_data"]["repository"]["date_created"], "name": "app",
                       "namespace": "library", "repo_full_name": "library/app", "repo_type": "public"},
    }  # fmt: skip
    assert documents[1]["event_data"]["resources"][0]["tag"] == "v1"
    deleted = documents[2]["event_data"]["resources"][0]
    assert deleted == {"digest": digest, "resource_url": f"{HOST}/library/app@{digest}"}

    # The same three deliveries as executions (newest first), one task each, with their logs.
    executions = _executions(hooks, policy_id)
    assert [e["extra_attrs"]["event_type"] for e in executions] == events[::-1]
    assert all(e["status"] == "Success" and e["vendor_type"] == "WEBHOOK" and e["vendor_id"] == policy_id
               and e["trigger"] == "EVENT" and e["metrics"]["success_task_count"] == 1 for e in executions)  # fmt: skip
    tasks = _tasks(hooks, policy_id, executions[0]["id"])
    assert len(tasks) == 1 and tasks[0]["status"] == "Success" and tasks[0]["run_count"] == 1
    assert tasks[0]["execution_id"] == executions[0]["id"] and tasks[0]["extra_attrs"]["address"] == receiver.url
    assert "attempt 1/3" in _log(hooks, policy_id, executions[0]["id"], tasks[0]["id"])
    assert "HTTP 200" in _log(hooks, policy_id, executions[0]["id"], tasks[0]["id"])

    last = hooks.get(f"{API}/projects/library/webhook/lasttrigger").get_json()
    assert {(t["policy_name"], t["event_type"]) for t in last} == {("hook", e) for e in events}
    assert all(t["last_trigger_time"] and t["enabled"] for t in last)


def test_cloudevents_and_slack_payloads(hooks: LiveRegistry, receiver: Receiver) -> None:
    ce_id = _create(hooks, _policy(f"{receiver.url}/ce", name="ce", target={"payload_format": "CloudEvents"}))
    _create(hooks, _policy(f"{receiver.url}/slack", name="slack", target={"type": "slack"}))
    digest, _ = hooks.push_image("library/ce", "latest")
    settle()
    by_path = {r["path"]: r for r in receiver.requests}
    assert set(by_path) == {"/ce", "/slack"}
    cloud = by_path["/ce"]
    assert cloud["headers"]["Content-Type"] == "application/cloudevents+json"
    document = json.loads(cloud["body"])
    assert document["specversion"] == "1.0" and document["type"] == "harbor.artifact.pushed"
    assert document["datacontenttype"] == "application/json" and document["operator"] == "admin"
    assert document["id"] and document["time"].endswith("Z")
    assert document["source"] == f"/projects/1/webhook/policies/{ce_id}"  # Harbor's: the project's id
    assert document["data"]["resources"] == [{"digest": digest, "tag": "latest",
                                              "resource_url": f"{HOST}/library/ce:latest"}]  # fmt: skip
    slack = json.loads(by_path["/slack"]["body"])
    text = slack["blocks"][1]["text"]["text"]
    assert "PUSH_ARTIFACT" in text and digest in text and "*operator:* admin" in text


def test_failing_receiver_is_retried_with_backoff_and_the_task_ends_in_error(
    hooks: LiveRegistry, receiver: Receiver
) -> None:
    receiver.default_status = 500
    policy_id = _create(hooks, _policy(receiver.url))
    hooks.push_image("library/fail", "v1")
    settle()
    assert len(receiver.requests) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1, gaps  # 1x then 2x the backoff
    (execution,) = _executions(hooks, policy_id)
    assert execution["status"] == "Error" and execution["metrics"]["error_task_count"] == 1
    (task,) = _tasks(hooks, policy_id, execution["id"])
    assert task["status"] == "Error" and task["run_count"] == 3
    assert task["status_message"] == "gave up after 3 attempts: HTTP 500"
    log = _log(hooks, policy_id, execution["id"], task["id"])
    assert [f"attempt {n}/3" in log for n in (1, 2, 3)] == [True] * 3 and "gave up" in log


def test_a_receiver_that_recovers_succeeds_on_a_later_attempt(hooks: LiveRegistry, receiver: Receiver) -> None:
    receiver.statuses = [503]
    policy_id = _create(hooks, _policy(receiver.url))
    hooks.push_image("library/flaky", "v1")
    settle()
    assert len(receiver.requests) == 2
    (execution,) = _executions(hooks, policy_id)
    (task,) = _tasks(hooks, policy_id, execution["id"])
    assert (execution["status"], task["status"], task["run_count"]) == ("Success", "Success", 2)


def test_an_unreachable_receiver_ends_in_error_with_the_exception(hooks: LiveRegistry) -> None:
    closed = Receiver()
    closed.close()  # nothing listens on its port any more
    policy_id = _create(hooks, _policy(closed.url))
    hooks.push_image("library/gone", "v1")
    settle()
    (execution,) = _executions(hooks, policy_id)
    (task,) = _tasks(hooks, policy_id, execution["id"])
    assert task["status"] == "Error" and task["run_count"] == 3
    # The kind of failure only: an error's text names addresses and tells open ports from closed.
    assert task["status_message"] == "gave up after 3 attempts: connection failed (NewConnectionError)"


INTERNAL_TARGETS = [
    "http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://0x7f000001:{port}/", "http://127.1:{port}/",
    "http://017700000001:22/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/", "http://10.0.0.1/", "http://[fd00::1]/", "http://0.0.0.0:{port}/",
]  # fmt: skip


@pytest.mark.parametrize("kind", ["http", "slack"])
def test_internal_targets_are_refused_without_an_allowed_network(
    registry: LiveRegistry, receiver: Receiver, kind: str
) -> None:
    """A project admin used webhooks as a port scanner of the registry's own network (finding 2)."""
    port = receiver.url.rsplit(":", 1)[1]
    answers = []
    for address in INTERNAL_TARGETS:
        body = _policy(address.format(port=port), target={"type": kind})
        response = registry.post(f"{API}/projects/library/webhook/policies", json=body)
        assert response.status_code == 400, (address, response.get_data()[:300])
        answers.append(response.get_json()["errors"][0])
    assert all(a == {"code": "BAD_REQUEST", "message": answers[0]["message"]} for a in answers), answers
    assert registry.get(f"{API}/projects/library/webhook/policies").get_json() == []
    public = _create(registry, _policy("http://8.8.8.8/hook", target={"type": kind}))
    changed = registry.put(f"{API}/projects/library/webhook/policies/{public}", json=_policy(receiver.url))
    assert changed.status_code == 400 and changed.get_json()["errors"][0] == answers[0]
    assert receiver.requests == []


def test_a_target_refused_at_delivery_gets_a_generic_reason(hooks: LiveRegistry, receiver: Receiver) -> None:
    """Allowed when saved, refused when delivered (the network was taken out of the allowlist, or a
    name now resolves inside): nothing is sent and the log says only that it was refused."""
    policy_id = _create(hooks, _policy(receiver.url, target={"auth_header": "Bearer s3cret"}))
    hooks.configure(egress_allow_networks="")
    hooks.push_image("library/refused", "v1")
    settle()
    assert receiver.requests == []
    (execution,) = _executions(hooks, policy_id)
    (task,) = _tasks(hooks, policy_id, execution["id"])
    assert task["status"] == "Error"
    assert task["status_message"] == "gave up after 3 attempts: refused: the target address is not allowed"
    log = _log(hooks, policy_id, execution["id"], task["id"])
    assert "HTTP" not in log and "Error" not in log.replace("gave up", "")


def test_disabled_or_uninterested_policies_send_nothing(hooks: LiveRegistry, receiver: Receiver) -> None:
    disabled = _create(hooks, _policy(receiver.url, name="off", enabled=False))
    pulls = _create(hooks, _policy(receiver.url, name="pulls", event_types=["PULL_ARTIFACT"]))
    hooks.push_image("library/quiet", "v1")
    settle()
    assert receiver.requests == []
    assert _executions(hooks, disabled) == [] and _executions(hooks, pulls) == []
    last = hooks.get(f"{API}/projects/library/webhook/lasttrigger").get_json()
    assert all(t["last_trigger_time"] == "0001-01-01T00:00:00.000Z" for t in last)  # Go's zero time, as Harbor


def test_a_slow_receiver_does_not_hold_up_other_event_consumers(hooks: LiveRegistry, receiver: Receiver) -> None:
    from chalicelib.wiring import services

    receiver.delay = 3.0
    _create(hooks, _policy(receiver.url))
    hooks.push_image("library/slow", "v1")
    started = time.monotonic()
    assert services().events.drain(30)
    assert time.monotonic() - started < 2.5  # the bus is free while the POST is still waiting
    settle()
    assert len(receiver.requests) == 1


def test_a_private_project_says_private(hooks: LiveRegistry, receiver: Receiver) -> None:
    response = hooks.post(f"{API}/projects", json={"project_name": "secret", "metadata": {"public": "false"}})
    assert response.status_code == 201
    _create(hooks, _policy(receiver.url), project="secret")
    hooks.push_image("secret/app", "v1")
    settle()
    (document,) = receiver.documents()
    assert document["event_data"]["repository"]["repo_type"] == "private"


# Bad input.

_BASE = f"{API}/projects/library/webhook/policies"
_BAD_BODIES = [
    pytest.param(b"{not json", 400, id="malformed-json"),
    pytest.param(b"[]", 400, id="not-an-object"),
    pytest.param({"unknown": 1}, 400, id="unknown-field"),
    pytest.param({"name": ""}, 400, id="no-name"),
    pytest.param({"event_types": []}, 400, id="no-event-types"),
    pytest.param({"event_types": ["FOO"]}, 400, id="bad-event-type"),
    pytest.param({"event_types": [1]}, 400, id="event-type-not-a-string"),
    pytest.param({"enabled": "yes"}, 400, id="enabled-not-a-bool"),
    pytest.param({"targets": []}, 400, id="no-targets"),
    pytest.param({"targets": "http://x"}, 400, id="targets-not-a-list"),
    pytest.param({"target": {"type": "email"}}, 400, id="bad-target-type"),
    pytest.param({"target": {"address": "ftp://example.com/x"}}, 400, id="bad-address-scheme"),
    pytest.param({"target": {"address": "not a url"}}, 400, id="bad-address"),
    pytest.param({"target": {"address": "http://"}}, 400, id="address-without-host"),
    pytest.param({"target": {"payload_format": "XML"}}, 400, id="bad-payload-format"),
    pytest.param({"target": {"type": "slack", "payload_format": "CloudEvents"}}, 400, id="slack-cloudevents"),
    pytest.param({"target": {"skip_cert_verify": "no"}}, 400, id="skip-cert-verify-not-a-bool"),
    pytest.param({"target": {"extra": 1}}, 400, id="unknown-target-field"),
    pytest.param({"targets": [{"address": "http://h"}] * 11}, 400, id="too-many-targets"),
    pytest.param({"name": "x" * 300}, 400, id="name-too-long"),
]


def _bad_body(value: Any, receiver: Receiver) -> bytes:
    if isinstance(value, bytes):
        return value
    overrides = dict(value)
    return json.dumps(_policy(receiver.url, **overrides)).encode()


@pytest.mark.parametrize(("value", "status"), _BAD_BODIES)
def test_bad_policy_bodies_are_refused_and_write_nothing(
    hooks: LiveRegistry, receiver: Receiver, value: Any, status: int
) -> None:
    existing = _create(hooks, _policy(receiver.url, name="existing"))
    before = hooks.get(f"{_BASE}/{existing}").get_json()
    data = _bad_body(value, receiver)
    headers = {"Content-Type": "application/json"}
    _errors(hooks.post(_BASE, data=data, headers=headers), status)
    _errors(hooks.put(f"{_BASE}/{existing}", data=data, headers=headers), status)
    assert hooks.get(_BASE).headers["X-Total-Count"] == "1"
    assert hooks.get(f"{_BASE}/{existing}").get_json() == before


def test_duplicate_names_conflict(hooks: LiveRegistry, receiver: Receiver) -> None:
    first = _create(hooks, _policy(receiver.url, name="a"))
    second = _create(hooks, _policy(receiver.url, name="b"))
    _errors(hooks.post(_BASE, json=_policy(receiver.url, name="a")), 409)
    _errors(hooks.put(f"{_BASE}/{second}", json=_policy(receiver.url, name="a")), 409)
    assert sorted(p["name"] for p in hooks.get(_BASE).get_json()) == ["a", "b"]
    assert first != second


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/abc", 400),
        ("/-1", 400),
        ("/" + "9" * 30, 400),
        ("/999999", 404),
        ("/999999/executions", 404),
        ("/abc/executions", 400),
        ("/{id}/executions/abc/tasks", 400),
        ("/{id}/executions/999999/tasks", 404),
        ("/{id}/executions/999999/tasks/1/log", 404),
        ("/{id}/executions/1/tasks/abc/log", 400),
        ("?page_size=100000", 400),
        ("?page=0", 400),
        ("?q=name%3D%7Bbroken", 400),
        ("?q=nosuchfield%3D1", 400),
        ("/{id}/executions?page_size=100000", 400),
        ("/{id}/executions?q=bogus%3D1", 400),
        ("/{id}/executions/{eid}/tasks?page_size=0", 400),
    ],
)
def test_bad_ids_and_queries(hooks: LiveRegistry, receiver: Receiver, path: str, status: int) -> None:
    policy_id = _create(hooks, _policy(receiver.url))
    hooks.push_image("library/ids", "v1")
    settle()
    (execution,) = _executions(hooks, policy_id)
    _errors(hooks.get(_BASE + path.format(id=policy_id, eid=execution["id"])), status)


def test_executions_of_another_policy_or_project_are_not_found(hooks: LiveRegistry, receiver: Receiver) -> None:
    policy_id = _create(hooks, _policy(receiver.url))
    other = _create(hooks, _policy(receiver.url, name="other", enabled=False))
    hooks.push_image("library/cross", "v1")
    settle()
    (execution,) = _executions(hooks, policy_id)
    (task,) = _tasks(hooks, policy_id, execution["id"])
    _errors(hooks.get(f"{_BASE}/{other}/executions/{execution['id']}/tasks"), 404)
    _errors(hooks.get(f"{_BASE}/{other}/executions/{execution['id']}/tasks/{task['id']}/log"), 404)
    # A task id that is an execution, not one of its tasks.
    _errors(hooks.get(f"{_BASE}/{policy_id}/executions/{execution['id']}/tasks/{execution['id']}/log"), 404)
    _errors(hooks.get(f"{API}/projects/nosuchproject/webhook/policies"), 404)
    _errors(hooks.get(f"{API}/projects/nosuchproject/webhook/lasttrigger"), 404)


def test_roles_credentials_and_anonymous(hooks: LiveRegistry, receiver: Receiver) -> None:
    response = hooks.post(f"{API}/projects", json={"project_name": "team", "metadata": {"public": "false"}})
    assert response.status_code == 201
    base = f"{API}/projects/team/webhook"
    policy_id = _create(hooks, _policy(receiver.url), project="team")
    maintainer, developer, guest = _user(hooks, "maint"), _user(hooks, "dev"), _user(hooks, "guest")
    outsider = _user(hooks, "outsider")
    for (name, _), role in ((maintainer, 4), (developer, 2), (guest, 3)):
        member = {"role_id": role, "member_user": {"username": name}}
        assert hooks.post(f"{API}/projects/team/members", json=member).status_code == 201

    body = _policy(receiver.url, name="mine")
    # Harbor: maintainers may list policies and executions; only project admins read and manage.
    assert hooks.get(f"{base}/policies", auth=maintainer).status_code == 200
    assert hooks.get(f"{base}/policies/{policy_id}/executions", auth=maintainer).status_code == 200
    _errors(hooks.get(f"{base}/policies/{policy_id}", auth=maintainer), 403)
    _errors(hooks.get(f"{base}/lasttrigger", auth=maintainer), 403)
    for who in (maintainer, developer, guest):
        _errors(hooks.post(f"{base}/policies", json=body, auth=who), 403)
        _errors(hooks.put(f"{base}/policies/{policy_id}", json=body, auth=who), 403)
        _errors(hooks.delete(f"{base}/policies/{policy_id}", auth=who), 403)
    for who in (developer, guest):  # members of the project, but webhooks are not theirs to see
        _errors(hooks.get(f"{base}/policies", auth=who), 403)
        _errors(hooks.get(f"{base}/events", auth=who), 403)
        _errors(hooks.get(f"{base}/policies/{policy_id}/executions", auth=who), 403)
    _errors(hooks.get(f"{base}/policies", auth=outsider), 404)  # a private project it cannot see
    _errors(hooks.post(f"{base}/policies", json=body, auth=outsider), 404)
    _errors(hooks.get(f"{base}/policies", auth=("admin", "wrong")), 401)
    _errors(hooks.get(f"{base}/policies", auth=None), 401)
    _errors(hooks.get(f"{base}/lasttrigger", auth=None), 401)
    _errors(hooks.post(f"{base}/policies", json=body, auth=None), 401)
    policies = hooks.get(f"{base}/policies").get_json()
    assert [(p["id"], p["name"]) for p in policies] == [(policy_id, "hook")]


def test_concurrent_creates_of_one_name_make_one_policy(
    hooks: LiveRegistry, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.functional.helpers import run_together, serialise_aws_calls

    serialise_aws_calls(monkeypatch)  # DynamoDB applies each call atomically; moto needs help

    def create(reg: Any) -> int:
        return int(reg.post(_BASE, json=_policy(receiver.url, name="race")).status_code)

    statuses = run_together(hooks, 4, lambda index, reg: create(reg))
    assert sorted(statuses) == [201, 409, 409, 409]
    assert hooks.get(_BASE).headers["X-Total-Count"] == "1"


def test_on_aws_the_event_consumer_delivers_before_it_returns(hooks: LiveRegistry, receiver: Receiver) -> None:
    """With an EventBridge bus the API process delivers nothing; the consumer Lambda's invocation
    does the delivery (retries included) before it returns."""
    from chalicelib.events import Event, EventType
    from chalicelib.jobs.events import consume

    hooks.configure(event_bus_name="default", webhook_backoff_seconds=0.05, webhook_policy_cache_seconds=0,
                    egress_allow_networks=RECEIVER_NETWORK)  # fmt: skip
    receiver.statuses = [500]
    policy_id = _create(hooks, _policy(receiver.url))
    digest, _ = hooks.push_image("library/aws", "v1")
    assert receiver.requests == []
    event = Event.now(EventType.PUSH_ARTIFACT, project="library", repository="library/aws", digest=digest, tag="v1")
    consume(event.to_dict())
    assert len(receiver.requests) == 2 and receiver.documents()[1]["event_data"]["resources"][0]["digest"] == digest
    (execution,) = _executions(hooks, policy_id)
    assert execution["status"] == "Success" and execution["metrics"]["task_count"] == 1


def test_an_abandoned_delivery_is_marked_error_when_read(hooks: LiveRegistry, receiver: Receiver) -> None:
    """A delivery whose process stopped (a restart, a Lambda timeout) never stays Running."""
    from chalicelib.core.jobs import Trigger
    from chalicelib.services.jobs import JobService
    from chalicelib.stores.jobs import JobStore
    from chalicelib.wiring import services

    policy_id = _create(hooks, _policy(receiver.url))
    long_ago = int(time.time()) - 86_400
    # What the deliverer had written a day ago when its process stopped.
    then = JobService(JobStore(lambda: long_ago), services().jobs._runner, lambda: long_ago)
    base = {"policy_id": policy_id, "project": "library", "event_type": "PUSH_ARTIFACT"}
    execution = then.record("WEBHOOK", Trigger.EVENT, base, listed_under=f"WEBHOOK#{policy_id}", running=True)
    (task,) = then.create_tasks(execution.job_id, [(receiver.url, {"type": "http", "address": receiver.url})])

    (listed,) = _executions(hooks, policy_id)
    assert listed["status"] == "Error" and listed["status_message"].startswith("interrupted")
    (listed_task,) = _tasks(hooks, policy_id, execution.job_id)
    assert listed_task["status"] == "Error" and "interrupted" in _log(hooks, policy_id, execution.job_id, task.task_id)


def test_what_one_delivery_costs_in_dynamodb_calls(
    hooks: LiveRegistry, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event, one policy, one target answering at once: the calls the delivery makes (off the
    request path), counted so a change that adds calls shows up here."""
    from botocore.client import BaseClient

    calls: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            calls.append((threading.current_thread().name, operation))
        return original(client, operation, params)

    _create(hooks, _policy(receiver.url))
    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    hooks.push_image("library/cost", "v1")
    settle()
    monkeypatch.setattr(BaseClient, "_make_api_call", original)
    delivery = sorted(op for thread, op in calls if thread.startswith("webhooks"))
    print(f"delivery calls: {len(delivery)} {delivery}")
    assert len(receiver.requests) == 1
    # Puts: the execution (created Running, its metrics counting its task) and the last trigger.
    # BatchWrite: the task. Transactions: the task to Running and to its end (its log line with
    # it), each with the execution's metrics. Updates: two ids, the execution to its end. Get:
    # whether the project is public.
    assert delivery == sorted(["PutItem"] * 2 + ["BatchWriteItem"] + ["TransactWriteItems"] * 2
                              + ["UpdateItem"] * 3 + ["GetItem"])  # fmt: skip


def test_a_push_past_the_quota_sends_quota_exceed(hooks: LiveRegistry, receiver: Receiver) -> None:
    response = hooks.post(f"{API}/projects", json={"project_name": "tight", "storage_limit": 100})
    assert response.status_code == 201, response.get_data()
    _create(hooks, _policy(receiver.url, event_types=["QUOTA_EXCEED"]), project="tight")
    data = b"x" * 200
    digest = digest_of(data)
    refused = hooks.post("/v2/tight/app/blobs/uploads/", query_string={"digest": digest}, data=data,
                         headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert refused.status_code == 403, refused.get_data()
    settle()
    (document,) = receiver.documents()
    assert document["type"] == "QUOTA_EXCEED" and document["operator"] == "admin"
    assert document["event_data"]["repository"]["namespace"] == "tight"
    assert "exceed the configured upper limit of 100" in document["event_data"]["custom_attributes"]["Details"]
