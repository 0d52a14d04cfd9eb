"""The webhook delivery state machine's Task handlers (`infra/statemachines/webhook.asl.json`):
thin, one service call each. `attempt` makes one POST; the state machine does the waiting."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.observability import logger
from chalicelib.wiring import services


def attempt(event: dict[str, Any]) -> dict[str, Any]:
    return services().webhook_delivery.attempt(event)


def finish(event: dict[str, Any]) -> dict[str, Any]:
    return services().webhook_delivery.finish(int(event["execution_id"]))


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch of a task's loop (`task_id` given) or of the whole execution: record why."""
    why = failures.reason(event)
    task_id = event.get("task_id")
    logger.error("webhook delivery Task failed", execution_id=event.get("execution_id"), task_id=task_id, reason=why)
    services().webhook_delivery.fail(int(event["execution_id"]), None if task_id is None else int(task_id), why)
    return {"execution_id": event["execution_id"]}
