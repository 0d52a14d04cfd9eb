"""Durable webhook delivery: the same policies and receivers as test_webhooks.py, but delivered by
`infra/statemachines/webhook.asl.json` on moto's Step Functions (each Lambda Task dispatched to the
registry's handler in-process, as `make serve` and AWS run it): one POST per Task, the backoff as a
Wait state, the task ending Success or Error with the reason; the event consumer only records and
starts; bad state-machine input writes nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import REGION
from tests.functional.jobs import test_webhooks
from tests.functional.jobs.conftest import wait_for_executions
from tests.functional.jobs.test_webhooks import (
    HOST,
    RECEIVER_NETWORK,
    Receiver,
    _create,
    _errors,
    _executions,
    _log,
    _policy,
    _tasks,
)

API = "/api/v2.0"


receiver = test_webhooks.receiver  # the same fixture: a local HTTP receiver


@pytest.fixture
def durable(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveRegistry]:
    """The registry with the job engine and webhook delivery through the webhook state machine."""
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches, stepfunctions

    for name, method in moto_patches.atomic_calls().items():  # Tasks run on moto's threads
        monkeypatch.setattr(DynamoDBBackend, name, method)
    stepfunctions.install()
    arns = stepfunctions.create_state_machines(_sfn(), REGION)
    registry.configure(webhook_state_machine_arn=arns["WEBHOOK"], webhook_backoff_seconds=0.05,
                       webhook_policy_cache_seconds=0, external_url=f"https://{HOST}",
                       egress_allow_networks=RECEIVER_NETWORK)  # fmt: skip
    yield registry
    settle()


def _sfn() -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


def settle(timeout: float = 60) -> None:
    """Every published event delivered and every state machine execution ended."""
    from chalicelib.wiring import services

    assert services().events.drain(30)
    wait_for_executions(timeout)


def _webhook_executions() -> list[dict[str, Any]]:
    from chalicelib.local import stepfunctions

    arn = stepfunctions.machine_arns(REGION)["WEBHOOK"]
    listed = _sfn().list_executions(stateMachineArn=arn)["executions"]
    return [_sfn().describe_execution(executionArn=e["executionArn"]) for e in listed]


def _history(execution_arn: str) -> list[dict[str, Any]]:
    return list(_sfn().get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])


def test_a_push_is_delivered_by_one_state_machine_execution(durable: LiveRegistry, receiver: Receiver) -> None:
    policy_id = _create(durable, _policy(receiver.url, target={"auth_header": "Bearer s3cret",
                                                               "payload_format": "CloudEvents"}))  # fmt: skip
    digest, _ = durable.push_image("library/durable", "v1")
    settle()
    (document,) = receiver.documents()
    assert document["type"] == "harbor.artifact.pushed" and document["data"]["resources"][0]["digest"] == digest
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Success" and execution["metrics"]["success_task_count"] == 1
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert (task["status"], task["run_count"]) == ("Success", 1)
    assert "attempt 1/3" in _log(durable, policy_id, execution["id"], task["id"])

    (run,) = _webhook_executions()
    assert run["status"] == "SUCCEEDED"
    given = json.loads(run["input"])
    assert given["execution_id"] == execution["id"] and [t["task_id"] for t in given["tasks"]] == [task["id"]]
    assert "s3cret" not in run["input"]  # the secret header stays in the policy, out of the history


def _push_to_failing(reg: LiveRegistry, receiver: Receiver, repository: str) -> int:
    """A policy whose receiver answers 500, and a push it hears of; returns the policy id."""
    receiver.default_status = 500
    policy_id = _create(reg, _policy(receiver.url))
    reg.push_image(repository, "v1")
    return policy_id


def test_a_failing_receiver_is_retried_through_wait_states_and_the_task_ends_in_error(
    durable: LiveRegistry, receiver: Receiver
) -> None:
    policy_id = _push_to_failing(durable, receiver, "library/durable-fail")
    settle()
    assert len(receiver.requests) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # Backoff 0.05 s doubled, rounded up to Step Functions' whole seconds: waits of 1 s then 1 s.
    assert gaps[0] >= 1 and gaps[1] >= 1, gaps
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Error" and execution["status_message"] == "1 of 1 targets failed"
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert (task["status"], task["run_count"]) == ("Error", 3)
    assert task["status_message"] == "gave up after 3 attempts: HTTP 500"
    log = _log(durable, policy_id, execution["id"], task["id"])
    assert [f"attempt {n}/3" in log for n in (1, 2, 3)] == [True] * 3 and "gave up" in log

    (run,) = _webhook_executions()
    events = _history(run["executionArn"])
    waits = [e for e in events if e["type"] == "WaitStateEntered"]
    attempts = [e for e in events if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"]
                == "Attempt"]  # fmt: skip
    assert (len(waits), len(attempts), run["status"]) == (2, 3, "SUCCEEDED")


def test_a_receiver_that_recovers_gets_the_same_cloudevent_again(durable: LiveRegistry, receiver: Receiver) -> None:
    """Each attempt is its own Task invocation, yet the retried event keeps its CloudEvents id, so a
    receiver can tell a retry from a new event."""
    receiver.statuses = [503]
    policy_id = _create(durable, _policy(receiver.url, target={"payload_format": "CloudEvents"}))
    durable.push_image("library/durable-flaky", "v1")
    settle()
    first, second = receiver.documents()
    assert first["id"] == second["id"] and first == second
    (execution,) = _executions(durable, policy_id)
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert (execution["status"], task["status"], task["run_count"]) == ("Success", "Success", 2)
    (run,) = _webhook_executions()
    assert [e["type"] for e in _history(run["executionArn"])].count("WaitStateEntered") == 1


def test_an_unreachable_target_fails_alone_beside_a_good_one(durable: LiveRegistry, receiver: Receiver) -> None:
    closed = Receiver()
    closed.close()
    body = _policy(receiver.url)
    body["targets"].append({**body["targets"][0], "address": closed.url})
    policy_id = _create(durable, body)
    durable.push_image("library/durable-two", "v1")
    settle()
    assert len(receiver.requests) == 1
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Error" and execution["status_message"] == "1 of 2 targets failed"
    tasks = {t["extra_attrs"]["address"]: t for t in _tasks(durable, policy_id, execution["id"])}
    assert (tasks[receiver.url]["status"], tasks[receiver.url]["run_count"]) == ("Success", 1)
    assert tasks[closed.url]["status"] == "Error" and tasks[closed.url]["run_count"] == 3
    assert tasks[closed.url]["status_message"] == "gave up after 3 attempts: connection failed (NewConnectionError)"


def test_a_policy_deleted_during_the_backoff_ends_the_task_without_another_post(
    durable: LiveRegistry, receiver: Receiver
) -> None:
    policy_id = _push_to_failing(durable, receiver, "library/durable-gone")
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    (execution,) = _executions(durable, policy_id)
    assert durable.delete(f"{API}/projects/library/webhook/policies/{policy_id}").status_code == 200
    settle()
    assert len(receiver.requests) == 1  # the second attempt found no target: a permanent failure
    from chalicelib.wiring import services

    (task,) = services().jobs.tasks(execution["id"])
    assert task.status == "Error" and task.run_count == 1
    assert task.error == "the webhook policy or its target was deleted or changed before delivery"
    ended = services().jobs.execution(execution["id"], "WEBHOOK")
    assert ended is not None and ended.status == "Error"


def test_on_aws_the_event_consumer_only_records_and_starts(durable: LiveRegistry, receiver: Receiver) -> None:
    """With EventBridge, the consumer Lambda returns while the receiver has not answered: the state
    machine delivers."""
    from chalicelib.events import Event, EventType
    from chalicelib.jobs.events import consume

    durable.configure(event_bus_name="default")
    receiver.gate = threading.Event()
    policy_id = _create(durable, _policy(receiver.url))
    digest, _ = durable.push_image("library/durable-aws", "v1")
    event = Event.now(EventType.PUSH_ARTIFACT, project="library", repository="library/durable-aws", digest=digest,
                      tag="v1")  # fmt: skip
    consume(event.to_dict())
    assert receiver.answered == 0  # the consumer did not wait for the receiver
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Running"
    receiver.gate.set()
    settle()
    assert len(receiver.requests) == 1
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Success"


def test_threads_setting_keeps_delivery_in_process(durable: LiveRegistry, receiver: Receiver) -> None:
    from chalicelib.wiring import services

    durable.configure(webhook_delivery="threads")
    policy_id = _create(durable, _policy(receiver.url))
    durable.push_image("library/durable-threads", "v1")
    assert services().events.drain(30) and services().webhook_delivery.drain(30)
    assert len(receiver.requests) == 1 and _webhook_executions() == []
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Success"


def test_a_delivery_that_cannot_start_ends_in_error_with_the_reason(durable: LiveRegistry, receiver: Receiver) -> None:
    missing = f"arn:aws:states:{REGION}:123456789012:stateMachine:no-such-machine"
    durable.configure(webhook_state_machine_arn=missing)
    policy_id = _create(durable, _policy(receiver.url))
    durable.push_image("library/durable-nostart", "v1")
    settle()
    assert receiver.requests == []
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Error"
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert task["status"] == "Error" and task["status_message"].startswith("could not start the delivery: ")
    assert "StateMachineDoesNotExist" in task["status_message"]


# Bad input to the Task handlers and to the state machine: an error, nothing written.


def _table_items(reg: LiveRegistry) -> list[dict[str, Any]]:
    pages = reg.dynamodb.get_paginator("scan").paginate(TableName=reg.table, ConsistentRead=True)
    return sorted((item for page in pages for item in page.get("Items", [])), key=json.dumps)


def _item(**changes: Any) -> dict[str, Any]:
    item = {"task_id": 1, "execution_id": 1, "target": 0, "address": "http://h", "project": "library",
            "policy_id": 1, "event": {}}  # fmt: skip
    return {**item, **changes}


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({}, id="empty"),
        pytest.param(_item(task_id="abc"), id="task-id-not-a-number"),
        pytest.param(_item(event="push"), id="event-not-an-object"),
        pytest.param(_item(target=None), id="target-missing"),
        pytest.param(_item(task_id=999999), id="unknown-task"),
    ],
)
def test_bad_task_input_is_refused_and_writes_nothing(durable: LiveRegistry, item: dict[str, Any]) -> None:
    from chalicelib.errors import BadRequest, NotFound
    from chalicelib.jobs import webhooks

    before = _table_items(durable)
    with pytest.raises((BadRequest, NotFound)):
        webhooks.attempt(item)
    with pytest.raises((KeyError, ValueError, NotFound)):
        webhooks.fail({**item, "error": {"Error": "x", "Cause": "y"}})
    assert _table_items(durable) == before


def test_a_garbage_execution_input_fails_the_execution_and_writes_nothing(durable: LiveRegistry) -> None:
    from chalicelib.local import stepfunctions

    before = _table_items(durable)
    arn = stepfunctions.machine_arns(REGION)["WEBHOOK"]
    started = _sfn().start_execution(stateMachineArn=arn, input=json.dumps({"execution_id": "x", "tasks": [{}]}))
    settle()
    assert _sfn().describe_execution(executionArn=started["executionArn"])["status"] == "FAILED"
    assert _table_items(durable) == before


def test_executions_api_bad_ids_still_answer_harbors_envelope(durable: LiveRegistry, receiver: Receiver) -> None:
    policy_id = _create(durable, _policy(receiver.url))
    durable.push_image("library/durable-ids", "v1")
    settle()
    base = f"{API}/projects/library/webhook/policies/{policy_id}/executions"
    _errors(durable.get(f"{base}/abc/tasks"), 400)
    _errors(durable.get(f"{base}/999999/tasks"), 404)
    _errors(durable.get(f"{base}?page_size=100000"), 400)


def test_a_delivery_whose_engine_died_is_resumed_from_its_attempt_count(
    durable: LiveRegistry, receiver: Receiver
) -> None:
    """What the local runner does at start: moto's executions died with the old process, the rows
    did not. Here the engine's execution is stopped mid-backoff (as a restart loses it); `resume`
    starts the stored input again and the task goes on with attempt 2, not 1."""
    from chalicelib.wiring import services

    policy_id = _push_to_failing(durable, receiver, "library/durable-resume")
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    (lost,) = _webhook_executions()
    assert services().webhook_delivery.resume(["library"]) == 0  # still running: nothing to resume
    _sfn().stop_execution(executionArn=lost["executionArn"])
    time.sleep(1.5)  # past the backoff: the stopped execution makes no second attempt
    assert len(receiver.requests) == 1
    receiver.default_status = 200

    assert services().webhook_delivery.resume(["library", "nosuchproject"]) == 1
    settle()
    assert len(receiver.requests) == 2
    (execution,) = _executions(durable, policy_id)
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert (execution["status"], task["status"], task["run_count"]) == ("Success", "Success", 2)
    log = _log(durable, policy_id, execution["id"], task["id"])
    assert "attempt 1/3" in log and "delivery resumed" in log and "attempt 2/3" in log
    # The stopped one ends ABORTED on AWS; moto 5.2.5 reports a Map stopped mid-iteration FAILED.
    lost_status, resumed_status = (r["status"] for r in sorted(_webhook_executions(), key=lambda r: r["startDate"]))
    assert lost_status in {"ABORTED", "FAILED"} and resumed_status == "SUCCEEDED"
    assert services().webhook_delivery.resume(["library"]) == 0  # ended: nothing more to do


def test_a_failed_execution_ends_its_unfinished_tasks_with_the_reason(
    durable: LiveRegistry, receiver: Receiver
) -> None:
    """The execution-level Catch (a Task that failed beyond its own Catch) ends the execution and
    every task still active with the reason; the POST already in flight cannot turn it back."""
    from chalicelib.jobs import webhooks

    receiver.delay = 1.0
    policy_id = _create(durable, _policy(receiver.url))
    durable.push_image("library/durable-broken", "v1")
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    (execution,) = _executions(durable, policy_id)
    webhooks.fail({"execution_id": execution["id"], "error": {"Error": "States.Runtime", "Cause": "broken"}})
    settle()
    (execution,) = _executions(durable, policy_id)
    assert execution["status"] == "Error" and execution["status_message"] == "States.Runtime: broken"
    (task,) = _tasks(durable, policy_id, execution["id"])
    assert (task["status"], task["status_message"]) == ("Error", "States.Runtime: broken")
