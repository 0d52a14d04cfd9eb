"""/api/v2.0/retentions: Harbor's tag retention policies, executions, tasks and task logs.

Thin: parse, one service call, respond. Who may act is the route table's `tag-retention` entry,
checked in the policy's project (for a new policy, the project its `scope.ref` names).
"""

from __future__ import annotations

from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso, raw_json
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.immutable import SelectorReq
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Project
from chalicelib.core.jobs import Job, Task, Trigger
from chalicelib.core.retention import MAX_RULES, metadatas
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_MAX_SELECTORS = 8


class RuleReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    id: Id | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    disabled: bool | None = None
    action: str | None = Field(default=None, max_length=32)
    template: str = Field(max_length=64)
    params: dict[str, Id] | None = Field(default=None, max_length=4)
    tag_selectors: list[SelectorReq] = Field(default_factory=list, max_length=_MAX_SELECTORS)
    scope_selectors: dict[str, list[SelectorReq]] = Field(default_factory=dict, max_length=_MAX_SELECTORS)


class TriggerReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    kind: str = Field(max_length=32)
    settings: dict[str, str | None] | None = Field(default=None, max_length=4)
    references: dict[str, Any] | None = None


class ScopeReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    level: str = Field(max_length=32)
    ref: Id


class PolicyReq(BaseModel):
    """Harbor's `RetentionPolicy`; `id` is read-only and may be sent back."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    id: Id | None = None
    algorithm: str | None = Field(default=None, max_length=16)
    rules: list[RuleReq] = Field(default_factory=list, max_length=MAX_RULES)
    trigger: TriggerReq | None = None
    scope: ScopeReq


class ExecuteReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    dry_run: bool = False


class StopReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    action: str = Field(max_length=16)


def _policy_id(request: HttpRequest) -> int:
    return int_param(request.params["policy_id"], "id")


def _execution_view(job: Job) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    return shape(
        wire.RetentionExecution,
        {
            "id": job.job_id,
            "policy_id": int(job.parameters["policy_id"]),
            "start_time": iso(job.started_at or job.created_at),
            "end_time": iso(job.ended_at) if job.ended_at else None,
            "status": str(job.status),
            "trigger": "SCHEDULE" if job.trigger == Trigger.SCHEDULE else "MANUAL",
            "dry_run": bool(job.parameters.get("dry_run")),
        },
    )


# Harbor's job status codes: Pending 0, Running 2, every final status 3.
_STATUS_CODES = {"Pending": 0, "Running": 2}


def _task_view(task: Task) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    started = task.started_at or task.created_at
    return shape(
        wire.RetentionExecutionTask,
        {
            "id": task.task_id,
            "execution_id": task.execution_id,
            "repository": task.subject,
            "job_id": str(task.task_id),
            "status": str(task.status),
            "status_code": _STATUS_CODES.get(str(task.status), 3),
            "status_revision": task.ended_at or started,
            "start_time": iso(started),
            "end_time": iso(task.ended_at) if task.ended_at else None,
            "total": task.counts.get("total", 0),
            "retained": task.counts.get("retained", 0),
        },
    )


def _policy_project(request: HttpRequest) -> Project:
    return services().retention.project_of(_policy_id(request))


def _new_policy_project(request: HttpRequest) -> Project:
    data = raw_json(request)
    return services().retention.scope_project(data if isinstance(data, dict) else {})


def _execution_id(request: HttpRequest) -> int:
    return int_param(request.params["execution_id"], "eid")


_POLICY = "/retentions/{policy_id}"
_EXECUTION = f"{_POLICY}/executions/{{execution_id}}"


@routes.get("/retentions/metadatas")
def retention_metadatas(request: HttpRequest) -> dict[str, Any]:
    return metadatas()


@routes.post("/retentions", body=PolicyReq, locate=_new_policy_project)
def create_retention(request: HttpRequest, body: PolicyReq) -> Created:
    policy_id = services().retention.create(request.principal, body.model_dump())
    return Created(f"/retentions/{policy_id}")


@routes.get(_POLICY, locate=_policy_project)
def get_retention(request: HttpRequest) -> dict[str, Any]:
    record = services().retention.get(request.principal, _policy_id(request))
    return {**record.policy, "id": record.policy_id}


@routes.put(_POLICY, body=PolicyReq, locate=_policy_project)
def update_retention(request: HttpRequest, body: PolicyReq) -> None:
    policy_id = _policy_id(request)
    if body.id not in (None, policy_id):
        raise BadRequest("the id in the body does not match the path")
    services().retention.update(request.principal, policy_id, body.model_dump())


@routes.delete(_POLICY, locate=_policy_project)
def delete_retention(request: HttpRequest) -> None:
    services().retention.delete(request.principal, _policy_id(request))


@routes.post(f"{_POLICY}/executions", body=ExecuteReq, locate=_policy_project)
def execute_retention(request: HttpRequest, body: ExecuteReq) -> Created:
    policy_id = _policy_id(request)
    job = services().retention.execute(request.principal, policy_id, body.dry_run)
    return Created(f"/retentions/{policy_id}/executions/{job.job_id}")


@routes.get(f"{_POLICY}/executions", locate=_policy_project)
def list_retention_executions(request: HttpRequest) -> Page:
    found = services().retention.executions(request.principal, _policy_id(request))
    return Page([_execution_view(j) for j in found])


@routes.patch(_EXECUTION, body=StopReq, locate=_policy_project)
def stop_retention_execution(request: HttpRequest, body: StopReq) -> None:
    policy_id, execution_id = _policy_id(request), _execution_id(request)
    if body.action != "stop":
        raise BadRequest("action must be 'stop'")
    services().retention.stop(request.principal, policy_id, execution_id)


@routes.get(f"{_EXECUTION}/tasks", locate=_policy_project)
def list_retention_tasks(request: HttpRequest) -> Page:
    listed = services().retention.tasks(request.principal, _policy_id(request), _execution_id(request))
    return Page([_task_view(t) for t in listed])


@routes.get(f"{_EXECUTION}/tasks/{{task_id}}", locate=_policy_project)
def retention_task_log(request: HttpRequest) -> Response:
    task = services().retention.task(request.principal, _policy_id(request), _execution_id(request),
                                     int_param(request.params["task_id"], "tid"))  # fmt: skip
    text = "".join(f"{line}\n" for line in task.log)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})
