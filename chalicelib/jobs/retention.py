"""The retention state machine's Task handlers (`infra/statemachines/retention.asl.json`): thin,
one service call each. Each is safe to run twice (Step Functions retries, a re-drive): `begin`
replaces the tasks an earlier attempt created, `task` never runs an ended task again,
`task_failed` (a lane's Catch) ends only a task that had not ended, `finish` ends the job and
announces each task once."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def begin(event: dict[str, Any]) -> dict[str, Any]:
    return services().retention_runs.begin(int(event["job_id"]))


def task(event: dict[str, Any]) -> dict[str, Any]:
    """The next repository (or `batch` of them) of a lane; the cursor it goes on with, and `more`
    false once the lane is done or the job was stopped."""
    step, last, batch = int(event["step"]), int(event["last"]), int(event.get("batch", 1))
    following = services().retention_runs.run_lane(int(event["job_id"]), int(event["task_id"]), step, last, batch)
    return {"job_id": event["job_id"], "task_id": following, "step": step, "last": last, "batch": batch,
            "more": following is not None}  # fmt: skip


def task_failed(event: dict[str, Any]) -> dict[str, Any]:
    """The lane's Catch: the Task died (timeout, out of memory); its repository's task ends Error
    and the lane goes on with the next one."""
    step, last, batch = int(event["step"]), int(event["last"]), int(event.get("batch", 1))
    following = services().retention_runs.abandon(int(event["job_id"]), int(event["task_id"]), step, last, batch,
                                             error=failures.reason(event))  # fmt: skip
    return {"job_id": event["job_id"], "task_id": following, "step": step, "last": last, "batch": batch,
            "more": following is not None}  # fmt: skip


def finish(event: dict[str, Any]) -> dict[str, Any]:
    services().retention_runs.finish(int(event["job_id"]))
    return {"job_id": event["job_id"]}


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch: record why the execution failed (a stopped one stays Stopped)."""
    return failures.record("retention", event, services().retention_runs.fail)
