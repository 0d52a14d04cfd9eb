"""The scan all state machine's Task handlers (`infra/statemachines/scan_all.asl.json`): thin, one
service call each. `step` is safe to run twice: a scan it started again is refused (409, counted
as a conflict), and the tasks it updates move only forward."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def begin(event: dict[str, Any]) -> dict[str, Any]:
    return services().scan_all.begin(int(event["job_id"]))


def step(event: dict[str, Any]) -> dict[str, Any]:
    """Update the running scans' tasks and start the next batch; `done` ends the loop, `wait` is
    the pause before the next step."""
    return services().scan_all.step(int(event["job_id"]), event.get("cursor"), bool(event.get("exhausted")))


def finish(event: dict[str, Any]) -> dict[str, Any]:
    return services().scan_all.finish(int(event["job_id"]))


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch: record why the execution failed (a stopped one stays Stopped)."""
    return failures.record("scan all", event, services().scan_all.fail)
