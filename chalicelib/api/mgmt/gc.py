"""/api/v2.0/system/gc: garbage collection history, logs, stop, and its schedule (Harbor's shapes).

System administrators only (or a system robot granted `garbage-collection`), as in Harbor.
`/system/gc/schedule` shares the `{gc_id}` route: API Gateway and the local adapter would both
match it there, so the handler tells them apart instead of relying on route precedence.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, int_param, iso, listing, ok, serve
from chalicelib.api.mgmt.wire import ZERO_TIME, shape
from chalicelib.api.mgmt.wire.models import GCHistory
from chalicelib.auth.rbac import Permission
from chalicelib.core.jobs import Cron, CronError, Job, Schedule, Trigger
from chalicelib.errors import BadRequest, Forbidden, Unauthorized
from chalicelib.services.gc import VENDOR, GcParameters
from chalicelib.services.jobs import next_run
from chalicelib.wiring import services

bp = Blueprint(__name__)
_HISTORY_MAX = 500  # newest executions a list pages through


class ScheduleObj(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["Hourly", "Daily", "Weekly", "Custom", "Manual", "None", "Schedule"]
    cron: str | None = None
    next_scheduled_time: str | None = None


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: ScheduleObj
    parameters: dict[str, Any] = {}


def _authorize(request: HttpRequest, action: str) -> None:
    principal = request.principal
    if not principal.authenticated:
        raise Unauthorized("log in to manage garbage collection")
    if not services().access.system_allows(principal, Permission("garbage-collection", action)):
        raise Forbidden("only system administrators manage garbage collection")


def _schedule_view(schedule_type: str | None, cron: str | None, upcoming: int | None) -> dict[str, Any]:
    """Harbor's ScheduleObj; a time Harbor has not got is Go's zero time, as Harbor writes it."""
    return {"type": schedule_type or "Manual", "cron": cron or "",
            "next_scheduled_time": iso(upcoming) if upcoming else ZERO_TIME}  # fmt: skip


def history_view(job: Job) -> dict[str, Any]:
    parameters = {**job.parameters, "time_window": services().settings.gc_time_window_hours, **job.counts}
    return shape(
        GCHistory,
        {
            "id": job.job_id,
            "job_name": "GARBAGE_COLLECTION",
            "job_kind": "SCHEDULE" if job.trigger == Trigger.SCHEDULE else "MANUAL",
            "job_parameters": json.dumps(parameters, sort_keys=True),
            "schedule": _schedule_view(job.schedule_type, job.schedule_cron, None),
            "job_status": str(job.status),
            "deleted": False,
            "creation_time": iso(job.created_at),
            "update_time": iso(job.updated_at),
        },
    )


@bp.route(f"{API}/system/gc", methods=["GET"], content_types=["*/*"])
def gc_history() -> Response:
    return serve(bp, _history)


def _history(request: HttpRequest) -> Response:
    _authorize(request, "list")
    records = [history_view(j) for j in services().jobs.history(VENDOR, _HISTORY_MAX)]
    return listing(request, "/system/gc", records, q_fields={"id": int, "job_status": str, "job_kind": str},
                   sort_fields=("id", "creation_time", "update_time", "job_status"))  # fmt: skip


@bp.route(f"{API}/system/gc/{{gc_id}}", methods=["GET", "POST", "PUT"], content_types=["*/*"])
def gc_item(gc_id: str) -> Response:
    method = bp.current_request.method
    if gc_id == "schedule":
        handler = {"GET": _get_schedule, "POST": _create_schedule, "PUT": _update_schedule}[method]
        return serve(bp, handler)
    return serve(bp, {"GET": _get, "PUT": _stop, "POST": _not_allowed}[method], gc_id=gc_id)


@bp.route(f"{API}/system/gc/{{gc_id}}/log", methods=["GET"], content_types=["*/*"])
def gc_log(gc_id: str) -> Response:
    return serve(bp, _log, gc_id=gc_id)


def _get(request: HttpRequest) -> Response:
    _authorize(request, "read")
    job = services().jobs.get(int_param(request.params["gc_id"], "gc_id"), VENDOR)
    return json_response(history_view(job))


def _stop(request: HttpRequest) -> Response:
    _authorize(request, "stop")
    services().jobs.stop(int_param(request.params["gc_id"], "gc_id"), VENDOR)
    return ok()


def _not_allowed(request: HttpRequest) -> Response:
    raise BadRequest("POST is only defined on /system/gc/schedule")


def _log(request: HttpRequest) -> Response:
    _authorize(request, "read")
    text = services().jobs.log_text(int_param(request.params["gc_id"], "gc_id"), VENDOR)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


def _get_schedule(request: HttpRequest) -> Response:
    _authorize(request, "read")
    schedule = services().jobs.schedule(VENDOR)
    if schedule is None or schedule.schedule_type == "None":
        return ok()  # Harbor answers 200 with no body
    return json_response(_schedule_record(schedule))


def _schedule_record(schedule: Schedule) -> dict[str, Any]:
    return shape(
        GCHistory,
        {
            "id": 0,
            "job_name": "GARBAGE_COLLECTION",
            "job_kind": "SCHEDULE",
            "job_parameters": json.dumps(schedule.parameters, sort_keys=True),
            "schedule": _schedule_view(schedule.schedule_type, schedule.cron, next_run(schedule, time.time())),
            "job_status": "",
            "deleted": False,
            "creation_time": iso(schedule.created_at),
            "update_time": iso(schedule.updated_at),
        },
    )


def _create_schedule(request: HttpRequest) -> Response:
    return _apply_schedule(request, created_status=True)


def _update_schedule(request: HttpRequest) -> Response:
    return _apply_schedule(request, created_status=False)


def _apply_schedule(request: HttpRequest, *, created_status: bool) -> Response:
    """`Manual` runs GC now (201 with the execution's Location); other types store the schedule."""
    _authorize(request, "create" if created_status else "update")
    parsed = body(request, ScheduleBody)
    params = GcParameters.parse(parsed.parameters).as_dict()
    kind = parsed.schedule.type
    if kind == "Manual":
        job = services().gc.start(params)
        return created(f"{API}/system/gc/{job.job_id}")
    cron = (parsed.schedule.cron or "").strip()
    if kind in ("Custom", "Schedule"):
        try:
            Cron.parse(cron)
        except CronError as exc:
            raise BadRequest(f"invalid cron: {exc}", {"cron": cron[:100]}) from None
    services().jobs.set_schedule(VENDOR, kind, cron, params)
    return created(f"{API}/system/gc/schedule") if created_status else ok()
