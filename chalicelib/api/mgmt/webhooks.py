"""/api/v2.0/projects/{project}/webhook/...: Harbor's webhook policies, their executions, tasks and
task logs, the last trigger times and the supported event types."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, int_param, iso, listing, ok, serve
from chalicelib.api.mgmt.projects import target
from chalicelib.api.mgmt.wire import ZERO_TIME, shape
from chalicelib.api.mgmt.wire import models as wire
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Project
from chalicelib.core.jobs import Job, Task
from chalicelib.core.webhooks import EVENT_TYPES, MAX_TARGETS, NOTIFY_TYPES, PAYLOAD_FORMATS, Policy
from chalicelib.services.webhooks import RESOURCE
from chalicelib.wiring import services

bp = Blueprint(__name__)
_BASE = f"{API}/projects/{{project}}/webhook"


class TargetReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str | None = Field(default=None, max_length=16)
    address: str | None = Field(default=None, max_length=2048)
    auth_header: str | None = Field(default=None, max_length=4096)
    skip_cert_verify: bool | None = None
    payload_format: str | None = Field(default=None, max_length=32)


class PolicyReq(BaseModel):
    """Harbor's `WebhookPolicy`; the read-only fields may be sent back and are ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Id | None = None
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    project_id: Id | None = None
    targets: list[TargetReq] | None = Field(default=None, max_length=MAX_TARGETS)
    event_types: list[str] | None = Field(default=None, max_length=32)
    creator: str | None = None
    creation_time: str | None = None
    update_time: str | None = None
    enabled: bool | None = None


def policy_view(policy: Policy, project_id: int) -> dict[str, Any]:
    return shape(wire.WebhookPolicy, {
        "id": policy.policy_id, "name": policy.name, "description": policy.description, "project_id": project_id,
        "targets": [t.record() for t in policy.targets], "event_types": list(policy.event_types),
        "creator": policy.creator, "creation_time": iso(policy.created_at), "update_time": iso(policy.updated_at),
        "enabled": policy.enabled,
    })  # fmt: skip


def _time(epoch: int | None) -> str | None:
    return iso(epoch) if epoch is not None else None


def execution_view(job: Job) -> dict[str, Any]:
    success, error = job.counts.get("success", 0), job.counts.get("error", 0)
    total = job.counts.get("tasks", success + error)
    return shape(wire.Execution, {
        "id": job.job_id, "vendor_type": job.vendor_type, "vendor_id": job.parameters.get("policy_id"),
        "status": job.status.value, "status_message": job.error or "", "trigger": job.trigger.upper(),
        "extra_attrs": {"event_type": job.parameters.get("event_type")},
        "start_time": _time(job.started_at or job.created_at), "end_time": _time(job.ended_at),
        "metrics": {"task_count": total, "success_task_count": success, "error_task_count": error,
                    "pending_task_count": 0, "running_task_count": total - success - error,
                    "scheduled_task_count": 0, "stopped_task_count": 0},
    })  # fmt: skip


def task_view(task: Task) -> dict[str, Any]:
    return shape(wire.Task, {
        "id": task.task_id, "execution_id": task.execution_id, "status": task.status.value,
        "status_message": task.error or "", "run_count": task.run_count,
        "extra_attrs": {"type": task.parameters.get("type"), "address": task.parameters.get("address"),
                        "event_type": task.parameters.get("event_type")},
        "creation_time": iso(task.created_at), "start_time": _time(task.started_at),
        "update_time": iso(task.updated_at), "end_time": _time(task.ended_at),
    })  # fmt: skip


@bp.route(f"{_BASE}/policies", methods=["GET", "POST"], content_types=["*/*"])
def policies(project: str) -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list, project=project)


def _allow(request: HttpRequest, action: str) -> Project:
    """The route's project, once the caller holds the `notification-policy` permission there."""
    found = target(request)
    services().projects.authorize(request.principal, found, RESOURCE, action)
    return found


def _list(request: HttpRequest) -> Response:
    found = _allow(request, "list")
    records = [policy_view(p, found.project_id) for p in services().webhooks.policies(request.principal, found)]
    return listing(request, f"/projects/{request.params['project']}/webhook/policies", records,
                   q_fields={"id": int, "name": str, "enabled": bool},
                   sort_fields=("id", "name", "creation_time", "update_time"))  # fmt: skip


def _create(request: HttpRequest) -> Response:
    req = body(request, PolicyReq)
    policy = services().webhooks.create(request.principal, _allow(request, "create"), req.model_dump())
    return created(f"{API}/projects/{request.params['project']}/webhook/policies/{policy.policy_id}")


