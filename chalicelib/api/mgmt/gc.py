"""/api/v2.0/system/gc: garbage collection history, logs, stop, and its schedule (Harbor's shapes).

System administrators only (or a system robot granted `garbage-collection`), as in Harbor; a PUT
that stops an execution needs `update` here (Harbor asks `stop`), since it shares the route.
`/system/gc/schedule` shares the `{gc_id}` route: API Gateway and the local adapter would both
match it there, so the handler tells them apart instead of relying on route precedence.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import body, int_param, iso
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.schedules import ScheduleObj, checked_cron
from chalicelib.api.mgmt.wire import ZERO_TIME
from chalicelib.core.jobs import Job, Schedule, Trigger, VendorType
from chalicelib.errors import BadRequest
from chalicelib.services.jobs import next_run
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_HISTORY_MAX = 500  # newest executions a list pages through
VENDOR = VendorType.GARBAGE_COLLECTION


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    schedule: ScheduleObj
    parameters: dict[str, Any] = {}


def _schedule_view(schedule_type: str | None, cron: str | None, upcoming: int | None) -> dict[str, Any]:
    """Harbor's ScheduleObj; a time Harbor has not got is Go's zero time, as Harbor writes it."""
    return {"type": schedule_type or "Manual", "cron": cron or "",
            "next_scheduled_time": iso(upcoming) if upcoming else ZERO_TIME}  # fmt: skip


def history_view(job: Job) -> dict[str, Any]:
    parameters = {**job.parameters, "time_window": services().settings.gc_time_window_hours, **job.counts}
    return {
        "id": job.job_id,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": "SCHEDULE" if job.trigger == Trigger.SCHEDULE else "MANUAL",
        "job_parameters": json.dumps(parameters, sort_keys=True),
        "schedule": _schedule_view(job.schedule_type, job.schedule_cron, None),
        "job_status": str(job.status),
        "deleted": False,
        "creation_time": iso(job.created_at),
        "update_time": iso(job.updated_at),
    }


@routes.get("/system/gc")
def gc_history(request: HttpRequest) -> Page:
    records = [history_view(j) for j in services().jobs.history(VENDOR, _HISTORY_MAX)]
    return Page(records, q_fields={"id": int, "job_status": str, "job_kind": str},
                sort_fields=("id", "creation_time", "update_time", "job_status"))  # fmt: skip


def _gc_id(request: HttpRequest) -> int:
    return int_param(request.params["gc_id"], "gc_id")


def _is_schedule(request: HttpRequest) -> bool:
    return request.params["gc_id"] == "schedule"


@routes.get("/system/gc/{gc_id}")
def get_gc(request: HttpRequest) -> Response | dict[str, Any] | None:
    """One execution, or (`/system/gc/schedule`) the schedule: 200 with no body when there is none."""
    if not _is_schedule(request):
        return history_view(services().jobs.get(_gc_id(request), VENDOR))
    schedule = services().jobs.schedule(VENDOR)
    if schedule is None or schedule.schedule_type == "None":
        return None  # Harbor answers 200 with no body
    return _schedule_record(schedule)


@routes.post("/system/gc/{gc_id}")
def create_gc_schedule(request: HttpRequest) -> Created:
    if not _is_schedule(request):
        raise BadRequest("POST is only defined on /system/gc/schedule")
    return _apply_schedule(request) or Created("/system/gc/schedule")


@routes.put("/system/gc/{gc_id}")
def update_gc(request: HttpRequest) -> Created | None:
    """Stop an execution, or (`/system/gc/schedule`) change the schedule."""
    if _is_schedule(request):
        return _apply_schedule(request)
    services().jobs.stop(_gc_id(request), VENDOR)
    return None


@routes.get("/system/gc/{gc_id}/log")
def gc_log(request: HttpRequest) -> Response:
    text = services().jobs.log_text(_gc_id(request), VENDOR)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


def _schedule_record(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": 0,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": "SCHEDULE",
        "job_parameters": json.dumps(schedule.parameters, sort_keys=True),
        "schedule": _schedule_view(schedule.schedule_type, schedule.cron, next_run(schedule, services().clock())),
        "job_status": "",
        "deleted": False,
        "creation_time": iso(schedule.created_at),
        "update_time": iso(schedule.updated_at),
    }


def _apply_schedule(request: HttpRequest) -> Created | None:
    """`Manual` runs GC now (201 with the execution's Location); other types store the schedule."""
    from chalicelib.services.gc import GcParameters  # noqa: PLC0415 (services load on first use)

    parsed = body(request, ScheduleBody)
    params = GcParameters.parse(parsed.parameters).as_dict()
    kind = parsed.schedule.type
    if kind == "Manual":
        return Created(f"/system/gc/{services().gc.start(params).job_id}")
    services().jobs.set_schedule(VENDOR, kind, checked_cron(parsed.schedule), params)
    return None
