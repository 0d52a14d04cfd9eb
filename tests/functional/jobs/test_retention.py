"""Tag retention end to end over HTTP: Harbor's /retentions API, the retention state machine on moto,
real deletes. Push and pull times are set on the artifact rows directly (a test cannot wait days);
everything else goes through the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from tests.clock import MovableClock
from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import REGION
from tests.functional.jobs.conftest import API, FINAL, wait_for_executions

DAY = 86_400
PROJECT = "ret"


class Retention(LiveRegistry):
    project_id: int

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.request(method, f"{API}{path}", **kwargs)

    def push(self, repo: str, tag: str | None, *, age_days: float, pulled_days_ago: float | None = None) -> str:
        digest, _ = self.push_image(f"{PROJECT}/{repo}", tag, layers=1)
        now = time.time()
        values: dict[str, Any] = {":p": {"N": str(int(now - age_days * DAY))}}
        update = "SET push_time = :p"
        if pulled_days_ago is not None:
            values[":l"] = {"N": str(int(now - pulled_days_ago * DAY))}
            update += ", pull_time = :l"
        key = {"pk": {"S": f"REPO#{PROJECT}/{repo}"}, "sk": {"S": f"MANIFEST#{digest}"}}
        self.dynamodb.update_item(
            TableName=self.table, Key=key, UpdateExpression=update, ExpressionAttributeValues=values
        )
        return digest

    def policy(self, *rules: dict[str, Any], cron: str = "") -> dict[str, Any]:
        return {"algorithm": "or", "rules": list(rules),
                "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
                "scope": {"level": "project", "ref": self.project_id}}  # fmt: skip

    def create(self, *rules: dict[str, Any]) -> int:
        response = self.call("POST", "/retentions", self.policy(*rules))
        assert response.status_code == 201, response.get_data()[:500]
        return int(response.headers["Location"].rsplit("/", 1)[1])

    def execute(self, policy_id: int, dry_run: bool, **kwargs: Any) -> dict[str, Any]:
        response = self.call("POST", f"/retentions/{policy_id}/executions", {"dry_run": dry_run}, **kwargs)
        assert response.status_code == 201, response.get_data()[:500]
        execution_id = int(response.headers["Location"].rsplit("/", 1)[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = self.call("GET", f"/retentions/{policy_id}/executions").get_json()
            found = next(e for e in listed if e["id"] == execution_id)
            if found["status"] in FINAL:
                wait_for_executions(deadline - time.monotonic())
                assert found["status"] == "Success", found
                return dict(found)
            time.sleep(0.02)
        raise AssertionError("the retention execution did not finish")

    def logs(self, policy_id: int, execution_id: int) -> str:
        base = f"/retentions/{policy_id}/executions/{execution_id}/tasks"
        tasks = self.call("GET", base).get_json()
        return "".join(self.call("GET", f"{base}/{t['id']}").get_data(as_text=True) for t in tasks)

    def present(self, repo: str, digests: dict[str, str]) -> set[str]:
        """Which of the named artifacts are still there."""
        return {
            name for name, d in digests.items() if self.head(f"/v2/{PROJECT}/{repo}/manifests/{d}").status_code == 200
        }

    def run(self, *rules: dict[str, Any], dry_run: bool = False) -> tuple[int, dict[str, Any]]:
        policy_id = self.create(*rules)
        return policy_id, self.execute(policy_id, dry_run)


@pytest.fixture
def ret(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Retention]:
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches, stepfunctions

    # A run's repositories are Tasks on moto's execution threads, in parallel, beside the test's
    # requests; DynamoDB answers each call atomically, moto only with the runner's lock.
    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)
    stepfunctions.install()
    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    registry.__class__ = Retention
    registry.configure(retention_state_machine_arn=arns["RETENTION"])
    assert isinstance(registry, Retention)
    response = registry.call("POST", "/projects", {"project_name": PROJECT, "metadata": {"public": "false"}})
    assert response.status_code == 201, response.get_data()
    registry.project_id = int(registry.call("GET", f"/projects/{PROJECT}").get_json()["project_id"])
    try:
        yield registry
    finally:
        from chalicelib.wiring import services

        services().immutability.forget(PROJECT)
        wait_for_executions(60)


def rule(template: str, count: int | None = None, *, tags: list[dict[str, Any]] | None = None,
         repos: list[dict[str, Any]] | None = None, disabled: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "disabled": disabled, "action": "retain", "template": template,
        "params": {template: count} if count is not None else {},
        "tag_selectors": tags or [{"kind": "doublestar", "decoration": "matches", "pattern": "**",
                                   "extras": json.dumps({"untagged": True})}],
        "scope_selectors": {"repository": repos or [{"kind": "doublestar", "decoration": "repoMatches",
                                                     "pattern": "**"}]},
    }  # fmt: skip


def tag_sel(decoration: str, pattern: str, untagged: bool | None = None) -> dict[str, Any]:
    extras = json.dumps({"untagged": untagged}) if untagged is not None else None
    return {"kind": "doublestar", "decoration": decoration, "pattern": pattern, "extras": extras}


def four(ret: Retention, repo: str = "app") -> dict[str, str]:
    """a: pushed 10 d ago, pulled 1 d ago; b: 5 d, never pulled; c: 3 d, pulled 8 d ago; d: 0.5 d, pulled 2 d."""
    return {
        "a": ret.push(repo, "v1", age_days=10, pulled_days_ago=1),
        "b": ret.push(repo, "v2", age_days=5),
        "c": ret.push(repo, "v3", age_days=3, pulled_days_ago=8),
        "d": ret.push(repo, "latest", age_days=0.5, pulled_days_ago=2),
    }


# Templates, each with its parameter.


@pytest.mark.parametrize(
    ("template", "count", "kept"),
    [
        ("latestPushedK", 2, {"c", "d"}),
        ("latestPulledN", 1, {"a"}),
        ("latestActiveK", 2, {"a", "d"}),
        ("nDaysSinceLastPush", 4, {"c", "d"}),
        ("nDaysSinceLastPull", 4, {"a", "d"}),
        ("always", None, {"a", "b", "c", "d"}),
        ("nothing", None, set()),
    ],
)
def test_each_template_keeps_what_its_parameter_says(ret: Retention, template: str, count: int | None,
                                                     kept: set[str]) -> None:  # fmt: skip
    digests = four(ret)
    _, execution = ret.run(rule(template, count))
    assert ret.present("app", digests) == kept
    assert "dry_run" not in execution  # false: omitted, as Harbor does


# Tag selectors, the untagged extra, labels.


@pytest.mark.parametrize(("decoration", "kept"), [("matches", {"a", "b", "c"}), ("excludes", {"d"})])
def test_tag_decorations(ret: Retention, decoration: str, kept: set[str]) -> None:
    digests = four(ret)
    ret.run(rule("always", tags=[tag_sel(decoration, "v*")]))
    assert ret.present("app", digests) == kept


@pytest.mark.parametrize("untagged", [True, False])
def test_untagged_extra_decides_for_artifacts_without_tags(ret: Retention, untagged: bool) -> None:
    digests = {"tagged": ret.push("app", "v1", age_days=1), "bare": ret.push("app", None, age_days=1)}
    ret.run(rule("always", tags=[tag_sel("matches", "**", untagged)]))
    assert ret.present("app", digests) == ({"tagged", "bare"} if untagged else {"tagged"})


@pytest.mark.parametrize(
    ("extras", "bare_kept"),
    [('["untagged":true]', True), ("{not json", True), ('{"untagged": "yes"}', True), ("{}", False), ("null", False)],
)
def test_extras_as_harbor_reads_them(ret: Retention, extras: str, bare_kept: bool) -> None:
    """Harbor's UI has sent `["untagged":true]`: Harbor accepts any string and keeps the default
    (untagged artifacts match) when it does not decode into an object; an object without the key
    means false. Created, then updated with PUT as the UI does, then run."""
    digests = {"tagged": ret.push("app", "v1", age_days=1), "bare": ret.push("app", None, age_days=1)}
    selector = {"kind": "doublestar", "decoration": "matches", "pattern": "**", "extras": extras}
    policy_id = ret.create(rule("always"))
    body = {**ret.policy(rule("always", tags=[selector])), "id": policy_id}
    response = ret.call("PUT", f"/retentions/{policy_id}", body)
    assert response.status_code == 200, response.get_data()[:500]
    stored = ret.call("GET", f"/retentions/{policy_id}").get_json()
    assert stored["rules"][0]["tag_selectors"][0]["extras"] == extras
    ret.execute(policy_id, False)
    assert ret.present("app", digests) == ({"tagged", "bare"} if bare_kept else {"tagged"})


@pytest.mark.parametrize(("decoration", "kept"), [("withLabels", {"b"}), ("withoutLabels", {"a", "c", "d"})])
def test_label_selectors(ret: Retention, decoration: str, kept: set[str]) -> None:
    digests = four(ret)
    response = ret.call("POST", "/labels", {"name": "keep", "scope": "p", "project_id": ret.project_id})
    assert response.status_code == 201, response.get_data()
    label_id = int(response.headers["Location"].rsplit("/", 1)[1])
    repo = quote(quote("app", safe=""), safe="")
    attached = ret.call("POST", f"/projects/{PROJECT}/repositories/{repo}/artifacts/{digests['b']}/labels",
                        {"id": label_id})  # fmt: skip
    assert attached.status_code == 200, attached.get_data()
    label = {"kind": "label", "decoration": decoration, "pattern": "keep"}
    ret.run(rule("always", tags=[tag_sel("matches", "**", True), label]))
    assert ret.present("app", digests) == kept


# Repository selectors.


@pytest.mark.parametrize(("decoration", "emptied"), [("repoMatches", "app"), ("repoExcludes", "tools")])
def test_repository_decorations(ret: Retention, decoration: str, emptied: str) -> None:
    app = {"x": ret.push("app", "v1", age_days=1)}
    tools = {"y": ret.push("tools", "v1", age_days=1)}
    _, execution = ret.run(rule("nothing", repos=[{"kind": "doublestar", "decoration": decoration,
                                                   "pattern": "app"}]))  # fmt: skip
    assert ret.present("app", app) == (set() if emptied == "app" else {"x"})
    assert ret.present("tools", tools) == (set() if emptied == "tools" else {"y"})
    tasks = ret.call("GET", f"/retentions/{execution['policy_id']}/executions/{execution['id']}/tasks").get_json()
    assert [t["repository"] for t in tasks] == [f"{PROJECT}/{emptied}"]  # untouched repositories get no task


# Rules are ORed; disabled rules do nothing; immutable tags are kept.


def test_rules_are_ored_and_disabled_rules_ignored(ret: Retention) -> None:
    digests = four(ret)
    ret.run(rule("latestPushedK", 1), rule("always", tags=[tag_sel("matches", "v1")]),
            rule("always", disabled=True))  # fmt: skip
    assert ret.present("app", digests) == {"a", "d"}


def test_immutable_tags_are_never_deleted(ret: Retention) -> None:
    digests = four(ret)
    everywhere = [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]
    v2 = [{"kind": "doublestar", "decoration": "matches", "pattern": "v2"}]
    body = {"action": "immutable", "template": "immutable_template", "scope_selectors": {"repository": everywhere},
            "tag_selectors": v2}  # fmt: skip
    assert ret.call("POST", f"/projects/{PROJECT}/immutabletagrules", body).status_code == 201
    policy_id, execution = ret.run(rule("nothing"))
    assert ret.present("app", digests) == {"b"}
    assert f"immutable  {PROJECT}/app@{digests['b']}" in ret.logs(policy_id, execution["id"])


# Dry run.


def _rows(ret: Retention) -> list[dict[str, Any]]:
    """Every row but the job machinery's own, once the events published so far were delivered."""
    from chalicelib.wiring import services

    services().events.drain()
    pages = ret.dynamodb.get_paginator("scan").paginate(TableName=ret.table, ConsistentRead=True)
    own = ("JOB#", "JOBS#", "JOBLOCK#", "COUNTER#")
    rows = [i for page in pages for i in page.get("Items", []) if not i["pk"]["S"].startswith(own)]
    return sorted(rows, key=lambda r: (r["pk"]["S"], r["sk"]["S"]))


