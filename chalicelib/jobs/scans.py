"""The scan state machine's Task handlers (`infra/statemachines/scan.asl.json`): thin, one service
call each. Each is safe to run twice: `submit` and `poll` act only on a task that has not ended,
`task_failed` ends only a task still active, `finish` ends the job and announces it once."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def prepare(event: dict[str, Any]) -> dict[str, Any]:
    return services().scans.prepare(int(event["job_id"]))


def submit(event: dict[str, Any]) -> dict[str, Any]:
    return services().scans.submit(int(event["job_id"]), int(event["task_id"]))


def poll(event: dict[str, Any]) -> dict[str, Any]:
    return services().scans.poll(int(event["job_id"]), int(event["task_id"]), str(event.get("scan_id") or ""))


def task_failed(event: dict[str, Any]) -> dict[str, Any]:
    """A task's Catch: its step died (a timeout, out of memory); the task ends Error."""
    return services().scans.task_failed(int(event["job_id"]), int(event["task_id"]), failures.reason(event))


def finish(event: dict[str, Any]) -> dict[str, Any]:
    return services().scans.finish(int(event["job_id"]))


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch: record why the execution failed (a stopped one stays Stopped)."""
    return failures.record("scan", event, services().scans.fail)
