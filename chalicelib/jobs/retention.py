"""The retention state machine's Task handlers (`infra/statemachines/retention.asl.json`): thin,
one service call each. `run` is idempotent against a retry: `begin` refuses a job that has ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint

from chalicelib.jobs import failures
from chalicelib.wiring import services

bp = Blueprint(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def run(event: dict[str, Any]) -> dict[str, Any]:
    services().retention.run(int(event["job_id"]))
    return {"job_id": event["job_id"]}


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch: record why the execution failed (a stopped one stays Stopped)."""
    return failures.record("retention", event, services().retention.fail)


HANDLERS: dict[str, Handler] = {"retention_run": run, "retention_fail": fail}


@bp.lambda_function(name="retention_run")
def retention_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run(event)


@bp.lambda_function(name="retention_fail")
def retention_fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return fail(event)