@bp.route(f"{_BASE}/policies/{{policy_id}}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
def policy(project: str, policy_id: str) -> Response:
    return serve(bp, _policy, project=project, policy_id=policy_id)


def _policy(request: HttpRequest) -> Response:
    policy_id = int_param(request.params["policy_id"], "webhook_policy_id")
    webhooks = services().webhooks
    if request.method == "PUT":
        req = body(request, PolicyReq)
        webhooks.update(request.principal, _allow(request, "update"), policy_id, req.model_dump())
        return ok()
    if request.method == "DELETE":
        webhooks.delete(request.principal, _allow(request, "delete"), policy_id)
        return ok()
    found = _allow(request, "read")
    return json_response(policy_view(webhooks.policy(request.principal, found, policy_id), found.project_id))


@bp.route(f"{_BASE}/policies/{{policy_id}}/executions", methods=["GET"], content_types=["*/*"])
def executions(project: str, policy_id: str) -> Response:
    return serve(bp, _executions, project=project, policy_id=policy_id)


def _executions(request: HttpRequest) -> Response:
    policy_id = int_param(request.params["policy_id"], "webhook_policy_id")
    found = services().webhooks.executions(request.principal, _allow(request, "list"), policy_id)
    path = f"/projects/{request.params['project']}/webhook/policies/{policy_id}/executions"
    return listing(request, path, [execution_view(j) for j in found],
                   q_fields={"id": int, "status": str, "trigger": str},
                   sort_fields=("id", "start_time", "end_time", "status"))  # fmt: skip


@bp.route(f"{_BASE}/policies/{{policy_id}}/executions/{{execution_id}}/tasks", methods=["GET"], content_types=["*/*"])
def tasks(project: str, policy_id: str, execution_id: str) -> Response:
    return serve(bp, _tasks, project=project, policy_id=policy_id, execution_id=execution_id)


def _tasks(request: HttpRequest) -> Response:
    policy_id = int_param(request.params["policy_id"], "webhook_policy_id")
    execution_id = int_param(request.params["execution_id"], "execution_id")
    found = services().webhooks.tasks(request.principal, _allow(request, "list"), policy_id, execution_id)
    path = f"/projects/{request.params['project']}/webhook/policies/{policy_id}/executions/{execution_id}/tasks"
    return listing(request, path, [task_view(j) for j in found], q_fields={"id": int, "status": str},
                   sort_fields=("id", "creation_time", "status"))  # fmt: skip


@bp.route(f"{_BASE}/policies/{{policy_id}}/executions/{{execution_id}}/tasks/{{task_id}}/log", methods=["GET"],
          content_types=["*/*"])  # fmt: skip
def task_log(project: str, policy_id: str, execution_id: str, task_id: str) -> Response:
    return serve(bp, _task_log, project=project, policy_id=policy_id, execution_id=execution_id, task_id=task_id)


def _task_log(request: HttpRequest) -> Response:
    policy_id = int_param(request.params["policy_id"], "webhook_policy_id")
    execution_id = int_param(request.params["execution_id"], "execution_id")
    task_id = int_param(request.params["task_id"], "task_id")
    text = services().webhooks.task_log(request.principal, _allow(request, "read"), policy_id, execution_id, task_id)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


@bp.route(f"{_BASE}/lasttrigger", methods=["GET"], content_types=["*/*"])
def last_trigger(project: str) -> Response:
    return serve(bp, _last_trigger, project=project)


def _last_trigger(request: HttpRequest) -> Response:
    rows = services().webhooks.last_triggers(request.principal, _allow(request, "read"))
    return json_response([
        shape(wire.WebhookLastTrigger, {"policy_name": p.name, "event_type": event_type, "enabled": p.enabled,
                                        "creation_time": iso(p.created_at),
                                        "last_trigger_time": _time(fired) or ZERO_TIME})
        for p, event_type, fired in rows
    ])  # fmt: skip


@bp.route(f"{_BASE}/events", methods=["GET"], content_types=["*/*"])
def events(project: str) -> Response:
    return serve(bp, _events, project=project)


def _events(request: HttpRequest) -> Response:
    _allow(request, "read")
    return json_response({
        "event_type": [t.value for t in EVENT_TYPES],
        "notify_type": list(NOTIFY_TYPES),
        "payload_formats": [{"notify_type": n, "formats": list(PAYLOAD_FORMATS[n])} for n in NOTIFY_TYPES],
    })  # fmt: skip
