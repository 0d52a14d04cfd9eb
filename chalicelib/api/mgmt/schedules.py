"""Harbor's `ScheduleObj` request body, shared by the singleton job schedules (GC, scan all)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.core.jobs import Cron, CronError
from chalicelib.errors import BadRequest


class ScheduleObj(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    type: Literal["Hourly", "Daily", "Weekly", "Custom", "Manual", "None", "Schedule"]
    cron: str | None = None
    next_scheduled_time: str | None = None


def checked_cron(schedule: ScheduleObj) -> str:
    """The schedule's cron, trimmed; a `Custom`/`Schedule` type with a cron that does not parse is a 400."""
    cron = (schedule.cron or "").strip()
    if schedule.type in ("Custom", "Schedule"):
        try:
            Cron.parse(cron)
        except CronError as exc:
            raise BadRequest(f"invalid cron: {exc}", {"cron": cron[:100]}) from None
    return cron
