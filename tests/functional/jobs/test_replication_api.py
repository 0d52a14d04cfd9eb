"""Harbor's /replication API over HTTP: policies (CRUD, validation, bad input, who may call),
executions on the replication state machine (moto), their tasks and logs, and the triggers
(event-based from a push). The copy itself against real peers is in tests/e2e."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.clock import MovableClock
from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import REGION
from tests.functional.jobs.conftest import API, wait_for_executions

PASSWORD = "Passw0rd-Replication"
ENDED = {"Succeed", "Failed", "Stopped"}


class Replication(LiveRegistry):
    remote_id: int

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.request(method, f"{API}{path}", **kwargs)

    def policy(self, **fields: Any) -> dict[str, Any]:
        return {"name": "push-lib", "dest_registry": {"id": self.remote_id}, "dest_namespace": "mirror",
                "filters": [{"type": "name", "value": "rep/**"}], "trigger": {"type": "manual"},
                "enabled": True, **fields}  # fmt: skip

    def create(self, **fields: Any) -> int:
        response = self.call("POST", "/replication/policies", self.policy(**fields))
        assert response.status_code == 201, response.get_data()[:500]
        return int(response.headers["Location"].rsplit("/", 1)[1])

    def start(self, policy_id: int) -> int:
        response = self.call("POST", "/replication/executions", {"policy_id": policy_id})
        assert response.status_code == 201, response.get_data()[:500]
        return int(response.headers["Location"].rsplit("/", 1)[1])

    def wait(self, execution_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.call("GET", f"/replication/executions/{execution_id}").get_json()
            if found["status"] in ENDED:
                wait_for_executions(deadline - time.monotonic())
                return dict(found)
            time.sleep(0.02)
        raise AssertionError("the replication execution did not end")


@pytest.fixture
def rep(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replication]:
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.core.registries import Registry
    from chalicelib.local import moto_patches, stepfunctions
    from chalicelib.stores.registries import RegistryStore

    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)
    stepfunctions.install()
    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    registry.__class__ = Replication
    registry.configure(replication_state_machine_arn=arns["REPLICATION"])
    assert isinstance(registry, Replication)
    # A peer nobody answers at (port 9, discard): stored directly, as the registries API checks health.
    registry.remote_id = RegistryStore().create(Registry(0, "peer", "docker-registry", "http://127.0.0.1:9")).id
    response = registry.call("POST", "/projects", {"project_name": "rep", "metadata": {"public": "false"}})
    assert response.status_code == 201, response.get_data()
    try:
        yield registry
    finally:
        wait_for_executions(60)


def _errors(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert isinstance(body["errors"], list) and body["errors"][0]["message"], body
    return str(body["errors"][0]["code"])


def test_policy_crud_in_harbors_shape(rep: Replication) -> None:
    policy_id = rep.create(filters=[{"type": "name", "value": "rep/**"},
                                    {"type": "tag", "value": "v*", "decoration": "excludes"},
                                    {"type": "resource", "value": "image"}],
                           dest_namespace_replace_count=1, override=True, speed=100, copy_by_chunk=True)  # fmt: skip
    got = rep.call("GET", f"/replication/policies/{policy_id}").get_json()
    assert got["name"] == "push-lib" and got["id"] == policy_id
    assert got["src_registry"]["id"] == 0 and got["src_registry"]["name"] == "Local"
    assert got["dest_registry"]["id"] == rep.remote_id and got["dest_registry"]["name"] == "peer"
    assert got["dest_namespace"] == "mirror" and got["dest_namespace_replace_count"] == 1
    assert got["filters"][1] == {"type": "tag", "value": "v*", "decoration": "excludes"}
    assert got["trigger"] == {"type": "manual", "trigger_settings": {}}  # an empty cron is omitted, as Harbor does
    assert (got["override"], got["speed"], got["copy_by_chunk"], got["enabled"]) == (True, 100, True, True)
    assert "replicate_deletion" not in got and "deletion" not in got  # false: omitted, as Harbor does

    listed = rep.call("GET", "/replication/policies", query_string={"name": "push"})
    assert listed.headers["X-Total-Count"] == "1" and listed.get_json()[0]["id"] == policy_id
    assert rep.call("GET", "/replication/policies", query_string={"name": "nomatch"}).get_json() == []

    # Harbor's portal sends the policy back whole (registry objects, times): accepted.
    changed = {**got, "name": "renamed", "deletion": True, "trigger": {"type": "scheduled",
               "trigger_settings": {"cron": "0 0 * * * *"}}}  # fmt: skip
    assert rep.call("PUT", f"/replication/policies/{policy_id}", changed).status_code == 200
    got = rep.call("GET", f"/replication/policies/{policy_id}").get_json()
    assert got["name"] == "renamed" and got["replicate_deletion"] is True
    assert got["trigger"]["trigger_settings"]["cron"] == "0 0 * * * *"
    from chalicelib.wiring import services

    assert services().jobs.schedule("REPLICATION", policy_id) is not None  # the shared schedules
    # The name is free again, the new one taken.
    rep.create()
    assert _errors(rep.call("POST", "/replication/policies", rep.policy(name="renamed")), 409) == "CONFLICT"
    # A registry a policy names cannot be deleted.
    assert services().registries.in_use(rep.remote_id) is not None

    assert rep.call("DELETE", f"/replication/policies/{policy_id}").status_code == 200
    assert _errors(rep.call("GET", f"/replication/policies/{policy_id}"), 404) == "NOT_FOUND"
    assert services().jobs.schedule("REPLICATION", policy_id) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "empty name"),
        ({"dest_registry": None}, "either src_registry or dest_registry"),
        ({"src_registry": {"id": 1}}, "either src_registry or dest_registry"),
        ({"dest_registry": {"id": 424242}}, "registry 424242 not found"),
        ({"dest_namespace": "UPPER/case"}, "invalid destination namespace"),
        ({"trigger": {"type": "scheduled"}}, "cron string cannot be empty"),
        ({"trigger": {"type": "scheduled", "trigger_settings": {"cron": "*/5 * * * *"}}}, "invalid cron"),
        ({"trigger": {"type": "hourly"}}, "invalid trigger type"),
        ({"trigger": {"type": "event_based"}, "single_active_replication": True}, "single_active_replication"),
        ({"filters": [{"type": "name", "value": ["a"]}]}, "isn't string"),
        ({"filters": [{"type": "resource", "value": "chart"}]}, "invalid resource filter"),
        ({"filters": [{"type": "label", "value": "gold"}]}, "string slice"),
        ({"filters": [{"type": "other", "value": "x"}]}, "invalid filter type"),
        ({"filters": [{"type": "tag", "value": "[x-"}]}, "invalid tag filter"),
        ({"filters": [{"type": "tag", "value": "x", "decoration": "sometimes"}]}, "decoration"),
    ],
)
def test_invalid_policies_are_400_with_harbors_reason(rep: Replication, fields: dict[str, Any], message: str) -> None:
    response = rep.call("POST", "/replication/policies", rep.policy(**fields))
    assert _errors(response, 400) == "BAD_REQUEST"
    assert message in response.get_json()["errors"][0]["message"]
    assert rep.call("GET", "/replication/policies").get_json() == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{",
        b'{"name": 1}',
        b'{"name": "x", "unknown": 1}',
        b'{"name": "x", "enabled": "yes"}',
        b'{"name": "x", "dest_registry": {"id": "1"}}',
        b'{"name": "x", "dest_namespace_replace_count": 500}',
        b'{"name": "x", "speed": 1e99}',
        b'{"name": "x", "filters": {"type": "name"}}',
        json.dumps({"name": "x" * 300}).encode(),
        json.dumps({"name": "x", "description": "d" * 5000}).encode(),
        json.dumps({"name": "x", "filters": [{"type": "name", "value": "a"}] * 50}).encode(),
        b'{"name": "x", "trigger": ' + b'{"a": ' * 200 + b"1" + b"}" * 201,
        b'{"name": "' + b"x" * 300_000 + b'"}',
    ],
)
def test_bad_policy_bodies_are_4xx(rep: Replication, body: bytes) -> None:
    for method, path in (("POST", "/replication/policies"), ("PUT", "/replication/policies/1")):
        response = rep.call(method, path, data=body, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:200])
        _errors(response, response.status_code)
    assert rep.call("GET", "/replication/policies").get_json() == []


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 40, "0x10"])
def test_bad_ids_are_400(rep: Replication, bad: str) -> None:
    for method, path in (("GET", f"/replication/policies/{bad}"), ("DELETE", f"/replication/policies/{bad}"),
                         ("GET", f"/replication/executions/{bad}"), ("PUT", f"/replication/executions/{bad}"),
                         ("GET", f"/replication/executions/{bad}/tasks"),
                         ("GET", f"/replication/executions/1/tasks/{bad}/log")):  # fmt: skip
        assert _errors(rep.call(method, path), 400) == "BAD_REQUEST"
    response = rep.call("GET", "/replication/executions", query_string={"policy_id": bad})
    assert _errors(response, 400) == "BAD_REQUEST"


def test_unknown_ids_are_404(rep: Replication) -> None:
    for method, path in (("GET", "/replication/policies/4242"), ("DELETE", "/replication/policies/4242"),
                         ("GET", "/replication/executions/4242"), ("PUT", "/replication/executions/4242"),
                         ("GET", "/replication/executions/4242/tasks"),
                         ("GET", "/replication/executions/4242/tasks/1/log")):  # fmt: skip
        assert _errors(rep.call(method, path), 404) == "NOT_FOUND"
    for policy_id in (4242, 0):
        assert _errors(rep.call("POST", "/replication/executions", {"policy_id": policy_id}), 404) == "NOT_FOUND"
    for body in ({}, {"policy_id": "1"}, {"policy_id": -1}, {"policy_id": 1, "x": 1}):
        assert _errors(rep.call("POST", "/replication/executions", body), 400) == "BAD_REQUEST"


def test_credentials_and_roles(rep: Replication) -> None:
    created = rep.call("POST", "/users", {"username": "repdev", "password": PASSWORD,
                                          "email": "repdev@example.com", "realname": "r"})  # fmt: skip
    assert created.status_code == 201
    body = json.dumps(rep.policy()).encode()
    send = {"data": body, "headers": {"Content-Type": "application/json"}}
    for method, path in (("GET", "/replication/policies"), ("POST", "/replication/policies"),
                         ("GET", "/replication/policies/1"), ("PUT", "/replication/policies/1"),
                         ("DELETE", "/replication/policies/1"), ("GET", "/replication/executions"),
                         ("POST", "/replication/executions"), ("GET", "/replication/executions/1"),
                         ("PUT", "/replication/executions/1"), ("GET", "/replication/executions/1/tasks"),
                         ("GET", "/replication/executions/1/tasks/1/log")):  # fmt: skip
        if path == "/replication/executions":
            send = {"data": b'{"policy_id": 1}', "headers": {"Content-Type": "application/json"}}
        assert _errors(rep.call(method, path, auth=None, **send), 401) == "UNAUTHORIZED"
        if method == "GET" and path == "/replication/policies":  # once: sign-in failures are throttled
            assert _errors(rep.call(method, path, auth=("admin", "wrong"), **send), 401) == "UNAUTHORIZED"
        assert _errors(rep.call(method, path, auth=("repdev", PASSWORD), **send), 403) == "FORBIDDEN"
    assert rep.call("GET", "/replication/policies").get_json() == []


def test_a_disabled_policy_does_not_start(rep: Replication) -> None:
    policy_id = rep.create(enabled=False)
    assert _errors(rep.call("POST", "/replication/executions", {"policy_id": policy_id}), 412) == "PRECONDITION"


def test_an_unreachable_destination_fails_each_task_with_the_reason(rep: Replication) -> None:
    digest, _ = rep.push_image("rep/app", "v1", layers=1)
    policy_id = rep.create()
    execution_id = rep.start(policy_id)
    done = rep.wait(execution_id)
    assert done["status"] == "Failed" and done["trigger"] == "manual" and done["policy_id"] == policy_id
    counts = [done.get(k, 0) for k in ("total", "failed", "succeed", "in_progress")]  # zeros omitted (Harbor)
    assert counts == [1, 1, 0, 0]
    assert "1 of 1 tasks did not succeed" in done["status_text"]
    tasks = rep.call("GET", f"/replication/executions/{execution_id}/tasks").get_json()
    assert [(t["src_resource"], t["dst_resource"], t["operation"], t["status"]) for t in tasks] == [
        ("rep/app:[v1]", "mirror/app:[v1]", "copy", "Failed")]  # fmt: skip
    log = rep.call("GET", f"/replication/executions/{execution_id}/tasks/{tasks[0]['id']}/log")
    assert log.headers["Content-Type"].startswith("text/plain") and "error:" in log.get_data(as_text=True)

    # Lists filter as Harbor's: by policy, status and trigger, in the API's words.
    def ids(**query: str) -> list[int]:
        return [e["id"] for e in rep.call("GET", "/replication/executions", query_string=query).get_json()]

    assert ids(policy_id=str(policy_id)) == [execution_id] and ids(policy_id="999") == []
    assert ids(status="Failed") == [execution_id] and ids(status="Succeed") == []
    assert ids(trigger="manual") == [execution_id] and ids(trigger="event_based") == []
    assert rep.call("GET", f"/replication/executions/{execution_id}/tasks",
                    query_string={"status": "Succeed"}).get_json() == []  # fmt: skip
    # Stopping an ended execution changes nothing.
    assert rep.call("PUT", f"/replication/executions/{execution_id}").status_code == 200
    assert rep.call("GET", f"/replication/executions/{execution_id}").get_json()["status"] == "Failed"
    assert digest


def test_a_pull_from_an_unreachable_source_fails_the_execution_with_the_reason(rep: Replication) -> None:
    policy_id = rep.create(dest_registry=None, src_registry={"id": rep.remote_id}, dest_namespace="")
    done = rep.wait(rep.start(policy_id))
    assert done["status"] == "Failed" and "total" not in done and done["status_text"]


def test_a_push_starts_an_event_based_policy_whose_filters_select_it(rep: Replication) -> None:
    policy_id = rep.create(trigger={"type": "event_based"}, filters=[{"type": "name", "value": "rep/app"},
                                                                     {"type": "tag", "value": "v*"}])  # fmt: skip
    rep.push_image("rep/other", "v1", layers=1)  # another repository: not replicated
    rep.push_image("rep/app", "latest", layers=1)  # another tag: not replicated
    rep.push_image("rep/app", "v2", layers=1)
    from chalicelib.wiring import services

    services().events.drain()
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        found = rep.call("GET", "/replication/executions", query_string={"policy_id": str(policy_id)}).get_json()
        time.sleep(0.05)
    assert len(found) == 1 and found[0]["trigger"] == "event_based"
    rep.wait(found[0]["id"])
    tasks = rep.call("GET", f"/replication/executions/{found[0]['id']}/tasks").get_json()
    assert [t["src_resource"] for t in tasks] == ["rep/app:[v2]"]


def test_a_scheduled_policy_starts_once_per_cron_slot(rep: Replication, clock: MovableClock) -> None:
    from chalicelib.jobs.schedules import run_scheduled

    policy_id = rep.create(trigger={"type": "scheduled", "trigger_settings": {"cron": "* * * * * *"}})
    clock.advance(1)  # the first slot after the policy was saved
    started = run_scheduled({"vendor_type": "REPLICATION"})["job_ids"]
    assert len(started) == 1
    done = rep.wait(started[0])
    assert done["trigger"] == "scheduled" and done["policy_id"] == policy_id
    # Disabled: the schedule goes, nothing starts (however many slots pass).
    policy = rep.call("GET", f"/replication/policies/{policy_id}").get_json()
    assert rep.call("PUT", f"/replication/policies/{policy_id}", {**policy, "enabled": False}).status_code == 200
    clock.advance(60)
    assert run_scheduled({"vendor_type": "REPLICATION"})["job_ids"] == []


def test_a_policy_with_a_running_execution_cannot_be_deleted(rep: Replication, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from chalicelib.services.replication_run import ReplicationRun

    entered, release = threading.Event(), threading.Event()
    original = ReplicationRun.begin

    def paused(self: ReplicationRun, job_id: int) -> Any:
        entered.set()
        assert release.wait(30)
        return original(self, job_id)

    monkeypatch.setattr(ReplicationRun, "begin", paused)
    policy_id = rep.create(single_active_replication=True)
    execution_id = rep.start(policy_id)
    assert entered.wait(30)
    try:
        assert _errors(rep.call("DELETE", f"/replication/policies/{policy_id}"), 412) == "PRECONDITION"
        assert _errors(rep.call("POST", "/replication/executions", {"policy_id": policy_id}), 409) == "CONFLICT"
        assert rep.call("PUT", f"/replication/executions/{execution_id}").status_code == 200
    finally:
        release.set()
    assert rep.wait(execution_id)["status"] == "Stopped"
    assert rep.call("DELETE", f"/replication/policies/{policy_id}").status_code == 200
