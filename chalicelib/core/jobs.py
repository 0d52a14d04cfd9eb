"""Background job model (Harbor's execution record) and Harbor's schedules: types and 6-field cron.

Pure: no I/O. A cron here has Harbor's six fields, `second minute hour day-of-month month
day-of-week` (robfig/cron as Harbor uses it), with `*`, `?`, lists, ranges and `/step`.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    ERROR = "Error"
    STOPPED = "Stopped"


FINAL_STATUSES = frozenset({JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.STOPPED})
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)


class Trigger(StrEnum):
    MANUAL = "Manual"
    SCHEDULE = "Schedule"
    EVENT = "Event"


class VendorType(StrEnum):
    GARBAGE_COLLECTION = "GARBAGE_COLLECTION"
    WEBHOOK = "WEBHOOK"
    WEBHOOK_TASK = "WEBHOOK_TASK"
    RETENTION = "RETENTION"


# Harbor's schedule types; the fixed ones carry the cron Harbor's UI sends for them.
FIXED_CRONS = {"Hourly": "0 0 * * * *", "Daily": "0 0 0 * * *", "Weekly": "0 0 0 * * 0"}
SCHEDULE_TYPES = ("Hourly", "Daily", "Weekly", "Custom", "None", "Manual", "Schedule")


@dataclass(frozen=True)
class Job:
    job_id: int
    vendor_type: str
    trigger: str
    status: JobStatus
    parameters: dict[str, Any]
    created_at: int
    updated_at: int
    schedule_type: str | None = None
    schedule_cron: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    execution_arn: str | None = None
    stop_requested: bool = False
    error: str | None = None
    started_at: int | None = None
    ended_at: int | None = None
    # The lock the job holds while active: its vendor type (one job of the kind at a time, as GC)
    # unless it was submitted under a narrower one (retention: one run per policy).
    lock: str | None = None


@dataclass(frozen=True)
class Schedule:
    vendor_type: str
    schedule_type: str
    cron: str
    parameters: dict[str, Any]
    created_at: int
    updated_at: int
    last_fired: int = 0


class CronError(ValueError):
    pass


_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {
    4: {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m},
    5: {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)},
}


@dataclass(frozen=True)
class Cron:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = text.split()
        if len(fields) != 6:
            raise CronError("a cron has six fields: second minute hour day-of-month month day-of-week")
        sets = [_field(value, index) for index, value in enumerate(fields)]
        weekdays = frozenset(7 % 7 if d == 7 else d for d in sets[5])
        return cls(sets[0], sets[1], sets[2], sets[3], sets[4], weekdays,
                   fields[3] in ("*", "?"), fields[5] in ("*", "?"))  # fmt: skip

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` (UTC) that the cron matches."""
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise CronError("the cron never matches")

    def _day_matches(self, t: datetime) -> bool:
        weekday = (t.weekday() + 1) % 7  # cron: 0 = Sunday
        in_month, in_week = t.day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week  # both restricted: either matches (cron's rule)


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _RANGES[index]
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, index) if step_text else 1
        if step < 1:
            raise CronError(f"bad step in {text!r}")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, index), _number(last, index)
        else:
            start = _number(base, index)
            end = high if step_text else start
        top = 7 if index == 5 else high
        if not (low <= start <= top and low <= end <= top and start <= end):
            raise CronError(f"{text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, index: int) -> int:
    named = _NAMES.get(index, {}).get(text.lower())
    if named is not None:
        return named
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        raise CronError(f"{text!r} is not a number")
    return int(text)
