"""/api/v2.0/system/scanAll and /scans/{all,schedule}/metrics: Harbor's scan all (shapes, status
codes and messages as Harbor's handler answers them). Every route needs the system `scan-all`
permission and, as in Harbor, a default scanner (412 otherwise)."""

from __future__ import annotations

from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.api.mgmt._edge import body, iso
from chalicelib.api.mgmt._route import Created, Routes
from chalicelib.api.mgmt.schedules import ScheduleObj, checked_cron
from chalicelib.api.mgmt.wire import ZERO_TIME
from chalicelib.core.jobs import Trigger, VendorType
from chalicelib.errors import BadRequest, Precondition
from chalicelib.services.jobs import next_run
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
VENDOR = VendorType.SCAN_ALL
_LOCATION = "/system/scanAll/schedule"


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    schedule: ScheduleObj
    parameters: dict[str, Any] | None = None


def _require_scanner() -> None:
    services().scan_all.require_scanner()


@routes.get("/system/scanAll/schedule")
def get_schedule(request: HttpRequest) -> dict[str, Any]:
    """Harbor's Schedule; `{}` when there is none."""
    _require_scanner()
    schedule = services().jobs.schedule(VENDOR)
    if schedule is None or not schedule.active():
        return {}
    upcoming = next_run(schedule, services().clock())
    return {
        "id": 1,
        "status": "Scheduled",
        "creation_time": iso(schedule.created_at),
        "update_time": iso(schedule.updated_at),
        "schedule": {
            "type": schedule.schedule_type,
            "cron": schedule.cron,
            "next_scheduled_time": iso(upcoming) if upcoming else ZERO_TIME,
        },
    }


@routes.post("/system/scanAll/schedule")
def create_schedule(request: HttpRequest) -> Created:
    """`None`: nothing; `Manual`: run now (409 while the last manual run goes on); a periodic
    type: create the schedule (412 when one exists: Harbor wants it deleted first)."""
    _require_scanner()
    parsed = body(request, ScheduleBody).schedule
    if parsed.type == "Manual":
        services().scan_all.start(Trigger.MANUAL)
    elif parsed.type != "None":
        current = services().jobs.schedule(VENDOR)
        if current is not None and current.active():
            raise Precondition("fail to set schedule for scan all as always had one, please delete it firstly "
                               "then to re-schedule")  # fmt: skip
        _save(parsed)
    return Created(_LOCATION)


@routes.put("/system/scanAll/schedule")
def update_schedule(request: HttpRequest) -> None:
    """A periodic type replaces the schedule, `None` removes it; `Manual` is refused (400)."""
    _require_scanner()
    parsed = body(request, ScheduleBody).schedule
    if parsed.type == "Manual":
        raise BadRequest(f"fail to update scan all schedule as wrong schedule type: {parsed.type}")
    if parsed.type == "None":
        services().jobs.remove_schedule(VENDOR)
        return
    _save(parsed)


def _save(parsed: ScheduleObj) -> None:
    services().jobs.set_schedule(VENDOR, parsed.type, checked_cron(parsed), {})


@routes.post("/system/scanAll/stop")
def stop_scan_all(request: HttpRequest) -> Response:
    _require_scanner()
    services().scan_all.stop()
    return empty_response(202)


def _stats(trigger: Trigger | None) -> dict[str, Any]:
    _require_scanner()
    stats = services().scan_all.stats(trigger)
    if stats is None:
        return {}
    return {"total": stats.total, "completed": stats.completed, "metrics": stats.metrics, "ongoing": stats.ongoing,
            "trigger": stats.trigger}  # fmt: skip


@routes.get("/scans/all/metrics")
def all_metrics(request: HttpRequest) -> dict[str, Any]:
    return _stats(None)


@routes.get("/scans/schedule/metrics")
def schedule_metrics(request: HttpRequest) -> dict[str, Any]:
    return _stats(Trigger.SCHEDULE)