def test_dry_run_changes_nothing_and_lists_what_a_real_run_deletes(ret: Retention) -> None:
    from chalicelib.events import EventType
    from chalicelib.wiring import services

    seen: list[Any] = []
    services().events.subscribe(lambda e: seen.append(e) if e.type is EventType.TAG_RETENTION else None)
    digests = four(ret)
    policy_id = ret.create(rule("latestPushedK", 2))
    before, objects = _rows(ret), ret.object_keys()
    dry = ret.execute(policy_id, dry_run=True)
    assert dry["dry_run"] is True
    assert _rows(ret) == before and ret.object_keys() == objects
    dry_log = ret.logs(policy_id, dry["id"])
    would = {name for name, d in digests.items() if f"would delete {PROJECT}/app@{d}" in dry_log}
    assert would == {"a", "b"}
    services().events.drain()
    assert seen == []  # a dry run announces nothing

    real = ret.execute(policy_id, dry_run=False)
    assert set(digests) - ret.present("app", digests) == would
    real_log = ret.logs(policy_id, real["id"])
    assert {name for name, d in digests.items() if f"deleted    {PROJECT}/app@{d}" in real_log} == would
    services().events.drain()
    (event,) = seen  # one task (repository) deleted something: one event, Harbor's shape
    retention = event.detail["retention"]
    assert (retention["total"], retention["retained"], retention["result"]) == (4, 2, "SUCCESS")
    assert sorted(a["name_tag"] for a in retention["deleted_artifact"]) == ["app:v1", "app:v2"]


