"""/api/v2.0/replication: Harbor's replication policies, executions, their tasks and task logs.

System administrators only (or a system robot granted `replication-policy` / `replication`), as in
Harbor. Thin: parse, one service call, respond; statuses and triggers are shown in the replication
API's own words (`InProgress`, `Succeed`, `Failed`; `manual`, `scheduled`, `event_based`).
"""

from __future__ import annotations

from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.wire import ZERO_TIME
from chalicelib.core.bounds import Id
from chalicelib.core.jobs import Job, Task
from chalicelib.core.replication import (
    DESCRIPTION_MAX,
    LOCAL,
    MAX_FILTERS,
    MAX_LABELS,
    NAME_MAX,
    TRIGGER_WIRE,
    Policy,
    execution_status,
)
from chalicelib.errors import BadRequest, NotFound
from chalicelib.services.replication import status_counts
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


class RegistryRef(BaseModel):
    """A policy names its registries by id; Harbor's portal sends the whole registry object back."""

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    id: int = Field(ge=0, le=2**53)


class TriggerSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    cron: str | None = Field(default=None, max_length=128)


class TriggerReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    type: str = Field(max_length=32)
    trigger_settings: TriggerSettings | None = None


class FilterReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    type: str = Field(max_length=32)
    value: str | list[str] = Field(max_length=1024)
    decoration: str | None = Field(default=None, max_length=32)


