"""/api/v2.0/retentions: Harbor's tag retention policies, executions, tasks and task logs.

Thin: parse, authorise, one service call, respond. Project admins manage a policy (Harbor's RBAC
`tag-retention`); the route authorises against the policy's project before the service call.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, Handler, body, created, int_param, iso, listing, ok, serve
from chalicelib.api.mgmt.immutable import SelectorReq
from chalicelib.api.mgmt.wire import models as wire
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import Id
from chalicelib.core.jobs import Job, Task, Trigger
from chalicelib.core.retention import MAX_RULES, metadatas
from chalicelib.errors import BadRequest, Unauthorized
from chalicelib.services.retention import RESOURCE
from chalicelib.wiring import services

bp = Blueprint(__name__)
_MAX_SELECTORS = 8


class RuleReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Id | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    disabled: bool | None = None
    action: str | None = Field(default=None, max_length=32)
    template: str = Field(max_length=64)
    params: dict[str, Id] | None = Field(default=None, max_length=4)
    tag_selectors: list[SelectorReq] = Field(default_factory=list, max_length=_MAX_SELECTORS)
    scope_selectors: dict[str, list[SelectorReq]] = Field(default_factory=dict, max_length=_MAX_SELECTORS)


class TriggerReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: str = Field(max_length=32)
    settings: dict[str, str | None] | None = Field(default=None, max_length=4)
    references: dict[str, Any] | None = None


class ScopeReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    level: str = Field(max_length=32)
    ref: Id


class PolicyReq(BaseModel):
    """Harbor's `RetentionPolicy`; `id` is read-only and may be sent back."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Id | None = None
    algorithm: str | None = Field(default=None, max_length=16)
    rules: list[RuleReq] = Field(default_factory=list, max_length=MAX_RULES)
    trigger: TriggerReq | None = None
    scope: ScopeReq


class ExecuteReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = False


class StopReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action: str = Field(max_length=16)


def _policy_id(request: HttpRequest) -> int:
    return int_param(request.params["policy_id"], "id")


def _execution_view(job: Job) -> dict[str, Any]:
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


@bp.route(f"{API}/retentions/metadatas", methods=["GET"], content_types=["*/*"])
def retention_metadatas() -> Response:
    return serve(bp, _logged_in(_metadatas))


def _logged_in(handler: Handler) -> Handler:
    """Harbor's retention API asks for a login before anything else (a bad body from an anonymous
    caller is a 401, not a 400)."""

    def checked(request: HttpRequest) -> Response:
        if not request.principal.authenticated:
            raise Unauthorized("log in to use tag retention")
        return handler(request)

    return checked


def _metadatas(request: HttpRequest) -> Response:
    return json_response(shape(wire.RetentionMetadata, metadatas()))


@bp.route(f"{API}/retentions", methods=["POST"], content_types=["*/*"])
def retentions() -> Response:
    return serve(bp, _logged_in(_create))


def _allow(request: HttpRequest, policy_id: int, action: str) -> None:
    """The caller holds the `tag-retention` permission in the policy's project (a policy that does
    not exist, or whose project was deleted, is a 404 first)."""
    services().projects.authorize(request.principal, services().retention.project_of(policy_id), RESOURCE, action)


def _create(request: HttpRequest) -> Response:
    req = body(request, PolicyReq)
    project = services().retention.scope_project(req.model_dump())
    services().projects.authorize(request.principal, project, RESOURCE, "create")
    policy_id = services().retention.create(request.principal, req.model_dump())
    return created(f"{API}/retentions/{policy_id}")