# The API: shapes, executions, tasks, logs, the policy's lifecycle.


def test_policy_crud_executions_tasks_and_logs(ret: Retention) -> None:
    meta = ret.call("GET", "/retentions/metadatas")
    assert meta.status_code == 200
    assert [t["rule_template"] for t in meta.get_json()["templates"]] == [
        "latestPushedK",
        "latestPulledN",
        "nDaysSinceLastPush",
        "nDaysSinceLastPull",
        "always",
    ]  # Harbor's list
    ret.push("app", "v1", age_days=1)
    policy_id = ret.create(rule("always"))
    got = ret.call("GET", f"/retentions/{policy_id}").get_json()
    assert got["id"] == policy_id and got["algorithm"] == "or" and got["scope"] == {"level": "project",
                                                                                 "ref": ret.project_id}  # fmt: skip
    assert got["rules"][0]["template"] == "always"
    # One policy per project.
    _error(ret.call("POST", "/retentions", ret.policy(rule("always"))), 400)  # Harbor's answer
    _error(ret.call("PUT", f"/retentions/{policy_id}", ret.policy(rule("always"), rule("always"))), 409)
    # PUT replaces it (a schedule too).
    changed = ret.policy(rule("latestPushedK", 3), cron="0 0 3 * * *")
    assert ret.call("PUT", f"/retentions/{policy_id}", changed).status_code == 200
    got = ret.call("GET", f"/retentions/{policy_id}").get_json()
    assert got["rules"][0]["params"] == {"latestPushedK": 3} and got["trigger"]["settings"]["cron"] == "0 0 3 * * *"

    execution = ret.execute(policy_id, dry_run=True)
    assert set(execution) >= {"id", "policy_id", "start_time", "end_time", "status", "trigger", "dry_run"}
    assert execution["trigger"] == "MANUAL" and execution["end_time"]
    listed = ret.call("GET", f"/retentions/{policy_id}/executions")
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    tasks = ret.call("GET", f"/retentions/{policy_id}/executions/{execution['id']}/tasks")
    assert tasks.status_code == 200 and tasks.headers["X-Total-Count"] == "1"
    task = tasks.get_json()[0]
    assert task["repository"] == f"{PROJECT}/app" and task["total"] == 1 and task["retained"] == 1
    assert task["status"] == "Success" and task["execution_id"] == execution["id"]
    log = ret.call("GET", f"/retentions/{policy_id}/executions/{execution['id']}/tasks/{task['id']}")
    assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain")
    assert "retained" in log.get_data(as_text=True)
    # Stopping an execution that has ended changes nothing.
    stop = ret.call("PATCH", f"/retentions/{policy_id}/executions/{execution['id']}", {"action": "stop"})
    assert stop.status_code == 200
    assert ret.call("GET", f"/retentions/{policy_id}/executions").get_json()[0]["status"] == "Success"

    assert ret.call("DELETE", f"/retentions/{policy_id}").status_code == 200
    assert ret.call("GET", f"/retentions/{policy_id}").status_code == 404
    assert ret.create(rule("always")) != policy_id  # the project may have a new one


