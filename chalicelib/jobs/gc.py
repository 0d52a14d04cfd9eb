"""The GC state machine's Task handlers (`infra/statemachines/gc.asl.json`): thin, one service call.

Each takes the state's input and returns what the next state needs. They are idempotent (the
service's writes are conditional), so a Task that Step Functions retries does no harm.
"""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def begin(event: dict[str, Any]) -> dict[str, Any]:
    return services().gc.begin(int(event["job_id"]))


def untagged(event: dict[str, Any]) -> dict[str, Any]:
    services().gc.delete_untagged(int(event["job_id"]))
    return event


def mark(event: dict[str, Any]) -> dict[str, Any]:
    """`more`: marking stopped at its time budget; the state machine calls again."""
    return {"job_id": event["job_id"], "more": services().gc.mark(int(event["job_id"]))}


def sweep(event: dict[str, Any]) -> dict[str, Any]:
    more = services().gc.sweep(int(event["job_id"]), int(event["shard"]))
    return {"job_id": event["job_id"], "shard": event["shard"], "more": more}


def finish(event: dict[str, Any]) -> dict[str, Any]:
    services().gc.finish(int(event["job_id"]), int(event["workers"]))
    return {"job_id": event["job_id"]}


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch of every state: record why the run failed (a stopped job stays Stopped)."""
    return failures.record("GC", event, services().gc.fail)
