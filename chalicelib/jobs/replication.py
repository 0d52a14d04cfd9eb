"""The replication state machine's Task handlers (`infra/statemachines/replication.asl.json`):
thin, one service call each, each safe to run twice (a retry, a re-drive): `begin` replaces the
tasks an earlier attempt created, `task` never runs an ended task again and a resumed artifact
copies only what the destination lacks, `task_failed` ends only a task that had not ended,
`finish` ends the job once."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def begin(event: dict[str, Any]) -> dict[str, Any]:
    return services().replication_runs.begin(int(event["job_id"]))


def _cursor(event: dict[str, Any], following: int | None) -> dict[str, Any]:
    return {"job_id": event["job_id"], "task_id": following, "step": int(event["step"]), "last": int(event["last"]),
            "batch": int(event.get("batch", 1)), "more": following is not None}  # fmt: skip


def task(event: dict[str, Any]) -> dict[str, Any]:
    """The lane's next artifacts, until the invocation's budget is spent; the cursor it goes on
    with (the same task when its artifact is unfinished), `more` false once the lane is done."""
    following = services().replication_runs.run_lane(int(event["job_id"]), int(event["task_id"]), int(event["step"]),
                                                     int(event["last"]), int(event.get("batch", 1)))  # fmt: skip
    return _cursor(event, following)


def task_failed(event: dict[str, Any]) -> dict[str, Any]:
    """The lane's Catch: the Task died (timeout, out of memory); its artifact's task ends Error."""
    following = services().replication_runs.abandon(int(event["job_id"]), int(event["task_id"]), int(event["step"]),
                                                    int(event["last"]), int(event.get("batch", 1)),
                                                    error=failures.reason(event))  # fmt: skip
    return _cursor(event, following)


def finish(event: dict[str, Any]) -> dict[str, Any]:
    services().replication_runs.finish(int(event["job_id"]))
    return {"job_id": event["job_id"]}


def fail(event: dict[str, Any]) -> dict[str, Any]:
    return failures.record("replication", event, services().replication_runs.fail)