class PolicyReq(BaseModel):
    """Harbor's `ReplicationPolicy`; read-only fields may be sent back and are ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    id: int | None = None
    name: str = Field(max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    src_registry: RegistryRef | None = None
    dest_registry: RegistryRef | None = None
    dest_namespace: str | None = Field(default=None, max_length=NAME_MAX)
    dest_namespace_replace_count: int | None = Field(default=None, ge=-1, le=127)
    trigger: TriggerReq | None = None
    filters: list[FilterReq] | None = Field(default=None, max_length=MAX_FILTERS)
    replicate_deletion: bool | None = None
    deletion: bool | None = None
    override: bool | None = None
    enabled: bool | None = None
    speed: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    copy_by_chunk: bool | None = None
    single_active_replication: bool | None = None
    creation_time: str | None = Field(default=None, max_length=64)
    update_time: str | None = Field(default=None, max_length=64)


class StartReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    policy_id: Id


def _body(req: PolicyReq) -> dict[str, Any]:
    data = req.model_dump()
    for f in data.get("filters") or []:
        if isinstance(f.get("value"), list) and len(f["value"]) > MAX_LABELS:
            raise BadRequest(f"a label filter names at most {MAX_LABELS} labels")
    return data


def _registry(registry_id: int) -> dict[str, Any] | None:
    if registry_id == LOCAL:
        settings = services().settings
        return {"id": 0, "name": "Local", "type": "harbor", "url": settings.external_url or "",
                "insecure": False, "status": "healthy", "description": "",
                "creation_time": ZERO_TIME, "update_time": ZERO_TIME}  # fmt: skip
    found = services().registries.find(registry_id)
    if found is None:  # deleted meanwhile (a registry in use cannot be): its id alone
        return {"id": registry_id, "creation_time": ZERO_TIME, "update_time": ZERO_TIME}
    return found.wire()


def policy_view(policy: Policy) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": policy.trigger_type, "trigger_settings": {"cron": policy.cron}}
    return {
        "id": policy.policy_id, "name": policy.name, "description": policy.description,
        "src_registry": _registry(policy.src_registry_id), "dest_registry": _registry(policy.dest_registry_id),
        "dest_namespace": policy.dest_namespace, "dest_namespace_replace_count": policy.dest_namespace_replace_count,
        "trigger": trigger, "filters": [f.wire() for f in policy.filters],
        "replicate_deletion": policy.replicate_deletion, "deletion": policy.replicate_deletion,
        "override": policy.override, "enabled": policy.enabled, "speed": policy.speed,
        "copy_by_chunk": policy.copy_by_chunk, "single_active_replication": policy.single_active_replication,
        "creation_time": iso(policy.created_at), "update_time": iso(policy.updated_at),
    }  # fmt: skip


def execution_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.job_id, "policy_id": int(job.parameters.get("policy_id") or 0),
        "status": execution_status(str(job.status)), "status_text": job.error or "",
        "trigger": TRIGGER_WIRE.get(str(job.trigger), "manual"),
        "start_time": iso(job.started_at or job.created_at),
        "end_time": iso(job.ended_at) if job.ended_at else ZERO_TIME,
        **status_counts(job),
    }  # fmt: skip


def task_view(task: Task) -> dict[str, Any]:
    p = task.parameters
    return {
        "id": task.task_id, "execution_id": task.execution_id,
        "resource_type": p.get("resource_type", "artifact"), "src_resource": task.subject,
        "dst_resource": p.get("dst_resource", ""), "operation": p.get("operation", "copy"),
        "job_id": str(task.task_id), "status": execution_status(str(task.status)),
        "start_time": iso(task.started_at or task.created_at),
        "end_time": iso(task.ended_at) if task.ended_at else ZERO_TIME,
    }  # fmt: skip


def _id(request: HttpRequest, name: str = "id") -> int:
    value = int_param(request.params[name], name)
    if value < 1:
        raise NotFound(f"{name} {value} not found")
    return value


def _query(request: HttpRequest, name: str) -> str | None:
    values = request.query.get(name) or []
    value = values[-1] if values else None
    if value is not None and len(value) > 128:
        raise BadRequest(f"{name} is too long")
    return value or None


@routes.get("/replication/policies")
def list_policies(request: HttpRequest) -> Page:
    found = services().replication.list(_query(request, "name"))
    return Page([policy_view(p) for p in found], q_fields={"name": str}, sort_fields=("id", "name", "creation_time"))


@routes.post("/replication/policies", body=PolicyReq)
def create_policy(request: HttpRequest, body: PolicyReq) -> Created:
    policy = services().replication.create(request.principal, _body(body))
    return Created(f"/replication/policies/{policy.policy_id}")


@routes.get("/replication/policies/{id}")
def get_policy(request: HttpRequest) -> dict[str, Any]:
    return policy_view(services().replication.get(_id(request)))


@routes.put("/replication/policies/{id}", body=PolicyReq)
def update_policy(request: HttpRequest, body: PolicyReq) -> None:
    policy_id = _id(request)
    if body.id not in (None, 0, policy_id):
        raise BadRequest("the id in the body does not match the path")
    services().replication.update(request.principal, policy_id, _body(body))


@routes.delete("/replication/policies/{id}")
def delete_policy(request: HttpRequest) -> None:
    services().replication.delete(request.principal, _id(request))


@routes.post("/replication/executions", body=StartReq)
def start_execution(request: HttpRequest, body: StartReq) -> Created:
    job = services().replication.start(body.policy_id)
    return Created(f"/replication/executions/{job.job_id}")


@routes.get("/replication/executions")
def list_executions(request: HttpRequest) -> Page:
    policy = _query(request, "policy_id")
    policy_id = int_param(policy, "policy_id") if policy is not None else None
    found = services().replication.executions(policy_id, _query(request, "status"), _query(request, "trigger"))
    return Page([execution_view(j) for j in found], sort_fields=("id", "start_time"))


@routes.get("/replication/executions/{id}")
def get_execution(request: HttpRequest) -> dict[str, Any]:
    return execution_view(services().replication.execution(_id(request)))


@routes.put("/replication/executions/{id}")
def stop_execution(request: HttpRequest) -> None:
    services().replication.stop(_id(request))


@routes.get("/replication/executions/{id}/tasks")
def list_tasks(request: HttpRequest) -> Page:
    found = services().replication.tasks(_id(request), _query(request, "status"), _query(request, "resource_type"))
    return Page([task_view(t) for t in found], sort_fields=("id",))


@routes.get("/replication/executions/{id}/tasks/{task_id}/log")
def task_log(request: HttpRequest) -> Response:
    task = services().replication.task(_id(request), _id(request, "task_id"))
    lines = [*task.log] + ([f"error: {task.error}"] if task.error and f"error: {task.error}" not in task.log else [])
    text = "".join(f"{line}\n" for line in lines)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})