# Bad input: Harbor's envelope with a 4xx, never a 500, nothing half-written.


def _error(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    errors = response.get_json()["errors"]
    assert isinstance(errors, list) and errors[0]["code"] and errors[0]["message"]


def _sel(decoration: str, pattern: str = "*", **extra: Any) -> list[dict[str, Any]]:
    return [{"kind": "doublestar", "decoration": decoration, "pattern": pattern, **extra}]


BAD_RULES = [
    {"params": {}, "template": "latestPushedK"},
    {"params": {"latestPushedK": -1}, "template": "latestPushedK"},
    {"params": {"latestPushedK": 10**9}, "template": "latestPushedK"},
    {"params": {"latestPushedK": "3"}, "template": "latestPushedK"},
    {"template": "keepAll"},
    {"action": "delete"},
    {"tag_selectors": _sel("sometimes")},
    {"tag_selectors": _sel("matches", "[a")},
    {"tag_selectors": _sel("matches", extras={"untagged": True})},  # Harbor's swagger: a string
    {"tag_selectors": [{"kind": "label", "decoration": "withLabels", "pattern": "x"}]},  # no doublestar selector
    {"tag_selectors": [{"kind": "regex", "decoration": "matches", "pattern": "x"}]},
    {"scope_selectors": {}},
    {"scope_selectors": {"repository": _sel("matches")}},
    {"scope_selectors": {"namespace": _sel("repoMatches")}},
    {"surprise": 1},
]
BAD_FIELDS = [
    {"algorithm": "and"},
    {"trigger": {"kind": "Event", "settings": {}}},
    {"trigger": {"kind": "Schedule", "settings": {"cron": "every day"}}},
    {"scope": {"level": "system", "ref": 0}},
    {"scope": {"level": "project", "ref": "ret"}},
    {"scope": {"level": "project", "ref": 0}},
    {"rules": [rule("latestPushedK", n) for n in range(16)]},
    {"rules": "all"},
    {"unknown": True},
]


@pytest.mark.parametrize("change", BAD_RULES)
def test_bad_rules_are_refused(ret: Retention, change: dict[str, Any]) -> None:
    body = ret.policy({**rule("always"), **change})
    before = _rows(ret)
    _error(ret.call("POST", "/retentions", body), 400)
    assert _rows(ret) == before


@pytest.mark.parametrize("change", BAD_FIELDS)
def test_bad_policies_are_refused(ret: Retention, change: dict[str, Any]) -> None:
    body = {**ret.policy(rule("always")), **change}
    before = _rows(ret)
    _error(ret.call("POST", "/retentions", body), 400)
    assert _rows(ret) == before


def test_bad_requests_on_every_endpoint(ret: Retention) -> None:
    policy_id = ret.create(rule("always"))
    base = f"/retentions/{policy_id}"
    execution = ret.execute(policy_id, dry_run=True)
    eid = execution["id"]
    before = _rows(ret)
    # Malformed JSON and wrong types.
    _error(ret.call("POST", "/retentions", data=b"{nope", content_type="application/json"), 400)
    _error(ret.call("PUT", base, data=b"[]", content_type="application/json"), 400)
    _error(ret.call("POST", f"{base}/executions", {"dry_run": "yes"}), 400)
    _error(ret.call("PATCH", f"{base}/executions/{eid}", {"action": "pause"}), 400)
    _error(ret.call("PATCH", f"{base}/executions/{eid}", data=b"{", content_type="application/json"), 400)
    _error(ret.call("PUT", base, {**ret.policy(rule("always")), "id": policy_id + 1}), 400)
    # Bad ids.
    for path in ("/retentions/abc", "/retentions/-1", f"{base}/executions/x/tasks", f"{base}/executions/{eid}/tasks/x",
                 "/retentions/99999999999999999999999"):  # fmt: skip
        _error(ret.call("GET", path), 400)
    _error(ret.call("GET", "/retentions/424242"), 404)
    _error(ret.call("GET", f"{base}/executions/424242/tasks"), 404)
    _error(ret.call("GET", f"{base}/executions/{eid}/tasks/424242"), 404)
    _error(ret.call("PATCH", f"{base}/executions/424242", {"action": "stop"}), 404)
    # Paging and q.
    _error(ret.call("GET", f"{base}/executions", query_string={"page_size": "100000"}), 400)
    _error(ret.call("GET", f"{base}/executions", query_string={"page": "zero"}), 400)
    _error(ret.call("GET", f"{base}/executions/{eid}/tasks", query_string={"page_size": "-1"}), 400)
    # Another project's id in the scope, and one that does not exist.
    _error(ret.call("PUT", base, {**ret.policy(rule("always")), "scope": {"level": "project", "ref": 1}}), 400)
    missing = {**ret.policy(rule("always")), "scope": {"level": "project", "ref": 9999}}
    _error(ret.call("POST", "/retentions", missing), 400)  # Harbor: "invalid Project id"
    assert _rows(ret) == before


def test_credentials_and_roles(ret: Retention) -> None:
    policy_id = ret.create(rule("always"))
    base = f"/retentions/{policy_id}"
    _error(ret.call("GET", base, auth=None), 401)
    _error(ret.call("GET", "/retentions/metadatas", auth=None), 401)
    _error(ret.call("GET", base, auth=("admin", "wrong-password")), 401)
    _error(ret.call("POST", f"{base}/executions", {"dry_run": True}, auth=None), 401)
    _error(ret.call("POST", "/retentions", data=b"{nope", content_type="application/json", auth=None), 401)
    _error(ret.call("PATCH", f"{base}/executions/1", {"action": "pause"}, auth=None), 401)
    for name, role in (("stranger", None), ("dev", 2), ("maint", 4)):
        user = {"username": name, "password": "Retention-1", "email": f"{name}@example.com", "realname": name}
        assert ret.call("POST", "/users", user).status_code == 201
        if role:
            member = {"role_id": role, "member_user": {"username": name}}
            assert ret.call("POST", f"/projects/{PROJECT}/members", member).status_code == 201
    stranger, dev, maint = (("stranger", "Retention-1"), ("dev", "Retention-1"), ("maint", "Retention-1"))
    _error(ret.call("GET", base, auth=stranger), 404)  # a private project it cannot see
    _error(ret.call("POST", "/retentions", ret.policy(rule("always")), auth=stranger), 404)
    # Harbor: a developer may read; running, changing and deleting need `update`/`delete`
    # (maintainer and project admin).
    assert ret.call("GET", base, auth=dev).status_code == 200
    assert ret.call("GET", f"{base}/executions", auth=dev).status_code == 200
    _error(ret.call("POST", f"{base}/executions", {"dry_run": True}, auth=dev), 403)
    _error(ret.call("PUT", base, ret.policy(rule("nothing")), auth=dev), 403)
    _error(ret.call("DELETE", base, auth=dev), 403)
    _error(ret.call("POST", "/retentions", ret.policy(rule("always")), auth=dev), 403)
    assert ret.call("GET", base).get_json()["rules"][0]["template"] == "always"  # nothing changed
    assert ret.call("GET", f"{base}/executions").headers["X-Total-Count"] == "0"
    assert ret.execute(policy_id, dry_run=True, auth=maint)["status"] == "Success"
    assert ret.call("PUT", base, ret.policy(rule("nothing")), auth=maint).status_code == 200


# Schedules and stop.


def test_a_policy_cron_starts_a_scheduled_run(ret: Retention, clock: MovableClock) -> None:
    from chalicelib.jobs.schedules import run_scheduled

    digests = four(ret)
    response = ret.call("POST", "/retentions", ret.policy(rule("latestPushedK", 3), cron="* * * * * *"))
    assert response.status_code == 201
    policy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    clock.advance(1)  # the first slot after the policy was saved
    started = run_scheduled({"vendor_type": "RETENTION"})["job_ids"]
    assert len(started) == 1
    deadline = time.monotonic() + 60
    while ret.call("GET", f"/retentions/{policy_id}/executions").get_json()[0]["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    wait_for_executions(60)
    (execution,) = ret.call("GET", f"/retentions/{policy_id}/executions").get_json()
    assert execution["trigger"] == "SCHEDULE" and execution["status"] == "Success" and not execution.get("dry_run")
    assert ret.present("app", digests) == {"b", "c", "d"}
    # Removing the cron removes the schedule.
    assert ret.call("PUT", f"/retentions/{policy_id}", ret.policy(rule("latestPushedK", 3))).status_code == 200
    clock.advance(1)
    assert run_scheduled({"vendor_type": "RETENTION"})["job_ids"] == []


def test_stopping_a_running_execution_deletes_nothing_more(ret: Retention, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from chalicelib.services.retention_run import RetentionRun

    digests = four(ret)
    policy_id = ret.create(rule("nothing"))
    entered, release = threading.Event(), threading.Event()
    original = RetentionRun._items

    def paused(self: RetentionRun, repository: str) -> Any:
        entered.set()
        assert release.wait(30)
        return original(self, repository)

    monkeypatch.setattr(RetentionRun, "_items", paused)
    response = ret.call("POST", f"/retentions/{policy_id}/executions", {"dry_run": False})
    assert response.status_code == 201
    execution_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert entered.wait(30)
    running = ret.call("GET", f"/retentions/{policy_id}/executions").get_json()[0]
    assert running["status"] == "Running"
    stop = ret.call("PATCH", f"/retentions/{policy_id}/executions/{execution_id}", {"action": "stop"})
    assert stop.status_code == 200
    release.set()
    wait_for_executions(60)
    assert ret.call("GET", f"/retentions/{policy_id}/executions").get_json()[0]["status"] == "Stopped"
    assert ret.present("app", digests) == set(digests)


def test_a_deleted_projects_policy_does_not_apply_to_a_new_project_of_the_same_name(ret: Retention) -> None:
    old = ret.create(rule("nothing"))
    assert ret.call("DELETE", f"/projects/{PROJECT}").status_code == 200
    assert ret.call("POST", "/projects", {"project_name": PROJECT, "metadata": {"public": "false"}}).status_code == 201
    ret.project_id = int(ret.call("GET", f"/projects/{PROJECT}").get_json()["project_id"])
    _error(ret.call("GET", f"/retentions/{old}"), 404)
    _error(ret.call("POST", f"/retentions/{old}/executions", {"dry_run": False}), 404)
    digests = {"x": ret.push("app", "v1", age_days=1)}
    new = ret.create(rule("always"))
    assert new != old
    ret.execute(new, dry_run=False)
    assert ret.present("app", digests) == {"x"}
