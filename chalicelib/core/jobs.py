"""Background job model (Harbor's `pkg/task`: executions, their tasks, the status transitions both
follow) and Harbor's schedules: types and 6-field cron.

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


# The most tasks appended to a running execution in one transaction (100 items: these and the
# execution's row).
APPEND_MAX = 99
FINAL_STATUSES = frozenset({JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.STOPPED})
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)

# The moves an execution or a task may make (Harbor's status graph): forward only, never out of a
# final status. Every status write is conditional on the current status being one of `sources`.
_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, *FINAL_STATUSES}),
    JobStatus.RUNNING: FINAL_STATUSES,
    JobStatus.SUCCESS: frozenset(),
    JobStatus.ERROR: frozenset(),
    JobStatus.STOPPED: frozenset(),
}


def policy_lock(vendor_type: str, policy_id: int) -> str:
    """The lock a run of one policy holds (`<vendor type>#<policy id>`) where runs of different
    policies of a kind may overlap (retention) and runs of one policy may not."""
    return f"{vendor_type}#{policy_id}"


class IllegalTransition(ValueError):
    """A status move the graph does not have (e.g. Success -> Running)."""


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in _MOVES[current]


def sources(target: JobStatus) -> tuple[JobStatus, ...]:
    """The statuses from which `target` may be reached (what a conditional write allows)."""
    return tuple(status for status, moves in _MOVES.items() if target in moves)


def check_move(current: JobStatus, target: JobStatus) -> None:
    if not can_move(current, target):
        raise IllegalTransition(f"{current} -> {target} is not a status transition")


class Trigger(StrEnum):
    MANUAL = "Manual"
    SCHEDULE = "Schedule"
    EVENT = "Event"


class VendorType(StrEnum):
    GARBAGE_COLLECTION = "GARBAGE_COLLECTION"
    WEBHOOK = "WEBHOOK"
    WEBHOOK_TASK = "WEBHOOK_TASK"
    RETENTION = "RETENTION"
    # Harbor's vendor types of scan executions (one per artifact, scanner and scan type).
    IMAGE_SCAN = "IMAGE_SCAN"
    SBOM = "SBOM"
    # Harbor's scan all: one execution whose tasks are the scans it started.
    SCAN_ALL = "SCAN_ALL"
    # Harbor's scan data export (`/export/cve`): one execution per export, no tasks.
    SCAN_DATA_EXPORT = "SCAN_DATA_EXPORT"
    REPLICATION = "REPLICATION"


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
    # Its tasks by status (kept by the same transaction that moves a task).
    metrics: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One unit of an execution's work (a repository of a retention run, a target of a webhook
    delivery). `subject` names what it works on; `counts` and `result` are its kind's outcome;
    `reported` says its kind's once-per-task side effect (an event) was claimed."""

    task_id: int
    execution_id: int
    status: JobStatus
    subject: str
    parameters: dict[str, Any]
    created_at: int
    updated_at: int
    counts: dict[str, int] = field(default_factory=dict)
    run_count: int = 0
    error: str | None = None
    started_at: int | None = None
    ended_at: int | None = None
    log: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    reported: bool = False


@dataclass(frozen=True)
class Schedule:
    vendor_type: str
    schedule_type: str
    cron: str
    parameters: dict[str, Any]
    created_at: int
    updated_at: int
    last_fired: int = 0
    # A kind with one schedule per policy (retention) names the policy; 0 is the kind's own.
    policy_id: int = 0

    def active(self) -> bool:
        return bool(self.cron) and self.schedule_type not in ("None", "Manual")

    def due_slot(self, now: float) -> int | None:
        """The cron slot passed since the last run (or the last change), if any: at most one run
        per slot, however late the scheduler looks."""
        if not self.active():
            return None
        since = max(self.last_fired, self.updated_at)
        slot = int(Cron.parse(self.cron).next_after(datetime.fromtimestamp(since, UTC)).timestamp())
        return slot if slot <= now else None


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
