"""QUOTA_WARNING and TAG_RETENTION webhooks in Harbor's shapes, `retention_id` in project metadata,
what a project delete takes along, and one retention run per policy (two projects' in parallel).

Everything goes through HTTP: /v2 pushes and deletes, Harbor's /api/v2.0, and a real receiver on
127.0.0.1 (`test_webhooks.Receiver`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.clock import MovableClock
from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
    run_together,
    serialise_aws_calls,
)
from tests.functional.jobs import test_retention as retention_suite
from tests.functional.jobs import test_webhooks as webhook_suite
from tests.functional.jobs.conftest import API, FINAL, wait_for_executions
from tests.functional.jobs.test_retention import PROJECT, Retention, four, rule
from tests.functional.jobs.test_webhooks import HOST, RECEIVER_NETWORK, Receiver, _create, _policy, settle

# The two suites' fixtures, used here as they are there.
ret = retention_suite.ret
hooks = webhook_suite.hooks
receiver = webhook_suite.receiver

# Quota warnings.


def _project(reg: LiveRegistry, name: str, limit: int) -> int:
    response = reg.post(f"{API}/projects", json={"project_name": name, "storage_limit": limit,
                                                 "metadata": {"public": "false"}})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    return int(reg.get(f"{API}/projects/{name}").get_json()["project_id"])


def _blob(reg: LiveRegistry, repo: str, size: int, fill: bytes = b"q") -> str:
    data = (fill * size)[:size]
    response = reg.post(f"/v2/{repo}/blobs/uploads/", query_string={"digest": digest_of(data)}, data=data,
                        headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 201, (response.status_code, response.get_data()[:300])
    return digest_of(data)


def _used(reg: LiveRegistry, project_id: int) -> int:
    return int(reg.get(f"{API}/quotas/{project_id}").get_json()["used"]["storage"])


def _of(receiver: Receiver, event_type: str) -> list[dict[str, Any]]:
    return [d for d in receiver.documents() if d.get("type") == event_type]


def test_quota_warning_is_sent_once_per_crossing_in_harbors_shape(hooks: LiveRegistry, receiver: Receiver) -> None:
    project_id = _project(hooks, "warn", 1000)
    events = ["QUOTA_WARNING", "QUOTA_EXCEED"]
    _create(hooks, _policy(f"{receiver.url}/default", event_types=events), project="warn")
    _create(hooks, _policy(f"{receiver.url}/ce", name="ce", event_types=events,
                           target={"payload_format": "CloudEvents"}), project="warn")  # fmt: skip

    _blob(hooks, "warn/app", 500)  # 50%: below Harbor's 85%
    settle()
    assert receiver.requests == []
    crossing = _blob(hooks, "warn/app", 400, b"r")  # 90%: crosses it
    settle()
    by_path = {r["path"]: json.loads(r["body"]) for r in receiver.requests}
    assert set(by_path) == {"/default", "/ce"}
    default, cloud = by_path["/default"], by_path["/ce"]
    assert default["type"] == "QUOTA_WARNING" and default["operator"] == "admin"
    assert default["event_data"] == {
        "resources": [{"digest": crossing, "tag": ""}],
        "repository": {"name": "app", "namespace": "warn", "repo_full_name": "warn/app", "repo_type": "private"},
        "custom_attributes": {"Details": "quota usage reach 85%: resource storage used 900 B of 1000 B"},
    }
    assert cloud["type"] == "harbor.quota.warned" and cloud["data"] == default["event_data"]
    assert cloud["source"].startswith(f"/projects/{project_id}/webhook/policies/")

    # Further pushes past the share do not repeat it; a push past the limit is QUOTA_EXCEED.
    _blob(hooks, "warn/app", 50, b"s")
    refused = hooks.post("/v2/warn/app/blobs/uploads/", query_string={"digest": digest_of(b"t" * 100)},
                         data=b"t" * 100, headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert refused.status_code == 403
    settle()
    assert len(_of(receiver, "QUOTA_WARNING")) == 1
    (exceed,) = _of(receiver, "QUOTA_EXCEED")
    assert "exceed the configured upper limit of 1000" in exceed["event_data"]["custom_attributes"]["Details"]
    assert [json.loads(r["body"])["type"] for r in receiver.requests if r["path"] == "/ce"][-1] == (
        "harbor.quota.exceeded"  # Harbor's CloudEvents name
    )

    # A higher limit re-arms it: the next crossing of the new share warns again.
    assert hooks.put(f"{API}/quotas/{project_id}", json={"hard": {"storage": 10_000}}).status_code == 200
    _blob(hooks, "warn/app", 7_600, b"u")  # 950 + 7600 = 8550 >= 8500
    settle()
    warnings = _of(receiver, "QUOTA_WARNING")
    assert len(warnings) == 2
    assert warnings[1]["event_data"]["custom_attributes"]["Details"] == (
        "quota usage reach 85%: resource storage used 8.3 KiB of 9.8 KiB"
    )


def test_deleting_an_artifact_below_the_share_rearms_the_warning(hooks: LiveRegistry, receiver: Receiver) -> None:
    project_id = _project(hooks, "rearm", 10_000)
    _create(hooks, _policy(receiver.url, event_types=["QUOTA_WARNING"]), project="rearm")
    layer, config = b"L" * 8_600, canonical({"architecture": "amd64", "os": "linux"})
    body = canonical(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)]))

    def push() -> str:
        hooks.push_blob("rearm/app", layer)  # first: this charge alone crosses the share
        hooks.push_blob("rearm/app", config)
        return hooks.push_manifest("rearm/app", "v1", body)

    digest = push()
    settle()
    assert len(_of(receiver, "QUOTA_WARNING")) == 1
    assert hooks.delete(f"/v2/rearm/app/manifests/{digest}").status_code == 202
    settle()
    assert _used(hooks, project_id) == 0
    push()  # the same image again: a new crossing (the delete re-armed the warning; no charge below it did)
    settle()
    assert len(_of(receiver, "QUOTA_WARNING")) == 2


def test_concurrent_pushes_across_the_share_warn_once(
    hooks: LiveRegistry, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    serialise_aws_calls(monkeypatch)
    _project(hooks, "race", 1000)
    _create(hooks, _policy(receiver.url, event_types=["QUOTA_WARNING"]), project="race")
    _blob(hooks, "race/app", 800)
    statuses = run_together(hooks, 4, lambda index, reg: _blob(reg, "race/app", 50, bytes([65 + index])))
    assert len(statuses) == 4
    settle()
    (warning,) = _of(receiver, "QUOTA_WARNING")
    assert warning["event_data"]["custom_attributes"]["Details"].startswith("quota usage reach 85%: ")


def test_an_unlimited_project_never_warns(hooks: LiveRegistry, receiver: Receiver) -> None:
    _create(hooks, _policy(receiver.url, event_types=["QUOTA_WARNING"]))  # library: unlimited
    _blob(hooks, "library/app", 5_000)
    settle()
    assert receiver.requests == []


# Tag retention: the webhook payload.


@pytest.fixture
def hooked(ret: Retention, receiver: Receiver) -> Iterator[Retention]:
    """The retention registry, with webhook delivery configured as `test_webhooks.hooks` does."""
    ret.configure(webhook_backoff_seconds=0.05, webhook_policy_cache_seconds=0, external_url=f"https://{HOST}:8443",
                  egress_allow_networks=RECEIVER_NETWORK)  # fmt: skip
    yield ret
    settle()


def test_tag_retention_sends_harbors_payload_per_repository(hooked: Retention, receiver: Receiver) -> None:
    _create(hooked, _policy(f"{receiver.url}/default", event_types=["TAG_RETENTION"]), project=PROJECT)
    _create(hooked, _policy(f"{receiver.url}/ce", name="ce", event_types=["TAG_RETENTION"],
                            target={"payload_format": "CloudEvents"}), project=PROJECT)  # fmt: skip
    digests = four(hooked)
    untagged = hooked.push("app", None, age_days=20)
    hooked.push("kept", "v1", age_days=1)  # a second repository where nothing goes: no event for it
    kept_rule = rule("latestPushedK", 2)
    policy_id = hooked.create(kept_rule)

    hooked.execute(policy_id, dry_run=True)
    settle()
    assert receiver.requests == []  # a dry run announces nothing (Harbor)

    hooked.execute(policy_id, dry_run=False)
    settle()
    assert hooked.present("app", {**digests, "u": untagged}) == {"c", "d"}
    by_path = {r["path"]: json.loads(r["body"]) for r in receiver.requests}
    assert len(receiver.requests) == 2 and set(by_path) == {"/default", "/ce"}
    default = by_path["/default"]
    assert default["type"] == "TAG_RETENTION" and default["operator"] == "MANUAL"  # Harbor: the trigger
    retention = default["event_data"]["retention"]
    deleted = sorted(retention.pop("deleted_artifact"), key=lambda a: a["name_tag"])
    assert deleted == [
        {"type": "image", "status": "SUCCESS", "name_tag": "", "references": None},  # untagged
        {"type": "image", "status": "SUCCESS", "name_tag": "app:v1", "references": None},
        {"type": "image", "status": "SUCCESS", "name_tag": "app:v2", "references": None},
    ]
    stored = hooked.call("GET", f"/retentions/{policy_id}").get_json()["rules"]  # the rules as the API shows them
    # The API omits an empty `extras` (Harbor's omit-empty); the payload keeps null.
    for sent in retention["retention_rule"]:
        for selector in [*sent["tag_selectors"], *sent["scope_selectors"]["repository"]]:
            if selector.get("extras") is None:
                selector.pop("extras", None)
    assert retention == {
        "total": 5, "retained": 2, "harbor_hostname": HOST, "project_name": PROJECT,
        "retention_policy_id": policy_id, "result": "SUCCESS",
        "retention_rule": [{k: r[k] for k in ("template", "params", "tag_selectors", "scope_selectors")}
                           for r in stored],
    }  # fmt: skip
    assert retention["retention_rule"][0]["params"] == kept_rule["params"]
    assert set(default["event_data"]) == {"retention"}

    cloud = by_path["/ce"]
    assert cloud["type"] == "harbor.tag_retention.finished" and cloud["operator"] == "MANUAL"
    assert cloud["source"].startswith(f"/projects/{hooked.project_id}/webhook/policies/")
    assert cloud["data"]["retention"]["deleted_artifact"] and cloud["data"]["retention"]["total"] == 5


# `retention_id` in the project's metadata, and what a project delete takes along.


def _metadata(reg: Retention, project: str = PROJECT) -> dict[str, str]:
    return dict(reg.call("GET", f"/projects/{project}").get_json()["metadata"])


def test_retention_id_follows_the_policy_in_project_metadata(ret: Retention) -> None:
    assert "retention_id" not in _metadata(ret)
    policy_id = ret.create(rule("always"))
    assert _metadata(ret)["retention_id"] == str(policy_id)
    # A client sending the metadata back (or making one up) does not change it.
    sent = {"metadata": {**_metadata(ret), "retention_id": "999", "auto_scan": "true"}}
    assert ret.call("PUT", f"/projects/{PROJECT}", sent).status_code == 200
    assert _metadata(ret)["retention_id"] == str(policy_id) and _metadata(ret)["auto_scan"] == "true"
    assert ret.call("POST", f"/projects/{PROJECT}/metadatas", {"retention_id": "7"}).status_code == 200
    assert _metadata(ret)["retention_id"] == str(policy_id)

    assert ret.call("DELETE", f"/retentions/{policy_id}").status_code == 200
    assert "retention_id" not in _metadata(ret) and _metadata(ret)["auto_scan"] == "true"
    again = ret.create(rule("always"))
    assert _metadata(ret)["retention_id"] == str(again) != str(policy_id)


def test_a_project_update_racing_a_policy_create_keeps_retention_id(
    ret: Retention, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update read the project before the policy existed and writes after it was created:
    it sets only the keys it changes, so the new `retention_id` survives."""
    from chalicelib.stores.projects import ProjectStore

    original = ProjectStore.update
    created: list[int] = []

    def late(self: ProjectStore, name: str, **fields: Any) -> None:
        if not created:  # the first update (the PUT below): a policy is created in between
            worker = threading.Thread(target=lambda: created.append(ret.clone().post(
                f"{API}/retentions", json=ret.policy(rule("always"))).status_code))  # fmt: skip
            worker.start()
            worker.join(30)
        original(self, name, **fields)

    monkeypatch.setattr(ProjectStore, "update", late)
    assert ret.call("PUT", f"/projects/{PROJECT}", {"metadata": {"auto_scan": "true"}}).status_code == 200
    assert created == [201]
    metadata = _metadata(ret)
    assert metadata["auto_scan"] == "true" and metadata["retention_id"].isdigit()