@bp.route(f"{API}/retentions/{{policy_id}}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
def retention(policy_id: str) -> Response:
    handler = {"GET": _get, "PUT": _update, "DELETE": _delete}[bp.current_request.method]
    return serve(bp, _logged_in(handler), policy_id=policy_id)


def _get(request: HttpRequest) -> Response:
    _allow(request, _policy_id(request), "read")
    record = services().retention.get(request.principal, _policy_id(request))
    return json_response(shape(wire.RetentionPolicy, {**record.policy, "id": record.policy_id}))


def _update(request: HttpRequest) -> Response:
    policy_id = _policy_id(request)
    req = body(request, PolicyReq)
    if req.id not in (None, policy_id):
        raise BadRequest("the id in the body does not match the path")
    _allow(request, policy_id, "update")
    services().retention.update(request.principal, policy_id, req.model_dump())
    return ok()


def _delete(request: HttpRequest) -> Response:
    _allow(request, _policy_id(request), "delete")
    services().retention.delete(request.principal, _policy_id(request))
    return ok()


@bp.route(f"{API}/retentions/{{policy_id}}/executions", methods=["GET", "POST"], content_types=["*/*"])
def executions(policy_id: str) -> Response:
    handler = _execute if bp.current_request.method == "POST" else _executions
    return serve(bp, _logged_in(handler), policy_id=policy_id)


def _execute(request: HttpRequest) -> Response:
    policy_id = _policy_id(request)
    req = body(request, ExecuteReq)
    _allow(request, policy_id, "update")  # Harbor asks `update` to run a policy
    job = services().retention.execute(request.principal, policy_id, req.dry_run)
    location = f"{API}/retentions/{policy_id}/executions/{job.job_id}"
    return created(location)


def _executions(request: HttpRequest) -> Response:
    policy_id = _policy_id(request)
    _allow(request, policy_id, "list")
    records = [_execution_view(j) for j in services().retention.executions(request.principal, policy_id)]
    return listing(request, f"/retentions/{policy_id}/executions", records)


@bp.route(f"{API}/retentions/{{policy_id}}/executions/{{execution_id}}", methods=["PATCH"], content_types=["*/*"])
def execution(policy_id: str, execution_id: str) -> Response:
    return serve(bp, _logged_in(_stop), policy_id=policy_id, execution_id=execution_id)


def _stop(request: HttpRequest) -> Response:
    policy_id, execution_id = _policy_id(request), int_param(request.params["execution_id"], "eid")
    req = body(request, StopReq)
    if req.action != "stop":
        raise BadRequest("action must be 'stop'")
    _allow(request, policy_id, "update")
    services().retention.stop(request.principal, policy_id, execution_id)
    return ok()


@bp.route(f"{API}/retentions/{{policy_id}}/executions/{{execution_id}}/tasks", methods=["GET"],
          content_types=["*/*"])  # fmt: skip
def tasks(policy_id: str, execution_id: str) -> Response:
    return serve(bp, _logged_in(_tasks), policy_id=policy_id, execution_id=execution_id)


def _tasks(request: HttpRequest) -> Response:
    policy_id, execution_id = _policy_id(request), int_param(request.params["execution_id"], "eid")
    _allow(request, policy_id, "list")
    listed = services().retention.tasks(request.principal, policy_id, execution_id)
    return listing(request, f"/retentions/{policy_id}/executions/{execution_id}/tasks",
                   [_task_view(t) for t in listed])  # fmt: skip


@bp.route(f"{API}/retentions/{{policy_id}}/executions/{{execution_id}}/tasks/{{task_id}}", methods=["GET"],
          content_types=["*/*"])  # fmt: skip
def task_log(policy_id: str, execution_id: str, task_id: str) -> Response:
    return serve(bp, _logged_in(_task_log), policy_id=policy_id, execution_id=execution_id, task_id=task_id)


def _task_log(request: HttpRequest) -> Response:
    policy_id, execution_id = _policy_id(request), int_param(request.params["execution_id"], "eid")
    _allow(request, policy_id, "read")
    task = services().retention.task(request.principal, policy_id, execution_id,
                                     int_param(request.params["task_id"], "tid"))  # fmt: skip
    text = "".join(f"{line}\n" for line in task.log)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})
