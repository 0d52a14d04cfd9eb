"""/api/v2.0/projects/{project}/webhook/...: Harbor's webhook policies, their executions, tasks and
task logs, the last trigger times and the supported event types."""

from __future__ import annotations

from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.wire import ZERO_TIME, shape
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Project
from chalicelib.core.jobs import Job, Task
from chalicelib.core.webhooks import EVENT_TYPES, MAX_TARGETS, NOTIFY_TYPES, PAYLOAD_FORMATS, Policy
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_BASE = "/projects/{project}/webhook"


class TargetReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    type: str | None = Field(default=None, max_length=16)
    address: str | None = Field(default=None, max_length=2048)
    auth_header: str | None = Field(default=None, max_length=4096)
    skip_cert_verify: bool | None = None
    payload_format: str | None = Field(default=None, max_length=32)


class PolicyReq(BaseModel):
    """Harbor's `WebhookPolicy`; the read-only fields may be sent back and are ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

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
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    return shape(wire.WebhookPolicy, {
        "id": policy.policy_id, "name": policy.name, "description": policy.description, "project_id": project_id,
        "targets": [t.record() for t in policy.targets], "event_types": list(policy.event_types),
        "creator": policy.creator, "creation_time": iso(policy.created_at), "update_time": iso(policy.updated_at),
        "enabled": policy.enabled,
    })  # fmt: skip


def _time(epoch: int | None) -> str | None:
    return iso(epoch) if epoch is not None else None


def execution_view(job: Job) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

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
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    return shape(wire.Task, {
        "id": task.task_id, "execution_id": task.execution_id, "status": task.status.value,
        "status_message": task.error or "", "run_count": task.run_count,
        "extra_attrs": {"type": task.parameters.get("type"), "address": task.parameters.get("address"),
                        "event_type": task.parameters.get("event_type")},
        "creation_time": iso(task.created_at), "start_time": _time(task.started_at),
        "update_time": iso(task.updated_at), "end_time": _time(task.ended_at),
    })  # fmt: skip


_POLICY = f"{_BASE}/policies/{{policy_id}}"
_EXECUTION = f"{_POLICY}/executions/{{execution_id}}"


def _ids(request: HttpRequest, *names: str) -> list[int]:
    labels = {"policy_id": "webhook_policy_id"}
    return [int_param(request.params[name], labels.get(name, name)) for name in names]


@routes.get(f"{_BASE}/policies")
def list_policies(request: HttpRequest, project: Project) -> Page:
    records = [policy_view(p, project.project_id) for p in services().webhooks.policies(request.principal, project)]
    return Page(records, q_fields={"id": int, "name": str, "enabled": bool},
                sort_fields=("id", "name", "creation_time", "update_time"))  # fmt: skip


@routes.post(f"{_BASE}/policies", body=PolicyReq)
def create_policy(request: HttpRequest, body: PolicyReq, project: Project) -> Created:
    policy = services().webhooks.create(request.principal, project, body.model_dump())
    return Created(f"/projects/{request.params['project']}/webhook/policies/{policy.policy_id}")


@routes.get(_POLICY)
def get_policy(request: HttpRequest, project: Project) -> dict[str, Any]:
    (policy_id,) = _ids(request, "policy_id")
    return policy_view(services().webhooks.policy(request.principal, project, policy_id), project.project_id)


@routes.put(_POLICY, body=PolicyReq)
def update_policy(request: HttpRequest, body: PolicyReq, project: Project) -> None:
    (policy_id,) = _ids(request, "policy_id")
    services().webhooks.update(request.principal, project, policy_id, body.model_dump())


@routes.delete(_POLICY)
def delete_policy(request: HttpRequest, project: Project) -> None:
    (policy_id,) = _ids(request, "policy_id")
    services().webhooks.delete(request.principal, project, policy_id)


@routes.get(f"{_POLICY}/executions")
def list_executions(request: HttpRequest, project: Project) -> Page:
    (policy_id,) = _ids(request, "policy_id")
    found = services().webhooks.executions(request.principal, project, policy_id)
    return Page([execution_view(j) for j in found], q_fields={"id": int, "status": str, "trigger": str},
                sort_fields=("id", "start_time", "end_time", "status"))  # fmt: skip


@routes.get(f"{_EXECUTION}/tasks")
def list_tasks(request: HttpRequest, project: Project) -> Page:
    policy_id, execution_id = _ids(request, "policy_id", "execution_id")
    found = services().webhooks.tasks(request.principal, project, policy_id, execution_id)
    return Page([task_view(j) for j in found], q_fields={"id": int, "status": str},
                sort_fields=("id", "creation_time", "status"))  # fmt: skip


@routes.get(f"{_EXECUTION}/tasks/{{task_id}}/log")
def task_log(request: HttpRequest, project: Project) -> Response:
    policy_id, execution_id, task_id = _ids(request, "policy_id", "execution_id", "task_id")
    text = services().webhooks.task_log(request.principal, project, policy_id, execution_id, task_id)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


@routes.get(f"{_BASE}/lasttrigger")
def last_trigger(request: HttpRequest, project: Project) -> list[dict[str, Any]]:
    rows = services().webhooks.last_triggers(request.principal, project)
    return [{"policy_name": p.name, "event_type": event_type, "enabled": p.enabled, "creation_time": iso(p.created_at),
             "last_trigger_time": _time(fired) or ZERO_TIME} for p, event_type, fired in rows]  # fmt: skip


@routes.get(f"{_BASE}/events")
def supported_events(request: HttpRequest) -> dict[str, Any]:
    return {
        "event_type": [t.value for t in EVENT_TYPES],
        "notify_type": list(NOTIFY_TYPES),
        "payload_formats": [{"notify_type": n, "formats": list(PAYLOAD_FORMATS[n])} for n in NOTIFY_TYPES],
    }