def _items(ret: Retention, pk: str) -> list[dict[str, Any]]:
    response = ret.dynamodb.query(TableName=ret.table, KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)  # fmt: skip
    return list(response["Items"])


def test_deleting_a_project_deletes_its_retention_webhook_and_immutability_rows(
    ret: Retention, receiver: Receiver
) -> None:
    from chalicelib.wiring import services

    ret.configure(egress_allow_networks=RECEIVER_NETWORK)
    response = ret.call("POST", "/retentions", ret.policy(rule("always"), cron="0 0 3 * * *"))
    assert response.status_code == 201
    policy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    _create(ret, _policy(receiver.url), project=PROJECT)
    immutable = {"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
                 "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                      "pattern": "**"}]}}  # fmt: skip
    assert ret.call("POST", f"/projects/{PROJECT}/immutabletagrules", immutable).status_code == 201
    schedule_sk = f"SCHEDULE#{policy_id:012d}"
    assert any(i["sk"]["S"] == schedule_sk for i in _items(ret, "SCHEDULE#RETENTION"))
    assert {i["sk"]["S"] for i in _items(ret, f"PROJECT#{PROJECT}")} >= {"ENTITY", "RETENTION", "WEBHOOKS",
                                                                         "IMMUTABLE"}  # fmt: skip

    assert ret.call("DELETE", f"/projects/{PROJECT}").status_code == 200
    assert services().events.drain(30)
    assert _items(ret, f"PROJECT#{PROJECT}") == []  # link, webhook policies, immutable rules, members
    assert _items(ret, f"RETENTION#{policy_id}") == []  # the policy row
    assert not any(i["sk"]["S"] == schedule_sk for i in _items(ret, "SCHEDULE#RETENTION"))


# One run per policy; two projects' runs in parallel.


def _final(ret: Retention, policy_id: int) -> str:
    """The status of the policy's newest execution once it has ended."""
    deadline = time.monotonic() + 60
    while (status := ret.call("GET", f"/retentions/{policy_id}/executions").get_json()[0]["status"]) not in FINAL:
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    return str(status)


def _pause_first_project(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make every retention run in `PROJECT` wait (inside its first task) until released; each
    DynamoDB call atomic, as the real service's are, since the runs' Tasks work on moto's threads
    beside the requests (the GC fixture does the same)."""
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches
    from chalicelib.services.retention_run import RetentionRun

    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)
    entered, release = threading.Event(), threading.Event()
    original = RetentionRun._items

    def paused(self: RetentionRun, repository: str) -> Any:
        if repository.startswith(f"{PROJECT}/"):
            entered.set()
            assert release.wait(60)
        return original(self, repository)

    monkeypatch.setattr(RetentionRun, "_items", paused)
    return entered, release


def _other_policy(ret: Retention, cron: str = "") -> int:
    other_id = _project(ret, "other", -1)
    ret.push_image("other/app", "v1")
    body = {**ret.policy(rule("always"), cron=cron), "scope": {"level": "project", "ref": other_id}}
    response = ret.call("POST", "/retentions", body)
    assert response.status_code == 201, response.get_data()
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_one_run_per_policy_while_another_projects_policy_runs_beside_it(
    ret: Retention, monkeypatch: pytest.MonkeyPatch
) -> None:
    ret.push("app", "v1", age_days=1)
    first = ret.create(rule("always"))
    second = _other_policy(ret)
    entered, release = _pause_first_project(monkeypatch)
    try:
        # Two triggers of the same policy at once: exactly one starts.
        def trigger(index: int, reg: Any) -> Any:
            return reg.post(f"{API}/retentions/{first}/executions", json={"dry_run": index == 0})

        responses = run_together(ret, 2, trigger)
        assert sorted(r.status_code for r in responses) == [201, 409]
        refused = next(r for r in responses if r.status_code == 409).get_json()["errors"][0]
        assert refused["code"] == "CONFLICT" and f"retention policy {first}" in refused["message"]
        assert entered.wait(30)
        # While it runs: the same policy is refused again, the other project's policy runs to the end.
        again = ret.call("POST", f"/retentions/{first}/executions", {"dry_run": False})
        assert again.status_code == 409 and again.get_json()["errors"][0]["code"] == "CONFLICT"
        started = ret.call("POST", f"/retentions/{second}/executions", {"dry_run": False})
        assert started.status_code == 201
        assert _final(ret, second) == "Success"
        running = ret.call("GET", f"/retentions/{first}/executions").get_json()
        assert [e["status"] for e in running] == ["Running"]  # the refused triggers left no execution
    finally:
        release.set()
    assert _final(ret, first) == "Success"
    wait_for_executions(60)
    # The lock went with the run: the policy runs again.
    assert ret.execute(first, dry_run=True)["status"] == "Success"


def test_a_scheduled_run_of_a_busy_policy_is_skipped_and_others_start(
    ret: Retention, monkeypatch: pytest.MonkeyPatch, clock: MovableClock
) -> None:
    from chalicelib.jobs.schedules import run_scheduled

    ret.push("app", "v1", age_days=1)
    response = ret.call("POST", "/retentions", ret.policy(rule("always"), cron="* * * * * *"))
    assert response.status_code == 201
    first = int(response.headers["Location"].rsplit("/", 1)[1])
    second = _other_policy(ret, cron="* * * * * *")
    entered, release = _pause_first_project(monkeypatch)
    try:
        assert ret.call("POST", f"/retentions/{first}/executions", {"dry_run": True}).status_code == 201
        assert entered.wait(30)
        clock.advance(1)  # both policies' first cron slot has passed
        started = run_scheduled({"vendor_type": "RETENTION"})["job_ids"]
        assert len(started) == 1  # the busy policy's slot is skipped (Harbor would start a second run)
        assert _final(ret, second) == "Success"
        executions = ret.call("GET", f"/retentions/{second}/executions").get_json()
        assert [e["id"] for e in executions] == started and executions[0]["trigger"] == "SCHEDULE"
        assert len(ret.call("GET", f"/retentions/{first}/executions").get_json()) == 1
    finally:
        release.set()
    assert _final(ret, first) == "Success"
    wait_for_executions(60)
