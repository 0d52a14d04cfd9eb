"""The background-job framework: one execution model for every job kind
(docs/architecture.md).

A job is a row (vendor type, trigger, status, parameters, counts, times, log lines) and a Step
Functions execution that does the work through `chalicelib/jobs/` handlers. The row is the truth
the API shows; the execution is only the engine. Every status change is a conditional write, so
a handler that runs twice (Step Functions retries, a restart) cannot move a finished job back.

A job whose engine died without reporting (a Lambda timeout outside a Catch, a local restart that
lost moto's executions) is found by `reconcile`: any read of an active job asks the engine, and
the local runner reconciles every active job when it starts, so nothing stays Running forever.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.jobs import ACTIVE_STATUSES, FIXED_CRONS, Cron, Job, JobStatus, Schedule, Trigger
from chalicelib.errors import Conflict, NotFound
from chalicelib.observability import logger
from chalicelib.stores import tables

if TYPE_CHECKING:
    from chalicelib.stores.jobs import JobStore

# Engine states that mean the execution ended without the job recording its own end.
_DEAD = {"FAILED", "TIMED_OUT", "ABORTED", "MISSING"}


class JobEnded(Exception):
    """Raised inside a handler when its job was stopped or already ended: the work stops there."""


class Runner(Protocol):
    def start(self, vendor_type: str, job_id: int, payload: dict[str, Any]) -> str: ...
    def stop(self, execution_arn: str) -> None: ...
    def status(self, execution_arn: str) -> str: ...


class JobService:
    def __init__(self, store: JobStore, runner: Runner) -> None:
        self._store = store
        self._runner = runner

    # Starting and stopping.

    def submit(self, vendor_type: str, trigger: Trigger, parameters: dict[str, Any],
               schedule: Schedule | None = None, *, lock: str | None = None) -> Job:  # fmt: skip
        """Record a Pending job, take its lock and start its execution.

        The lock is the kind's (one active job of the kind, as Harbor runs one GC at a time) unless
        `lock` names a narrower one (retention: one run per policy, so two projects' runs proceed
        in parallel). Conflict (409) while another job holds it."""
        now = int(time.time())
        job = Job(
            job_id=tables.next_id("JOB"), vendor_type=vendor_type, trigger=trigger, status=JobStatus.PENDING,
            parameters=parameters, created_at=now, updated_at=now,
            schedule_type=schedule.schedule_type if schedule else None,
            schedule_cron=schedule.cron if schedule else None, lock=lock,
        )  # fmt: skip
        # The row first: a lock always names a job that exists, so a holder without a row is never
        # mistaken for a dead one. A refused job leaves no trace.
        self._store.create(job)
        try:
            self._acquire(lock or vendor_type, job.job_id, vendor_type)
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
        """Record the end (once) and release the job's lock; False if the job had already ended."""
        fields: dict[str, Any] = {"error": error[:2000] if error else None}
        if counts is not None:
            fields["counts"] = counts
        changed = self._store.transition(job_id, status, allowed=ACTIVE_STATUSES, **fields)
        job = self._store.get(job_id)
        if job is not None:
            self._store.unlock(job.lock or job.vendor_type, job_id)
            if changed:
                self._store.log(job_id, f"job ended: {status}" + (f" ({error})" if error else ""))
        return changed

    def log(self, job_id: int, line: str) -> None:
        self._store.log(job_id, line)

    def set_counts(self, job_id: int, counts: dict[str, int]) -> None:
        self._store.set_fields(job_id, counts=counts)

    # Reads.

    def get(self, job_id: int, vendor_type: str) -> Job:
        job = self._store.get(job_id)
        if job is None or job.vendor_type != vendor_type:
            raise NotFound(f"{vendor_type} job {job_id} not found")
        return self.reconcile(job)

    def history(self, vendor_type: str, limit: int) -> list[Job]:
        return [self.reconcile(job) for job in self._store.history(vendor_type, limit)]

    def log_text(self, job_id: int, vendor_type: str) -> str:
        self.get(job_id, vendor_type)
        return "".join(f"{line}\n" for line in self._store.log_lines(job_id))

    def reconcile(self, job: Job) -> Job:
        """An active job whose execution is gone is marked Error, never left Running forever."""
        if job.status not in ACTIVE_STATUSES or not job.execution_arn:
            return job
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

    # Schedules.

    def schedule(self, vendor_type: str) -> Schedule | None:
        return self._store.schedule(vendor_type)

    def set_schedule(self, vendor_type: str, schedule_type: str, cron: str, parameters: dict[str, Any]) -> Schedule:
        now = int(time.time())
        current = self._store.schedule(vendor_type)
        cron = FIXED_CRONS.get(schedule_type, cron if schedule_type in ("Custom", "Schedule") else "")
        updated = Schedule(
            vendor_type=vendor_type, schedule_type=schedule_type, cron=cron, parameters=parameters,
            created_at=current.created_at if current else now, updated_at=now,
            last_fired=current.last_fired if current else 0,
        )  # fmt: skip
        self._store.save_schedule(updated)
        return updated

    def run_due(self, vendor_type: str, now: float) -> Job | None:
        """Start the kind's scheduled run if a cron slot passed since the last one (at most one
        run per slot, even with several schedulers: the slot is claimed by a conditional write)."""
        schedule = self._store.schedule(vendor_type)
        if schedule is None or not schedule.cron or schedule.schedule_type in ("None", "Manual"):
            return None
        since = max(schedule.last_fired, schedule.updated_at)
        slot = Cron.parse(schedule.cron).next_after(datetime.fromtimestamp(since, UTC))
        if slot.timestamp() > now:
            return None
        if not self._store.claim_slot(vendor_type, schedule.last_fired, int(slot.timestamp())):
            return None
        try:
            return self.submit(vendor_type, Trigger.SCHEDULE, schedule.parameters, schedule)
        except Conflict:
            logger.warning("scheduled job skipped: one is already running", vendor_type=vendor_type)
            return None


def next_run(schedule: Schedule | None, now: float) -> int | None:
    """When the schedule fires next (epoch seconds), or None."""
    if schedule is None or not schedule.cron or schedule.schedule_type in ("None", "Manual"):
        return None
    return int(Cron.parse(schedule.cron).next_after(datetime.fromtimestamp(now, UTC)).timestamp())
