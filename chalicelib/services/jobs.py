"""The executions/tasks service every job kind runs on (Harbor's `pkg/task`; docs/architecture.md).

An execution ("job") is a row (vendor type, trigger, status, parameters, counts, times, log lines)
and, for the kinds Step Functions runs, a state machine execution that does the work through
`chalicelib/jobs/` handlers. The row is the truth the API shows; the engine is only the engine.
An execution may have tasks (a repository of a retention run, a target of a webhook delivery),
each with its own status, counts and log; the execution's `metrics` count its tasks by status.
Statuses move only along the graph in `core/jobs.py` and every move is a conditional write, so a
handler that runs twice (Step Functions retries, a restart) cannot move a finished job or task
back, and an illegal move is refused. A job kind is a policy service plus its task body; locks,
stop, schedules, logs and reconciliation live here, once.

A job whose engine died without reporting (a Lambda timeout outside a Catch, a local restart that
lost moto's executions) is found by `reconcile`: any read of an active job asks the engine, and
the local runner reconciles every active job when it starts, so nothing stays Running forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.jobs import (
    ACTIVE_STATUSES,
    APPEND_MAX,
    FIXED_CRONS,
    Cron,
    Job,
    JobStatus,
    Schedule,
    Task,
    Trigger,
    can_move,
    sources,
)
from chalicelib.errors import Conflict, NotFound
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.stores.jobs import JobStore

# Engine states that mean the execution ended without the job recording its own end.
_DEAD = {"FAILED", "TIMED_OUT", "ABORTED", "MISSING"}
# How often a task move is tried again when a concurrent writer moved the task first.
_MOVE_TRIES = 5


class JobEnded(Exception):
    """Raised inside a handler when its job was stopped or already ended: the work stops there."""


class Runner(Protocol):
    def start(self, vendor_type: str, job_id: int, payload: dict[str, Any]) -> str: ...
    def stop(self, execution_arn: str) -> None: ...
    def status(self, execution_arn: str) -> str: ...


class JobService:
    def __init__(self, store: JobStore, runner: Runner, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._runner = runner
        self._clock = clock

    # Starting and stopping.

    def now(self) -> float:
        """The injected clock's time (schedules are due by it)."""
        return self._clock()

    def record(self, vendor_type: str, trigger: Trigger, parameters: dict[str, Any], *,
               schedule: Schedule | None = None, lock: str | None = None, listed_under: str | None = None,
               counts: dict[str, int] | None = None, running: bool = False) -> Job:  # fmt: skip
        """A new execution row, Pending (or already Running: `running`), nothing started.
        `listed_under` lists it under another history than its vendor type's (a webhook policy's
        executions)."""
        return self._record(vendor_type, trigger, parameters, schedule=schedule, lock=lock, listed_under=listed_under,
                            counts=counts, running=running, tasks=0)  # fmt: skip

    def record_with_tasks(self, vendor_type: str, trigger: Trigger, parameters: dict[str, Any],
                          specs: list[tuple[str, dict[str, Any]]], *, listed_under: str | None = None,
                          counts: dict[str, int] | None = None) -> tuple[Job, list[Task]]:  # fmt: skip
        """A new Running execution with one Pending task per (subject, parameters), written with
        its metrics already counting them (a webhook delivery: one write fewer per event)."""
        job = self._record(vendor_type, trigger, parameters, schedule=None, lock=None, listed_under=listed_under,
                           counts=counts, running=True, tasks=len(specs))  # fmt: skip
        return job, self._store.create_tasks(job.job_id, specs, fresh=True)

    def _record(self, vendor_type: str, trigger: Trigger, parameters: dict[str, Any], *, schedule: Schedule | None,
                lock: str | None, listed_under: str | None, counts: dict[str, int] | None, running: bool,
                tasks: int) -> Job:  # fmt: skip
        now = int(self._clock())
        job = Job(
            job_id=self._store.new_id(), vendor_type=vendor_type, trigger=trigger,
            status=JobStatus.RUNNING if running else JobStatus.PENDING, parameters=parameters,
            created_at=now, updated_at=now, started_at=now if running else None,
            schedule_type=schedule.schedule_type if schedule else None,
            schedule_cron=schedule.cron if schedule else None, lock=lock, counts=dict(counts or {}),
            metrics={str(JobStatus.PENDING): tasks} if tasks else {},
        )  # fmt: skip
        self._store.create(job, listed_under)
        return job

    def submit(self, vendor_type: str, trigger: Trigger, parameters: dict[str, Any],
               schedule: Schedule | None = None, *, lock: str | None = None) -> Job:  # fmt: skip
        """Record a Pending job, take its lock and start its execution.

        The lock is the kind's (one active job of the kind, as Harbor runs one GC at a time) unless
        `lock` names a narrower one (retention: one run per policy, so two projects' runs proceed
        in parallel). Conflict (409) while another job holds it."""
        # The row first: a lock always names a job that exists, so a holder without a row is never
        # mistaken for a dead one. A refused job leaves no trace.
        job = self.record(vendor_type, trigger, parameters, schedule=schedule, lock=lock or vendor_type)
        try:
            self._acquire(job.lock or vendor_type, job.job_id, vendor_type)
        except Conflict:
            self._store.discard(job.job_id)
            raise
        try:
            arn = self._runner.start(vendor_type, job.job_id, {"job_id": job.job_id})
        except Exception as exc:
            self.finish(job.job_id, JobStatus.ERROR, f"could not start: {exc}")
            raise
        self._store.set_fields(job.job_id, execution_arn=arn)
        self._store.log(job.job_id, f"{vendor_type} job {job.job_id} submitted ({trigger}), parameters {parameters}")
        return self.get(job.job_id, vendor_type)

    def launch(self, job: Job, payload: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        """Start the engine for a recorded execution (no lock: a kind whose runs may overlap, as
        webhook deliveries); `parameters`, when given, replace the row's in the same write, so
        `resume` can start the same input again."""
        arn = self._runner.start(job.vendor_type, job.job_id, payload)
        fields: dict[str, Any] = {"execution_arn": arn}
        if parameters is not None:
            fields["parameters"] = parameters
        self._store.set_fields(job.job_id, **fields)

    def resume(self, job: Job, before_start: Callable[[Job], None] | None = None) -> bool:
        """Start a recorded execution again with the input it was launched with, if its engine
        lost it (a local restart: moto's executions die with the process, the rows do not).

        `before_start` runs once the job is known to need it and before the new execution starts:
        what it writes (a task's log line) cannot race the execution, which may end its tasks at
        once."""
        payload = job.parameters.get("payload")
        if job.status not in ACTIVE_STATUSES or not isinstance(payload, dict) or not job.execution_arn:
            return False
        if self._runner.status(job.execution_arn) == "RUNNING":
            return False
        if before_start is not None:
            before_start(job)
        self._store.set_fields(job.job_id, execution_arn=self._runner.start(job.vendor_type, job.job_id, payload))
        self._store.log(job.job_id, "execution resumed: the process that ran it stopped")
        return True

    def _acquire(self, lock: str, job_id: int, vendor_type: str) -> None:
        if self._store.lock(lock, job_id, None):
            return
        holder = self._store.lock_holder(lock)
        if holder is not None:
            current = self._store.get(holder)
            if current is not None and current.status in ACTIVE_STATUSES:
                current = self.reconcile(current)
            if current is not None and current.status in ACTIVE_STATUSES:
                raise Conflict(f"a {vendor_type} job is already running", {"id": holder})
        if not self._store.lock(lock, job_id, holder):
            raise Conflict(f"a {vendor_type} job is already running", {"id": holder})

    def stop(self, job_id: int, vendor_type: str) -> Job:
        """Stop an active job: the row becomes Stopped at once, the execution is stopped, and a
        handler still running sees the request at its next check and returns."""
        job = self.get(job_id, vendor_type)
        if job.status not in ACTIVE_STATUSES:
            return job
        self._store.request_stop(job_id)
        if job.execution_arn:
            self._runner.stop(job.execution_arn)
        self.finish(job_id, JobStatus.STOPPED, None)
        return self.get(job_id, vendor_type)

    # What handlers call.

    def begin(self, job_id: int) -> Job:
        """Pending -> Running (idempotent); JobEnded if the job was stopped or has ended."""
        self._store.transition(job_id, JobStatus.RUNNING, allowed=(JobStatus.PENDING,))
        return self.check(job_id)

    def check(self, job_id: int) -> Job:
        job = self._store.get(job_id)
        if job is None or job.stop_requested or job.status != JobStatus.RUNNING:
            raise JobEnded(f"job {job_id} is no longer running")
        return job

    def finish(self, job_id: int, status: JobStatus, error: str | None, counts: dict[str, int] | None = None) -> bool:
        """Record the end (once), end the tasks it leaves unfinished with it (Stopped when it was
        stopped, Error otherwise: no task stays active once its execution has ended) and release
        the job's lock; False if the job had already ended."""
        fields: dict[str, Any] = {"error": error[:2000] if error else None}
        if counts is not None:
            fields["counts"] = counts
        moved = self._store.transition(job_id, status, allowed=sources(status), **fields)
        changed = moved is not None
        job = moved or self._store.get(job_id)
        if job is not None:
            if changed and (job.metrics.get(JobStatus.PENDING) or job.metrics.get(JobStatus.RUNNING)):
                left = JobStatus.STOPPED if status == JobStatus.STOPPED else JobStatus.ERROR
                why = (
                    "stopped with its execution" if left == JobStatus.STOPPED else f"ended with its execution: {error}"
                )
                for task in self._store.tasks(job_id):
                    if task.status in ACTIVE_STATUSES:
                        self.end_task(task, left, error=None if left == JobStatus.STOPPED else error, log=[why])
            if job.lock:
                self._store.unlock(job.lock, job_id)
            if changed and (job.lock or job.execution_arn):  # a job an engine ran keeps a log of its own
                self._store.log(job_id, f"job ended: {status}" + (f" ({error})" if error else ""))
        return changed

    def log(self, job_id: int, line: str) -> None:
        self._store.log(job_id, line)

    # Tasks.

    def create_tasks(self, execution_id: int, specs: list[tuple[str, dict[str, Any]]]) -> list[Task]:
        """One Pending task per (subject, parameters), consecutive ids; a retried call replaces
        what an earlier attempt created (nothing has run them yet)."""
        return self._store.create_tasks(execution_id, specs)

    def append_tasks(self, execution_id: int, specs: list[tuple[str, dict[str, Any]]]) -> list[Task]:
        """Add Pending tasks to an execution that finds its work as it runs (scan all), counted in
        its metrics in the same transaction; any number, written in transactions of `APPEND_MAX`."""
        job = self._store.get(execution_id)
        if job is not None and not job.metrics:
            self._store.set_fields(execution_id, metrics={str(JobStatus.PENDING): 0})
        created: list[Task] = []
        for start in range(0, len(specs), APPEND_MAX):
            created += self._store.append_tasks(execution_id, specs[start : start + APPEND_MAX])
        return created

    def task(self, execution_id: int, task_id: int) -> Task | None:
        return self._store.task(execution_id, task_id)

    def tasks(self, execution_id: int) -> list[Task]:
        return self._store.tasks(execution_id)

    def start_task(self, execution_id: int, task_id: int) -> Task | None:
        """Pending -> Running; a Running task is returned as it is (the attempt that claimed it
        died and this one takes over); None if it does not exist or has ended, so a retried or
        re-driven Task never runs an ended task again."""
        task = self._store.task(execution_id, task_id)
        return self.begin_task(task) if task is not None else None

    def begin_task(self, task: Task) -> Task | None:
        """`start_task` for a task the caller holds (as read or created): one write when it is
        still where it was."""
        current: Task | None = task
        while current is not None and current.status == JobStatus.PENDING:
            if self._store.move_task(current, JobStatus.RUNNING):
                now = int(self._clock())
                return replace(current, status=JobStatus.RUNNING, started_at=now, updated_at=now)
            current = self._store.task(task.execution_id, task.task_id)
        return current if current is not None and current.status == JobStatus.RUNNING else None

    def end_task(self, task: Task, status: JobStatus, *, counts: dict[str, int] | None = None,
                 run_count: int | None = None, error: str | None = None, log: list[str] | None = None,
                 result: dict[str, Any] | None = None) -> bool:  # fmt: skip
        """Move a task to `status` with its outcome; False (nothing written) when the graph has no
        such move from the status it has now (it ended already). A task that was stopped while it
        ran still records what it did before it noticed (Stopped -> Stopped, outcome only)."""
        for _ in range(_MOVE_TRIES):
            late_report = task.status == status == JobStatus.STOPPED
            if not (late_report or can_move(task.status, status)):
                return False
            if self._store.move_task(task, status, counts=counts, run_count=run_count, error=error, log=log,
                                     result=result):  # fmt: skip
                return True
            current = self._store.task(task.execution_id, task.task_id)
            if current is None:
                return False
            task = current
        return False

    def note_task(self, task: Task, *, counts: dict[str, int] | None = None, run_count: int | None = None,
                  log: list[str] | None = None) -> bool:  # fmt: skip
        """Record progress on a task that is still where it was read (an attempt, a log line)."""
        return self._store.update_task(task, counts=counts, run_count=run_count, log=log)

    def claim_report(self, execution_id: int, task_id: int) -> bool:
        """Claim the one side effect a task's end has (an event), so it happens once."""
        return self._store.claim_report(execution_id, task_id)

    def set_counts(self, job_id: int, counts: dict[str, int]) -> None:
        self._store.set_fields(job_id, counts=counts)

    # Reads.

    def get(self, job_id: int, vendor_type: str) -> Job:
        job = self._store.get(job_id)
        if job is None or job.vendor_type != vendor_type:
            raise NotFound(f"{vendor_type} job {job_id} not found")
        return self.reconcile(job)

    def history(self, vendor_type: str, limit: int, longest_seconds: float | None = None) -> list[Job]:
        """The newest `limit` executions listed under `vendor_type` (or a narrower history, as a
        webhook policy's), each reconciled."""
        return [self.reconcile(job, longest_seconds) for job in self._store.history(vendor_type, limit)]

    def recorded(self, listed_under: str, limit: int) -> list[Job]:
        """The newest executions as their rows hold them (not reconciled: `resume` looks at them)."""
        return self._store.history(listed_under, limit)

    def execution(self, job_id: int, vendor_type: str, longest_seconds: float | None = None) -> Job | None:
        """The execution if it is of this kind (reconciled), else None."""
        job = self._store.get(job_id)
        if job is None or job.vendor_type != vendor_type:
            return None
        return self.reconcile(job, longest_seconds)

    def log_text(self, job_id: int, vendor_type: str) -> str:
        self.get(job_id, vendor_type)
        return "".join(f"{line}\n" for line in self._store.log_lines(job_id))

    def reconcile(self, job: Job, longest_seconds: float | None = None) -> Job:
        """An active job whose execution is gone is marked Error, never left Running forever.

        A job run in-process (no engine to ask: a webhook delivery on a thread or in an event
        consumer's invocation) is gone once it is older than `longest_seconds`, the longest its
        work can take."""
        if job.status not in ACTIVE_STATUSES:
            return job
        if not job.execution_arn:
            if longest_seconds is None or self._clock() - job.created_at <= longest_seconds:
                return job
            self.finish(job.job_id, JobStatus.ERROR, "interrupted: the process running it stopped before it ended")
            return self._store.get(job.job_id) or job
        state = self._runner.status(job.execution_arn)
        if state not in _DEAD and state != "SUCCEEDED":
            return job
        reason = "the job's execution ended without reporting" if state != "MISSING" else "interrupted by a restart"
        self.finish(job.job_id, JobStatus.ERROR, f"{reason} ({state})")
        logger.warning("job reconciled", job_id=job.job_id, engine_status=state)
        return self._store.get(job.job_id) or job

    def recover(self, vendor_types: list[str]) -> int:
        """Reconcile every active job of these kinds (the local runner calls it at start)."""
        count = 0
        for vendor_type in vendor_types:
            for job in self._store.history(vendor_type, 50):
                if job.status in ACTIVE_STATUSES and self.reconcile(job).status not in ACTIVE_STATUSES:
                    count += 1
        return count

    # Schedules: one per kind (GC), or one per policy of a kind (retention).

    def schedule(self, vendor_type: str, policy_id: int = 0) -> Schedule | None:
        return self._store.schedule(vendor_type, policy_id)

    def set_schedule(self, vendor_type: str, schedule_type: str, cron: str, parameters: dict[str, Any],
                     policy_id: int = 0) -> Schedule:  # fmt: skip
        """Save a schedule; `None`/`Manual` (or an empty cron) keep the row but never fire."""
        now = int(self._clock())
        current = self._store.schedule(vendor_type, policy_id)
        cron = FIXED_CRONS.get(schedule_type, cron if schedule_type in ("Custom", "Schedule") else "")
        updated = Schedule(
            vendor_type=vendor_type, schedule_type=schedule_type, cron=cron, parameters=parameters,
            created_at=current.created_at if current else now, updated_at=now,
            last_fired=current.last_fired if current else 0, policy_id=policy_id,
        )  # fmt: skip
        self._store.save_schedule(updated)
        return updated

    def remove_schedule(self, vendor_type: str, policy_id: int = 0) -> None:
        self._store.delete_schedule(vendor_type, policy_id)

    def due(self, vendor_type: str, now: float) -> list[Schedule]:
        """The policy schedules of a kind whose cron slot passed since their last run, each claimed
        for this caller by a conditional write (so several schedulers start one run per slot)."""
        claimed = []
        for schedule in self._store.schedules(vendor_type):
            slot = schedule.due_slot(now)
            if slot is not None and self._store.claim_slot(vendor_type, schedule.last_fired, slot, schedule.policy_id):
                claimed.append(schedule)
        return claimed

    def run_due(self, vendor_type: str, now: float) -> Job | None:
        """Start the kind's scheduled run if a cron slot passed since the last one (at most one
        run per slot, even with several schedulers: the slot is claimed by a conditional write)."""
        schedule = self._store.schedule(vendor_type)
        slot = schedule.due_slot(now) if schedule is not None else None
        if schedule is None or slot is None or not self._store.claim_slot(vendor_type, schedule.last_fired, slot):
            return None
        try:
            return self.submit(vendor_type, Trigger.SCHEDULE, schedule.parameters, schedule)
        except Conflict:
            logger.warning("scheduled job skipped: one is already running", vendor_type=vendor_type)
            return None


def next_run(schedule: Schedule | None, now: float) -> int | None:
    """When the schedule fires next (epoch seconds), or None."""
    if schedule is None or not schedule.active():
        return None
    return int(Cron.parse(schedule.cron).next_after(datetime.fromtimestamp(now, UTC)).timestamp())
