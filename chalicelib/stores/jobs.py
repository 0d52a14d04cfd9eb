"""Background job records (executions, their tasks, logs, schedules, the one-running-job locks) and
the Step Functions runner that executes them; keys in `keys.py`.

Every status write is conditional on the status it moves from (`core/jobs.py` holds the graph); a
task's move and its execution's `metrics` (tasks by status) change in one transaction, so the
counts stay exact however many tasks end at once."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.models import BatchWrite
from pynamodb.transactions import TransactWrite

from chalicelib.core.jobs import APPEND_MAX, FINAL_STATUSES, Job, JobStatus, Schedule, Task
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    JobLockRow,
    JobLogRow,
    JobRow,
    ListEntry,
    ScheduleRow,
    TaskRow,
    batch_get_raw,
    condition_failed,
    connection,
    delete_where,
    next_id,
)

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

_log_seq = itertools.count()
# A log is for people: past this many lines a job logs a note and stops writing more rows.
MAX_LOG_LINES = 2000
# A task's log is on its row: one write appends at most this many characters, so the row (with its
# `result`, at most ~100 KB) stays under DynamoDB's 400 KB.
MAX_TASK_LOG_CHARS = 280_000
_LINE_MAX = 4000
# Attributes a task listing reads (its log stays behind: read one task for that).
_TASK_SUMMARY = ["pk", "sk", "task_id", "subject", "status", "parameters", "counts", "run_count", "error",
                 "created_at", "updated_at", "started_at", "ended_at", "result", "reported"]  # fmt: skip


class JobStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def new_id(self) -> int:
        return next_id("JOB")

    # Executions.

    def create(self, job: Job, list_key: str | None = None) -> None:
        """`list_key` lists the job under another `gsi1` partition than its vendor type's (webhook
        executions are listed per policy, their tasks per execution)."""
        JobRow(
            keys.job_pk(job.job_id), keys.JOB_SK,
            vendor_type=job.vendor_type, trigger=job.trigger, status=job.status,
            parameters=json.dumps(job.parameters, sort_keys=True),
            schedule_type=job.schedule_type, schedule_cron=job.schedule_cron,
            counts=dict(job.counts), created_at=job.created_at, updated_at=job.created_at, lock=job.lock,
            metrics=dict(job.metrics), started_at=job.started_at,
            gsi1pk=keys.jobs_list_pk(list_key or job.vendor_type), gsi1sk=keys.job_list_sk(job.job_id),
        ).save(condition=JobRow.pk.does_not_exist())  # fmt: skip

    def discard(self, job_id: int) -> None:
        """Remove a job that never started (refused before it ran)."""
        delete_where(JobRow(keys.job_pk(job_id), keys.JOB_SK), JobRow.status == JobStatus.PENDING)

    def get(self, job_id: int) -> Job | None:
        try:
            return _to_job(JobRow.get(keys.job_pk(job_id), keys.JOB_SK, consistent_read=True))
        except JobRow.DoesNotExist:
            return None

    def history(self, vendor_type: str, limit: int) -> list[Job]:
        """The newest `limit` executions of a kind: one Query on its list partition, one (strongly
        consistent) BatchGetItem."""
        rows = ListEntry.listing.query(keys.jobs_list_pk(vendor_type), scan_index_forward=False, limit=limit)
        ids = [int(r.gsi1sk) for r in itertools.islice(rows, limit)]
        items = batch_get_raw([(keys.job_pk(i), keys.JOB_SK) for i in ids])
        jobs = {int(j.job_id): j for j in (_to_job(JobRow.from_raw_data(i)) for i in items)}
        return [jobs[i] for i in ids if i in jobs]

    def transition(self, job_id: int, status: JobStatus, *, allowed: tuple[JobStatus, ...],
                   **fields: Any) -> Job | None:  # fmt: skip
        """Move a job to `status` if its current status is one of `allowed`: the job as the write
        left it, or None if it was not (or does not exist)."""
        now = self._now()
        actions: list[Any] = [JobRow.status.set(status), JobRow.updated_at.set(now)]
        if status == JobStatus.RUNNING:
            actions.append(JobRow.started_at.set(now))
        if status in FINAL_STATUSES:
            actions.append(JobRow.ended_at.set(now))
        for name, value in fields.items():
            attribute = getattr(JobRow, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        row = JobRow(keys.job_pk(job_id), keys.JOB_SK)
        try:
            row.update(actions=actions, condition=JobRow.pk.exists() & JobRow.status.is_in(*allowed))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return _to_job(row)  # the update answered with the whole new item

    def set_fields(self, job_id: int, **fields: Any) -> None:
        """Set attributes of the row; `parameters` is given as a dict, as `create` takes it."""
        if "parameters" in fields:
            fields["parameters"] = json.dumps(fields["parameters"], sort_keys=True)
        actions = [getattr(JobRow, name).set(value) for name, value in fields.items()]
        JobRow(keys.job_pk(job_id), keys.JOB_SK).update(actions=[*actions, JobRow.updated_at.set(self._now())])

    def request_stop(self, job_id: int) -> None:
        JobRow(keys.job_pk(job_id), keys.JOB_SK).update(actions=[JobRow.stop_requested.set(True)])

    # Logs.

    def log(self, job_id: int, line: str) -> None:
        now = self._clock()
        JobLogRow(keys.job_pk(job_id), keys.job_log_sk(int(now * 1000), next(_log_seq) % 1_000_000),
                  line=f"{stamp(now)} {line}"[:_LINE_MAX]).save()  # fmt: skip

    def log_lines(self, job_id: int) -> list[str]:
        rows = JobLogRow.query(keys.job_pk(job_id), JobLogRow.sk.startswith(keys.LOG_PREFIX), limit=MAX_LOG_LINES + 1)
        return [row.line for row in rows]

    # Schedules: a kind's own (policy 0, as GC's) or one per policy (retention), one partition per kind.

    def schedule(self, vendor_type: str, policy_id: int = 0) -> Schedule | None:
        try:
            row = ScheduleRow.get(keys.schedule_pk(vendor_type), keys.schedule_sk(policy_id), consistent_read=True)
        except ScheduleRow.DoesNotExist:
            return None
        return _to_schedule(vendor_type, policy_id, row)

    def schedules(self, vendor_type: str) -> list[Schedule]:
        """Every policy schedule of a kind (one Query)."""
        rows = ScheduleRow.query(keys.schedule_pk(vendor_type), ScheduleRow.sk.startswith(keys.schedule_sk(0) + "#"),
                                 consistent_read=True)  # fmt: skip
        return [_to_schedule(vendor_type, int(row.sk.rpartition("#")[2]), row) for row in rows]

    def save_schedule(self, schedule: Schedule) -> None:
        """Write the schedule; the slot last fired stays what the row holds (a scheduler may have
        claimed one since the schedule was read)."""
        ScheduleRow(keys.schedule_pk(schedule.vendor_type), keys.schedule_sk(schedule.policy_id)).update(actions=[
            ScheduleRow.schedule_type.set(schedule.schedule_type), ScheduleRow.cron.set(schedule.cron),
            ScheduleRow.parameters.set(json.dumps(schedule.parameters, sort_keys=True)),
            ScheduleRow.created_at.set(ScheduleRow.created_at | schedule.created_at),
            ScheduleRow.updated_at.set(schedule.updated_at),
            ScheduleRow.last_fired.set(ScheduleRow.last_fired | schedule.last_fired),
        ])  # fmt: skip

    def delete_schedule(self, vendor_type: str, policy_id: int = 0) -> None:
        ScheduleRow(keys.schedule_pk(vendor_type), keys.schedule_sk(policy_id)).delete()

    def claim_slot(self, vendor_type: str, previous: int, slot: int, policy_id: int = 0) -> bool:
        """Record that the run for cron slot `slot` was started; False if another scheduler did."""
        try:
            ScheduleRow(keys.schedule_pk(vendor_type), keys.schedule_sk(policy_id)).update(
                actions=[ScheduleRow.last_fired.set(slot)],
                condition=ScheduleRow.pk.exists() & (ScheduleRow.last_fired == previous),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # Tasks.

    def create_tasks(self, execution_id: int, specs: list[tuple[str, dict[str, Any]]], *,
                     fresh: bool = False) -> list[Task]:  # fmt: skip
        """One Pending task per (subject, parameters), with consecutive ids, replacing any tasks an
        earlier attempt of the same call left (nothing runs a task before this call returns, so
        they are all Pending) and resetting the execution's metrics to match. `fresh`: the
        execution was created with these tasks counted in its metrics, and has no others."""
        if not fresh:
            stale = TaskRow.query(keys.job_pk(execution_id), TaskRow.sk.startswith(keys.TASK_PREFIX),
                                  consistent_read=True, attributes_to_get=["pk", "sk"])  # fmt: skip
            with BatchWrite(TaskRow) as batch:
                for row in stale:
                    batch.delete(row)
        now = self._now()
        # Ids from the executions' sequence: a task id never names an execution too.
        first = next_id("JOB", len(specs)) - len(specs) + 1 if specs else 0
        tasks = [Task(first + n, execution_id, JobStatus.PENDING, subject, parameters, now, now)
                 for n, (subject, parameters) in enumerate(specs)]  # fmt: skip
        with BatchWrite(TaskRow) as batch:
            for task in tasks:
                batch.save(TaskRow(keys.job_pk(execution_id), keys.task_sk(task.task_id), task_id=task.task_id,
                                   subject=task.subject, status=task.status,
                                   parameters=json.dumps(task.parameters, sort_keys=True),
                                   counts={}, created_at=now, updated_at=now))  # fmt: skip
        if not fresh:
            metrics = {str(JobStatus.PENDING): len(tasks)} if tasks else {}
            JobRow(keys.job_pk(execution_id), keys.JOB_SK).update(actions=[JobRow.metrics.set(metrics)])
        return tasks

    def append_tasks(self, execution_id: int, specs: list[tuple[str, dict[str, Any]]]) -> list[Task]:
        """Add Pending tasks to a running execution (a job that finds its work as it goes, as scan
        all): the task rows and the execution's Pending count in one transaction, so the metrics
        never miss a task. At most `APPEND_MAX` at a time; the execution's `metrics` must exist
        (`JobService.append_tasks` makes sure)."""
        if not specs:
            return []
        if len(specs) > APPEND_MAX:
            raise ValueError(f"at most {APPEND_MAX} tasks are appended at a time")
        now = self._now()
        first = next_id("JOB", len(specs)) - len(specs) + 1
        tasks = [Task(first + n, execution_id, JobStatus.PENDING, subject, parameters, now, now)
                 for n, (subject, parameters) in enumerate(specs)]  # fmt: skip
        pk = keys.job_pk(execution_id)
        pending = JobRow.metrics[str(JobStatus.PENDING)]
        with TransactWrite(connection=connection()) as tx:
            for task in tasks:
                tx.save(TaskRow(pk, keys.task_sk(task.task_id), task_id=task.task_id, subject=task.subject,
                                status=task.status, parameters=json.dumps(task.parameters, sort_keys=True),
                                counts={}, created_at=now, updated_at=now))  # fmt: skip
            tx.update(JobRow(pk, keys.JOB_SK), actions=[pending.set((pending | 0) + len(tasks))],
                      condition=JobRow.metrics.exists())  # fmt: skip
        return tasks

    def task(self, execution_id: int, task_id: int) -> Task | None:
        try:
            row = TaskRow.get(keys.job_pk(execution_id), keys.task_sk(task_id), consistent_read=True)
        except TaskRow.DoesNotExist:
            return None
        return _to_task(row)

    def tasks(self, execution_id: int) -> list[Task]:
        """The execution's tasks in id order, without their logs (one Query)."""
        rows = TaskRow.query(keys.job_pk(execution_id), TaskRow.sk.startswith(keys.TASK_PREFIX),
                             consistent_read=True, attributes_to_get=_TASK_SUMMARY)  # fmt: skip
        return [_to_task(row) for row in rows]

    def move_task(self, task: Task, status: JobStatus, *, counts: dict[str, int] | None = None,
                  run_count: int | None = None, error: str | None = None, log: list[str] | None = None,
                  result: dict[str, Any] | None = None) -> bool:  # fmt: skip
        """Move `task` from the status it was read at to `status`, and the execution's metrics with
        it, in one transaction; False if the task is no longer at that status (the caller reads it
        again). `task.status == status` (a stopped task reporting what it did) moves no metric."""
        now = self._now()
        actions: list[Any] = [TaskRow.status.set(status), TaskRow.updated_at.set(now)]
        if status == JobStatus.RUNNING:
            actions.append(TaskRow.started_at.set(now))
        if status in FINAL_STATUSES and task.status != status:
            actions.append(TaskRow.ended_at.set(now))
        actions += _outcome(counts, run_count, error, log, result)
        pk = keys.job_pk(task.execution_id)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(TaskRow(pk, keys.task_sk(task.task_id)), actions=actions,
                          condition=TaskRow.status == task.status)  # fmt: skip
                if task.status != status:
                    old, new = JobRow.metrics[str(task.status)], JobRow.metrics[str(status)]
                    tx.update(JobRow(pk, keys.JOB_SK), actions=[old.set((old | 0) - 1), new.set((new | 0) + 1)],
                              condition=JobRow.metrics.exists())  # fmt: skip
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def update_task(self, task: Task, *, counts: dict[str, int] | None = None, run_count: int | None = None,
                    log: list[str] | None = None) -> bool:  # fmt: skip
        """Record progress on a task still at the status it was read at; False if it moved."""
        actions = [TaskRow.updated_at.set(self._now()), *_outcome(counts, run_count, None, log, None)]
        try:
            TaskRow(keys.job_pk(task.execution_id), keys.task_sk(task.task_id)).update(
                actions=actions, condition=TaskRow.status == task.status
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_report(self, execution_id: int, task_id: int) -> bool:
        """Claim the task's once-per-task side effect; False if it was already claimed."""
        try:
            TaskRow(keys.job_pk(execution_id), keys.task_sk(task_id)).update(
                actions=[TaskRow.reported.set(self._now())],
                condition=TaskRow.pk.exists() & TaskRow.reported.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # The one-running-job lock: per kind (named by the vendor type) or narrower (`RETENTION#<policy id>`).

    def lock(self, name: str, job_id: int, holder: int | None) -> bool:
        """Take the lock `name` for `job_id`: when free, or from `holder` (a job known to have ended)."""
        condition = JobLockRow.pk.does_not_exist()
        if holder is not None:
            condition = condition | (JobLockRow.job_id == holder)
        try:
            JobLockRow(keys.job_lock_pk(name), keys.LOCK_SK, job_id=job_id).save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def lock_holder(self, name: str) -> int | None:
        try:
            return int(JobLockRow.get(keys.job_lock_pk(name), keys.LOCK_SK, consistent_read=True).job_id)
        except JobLockRow.DoesNotExist:
            return None

    def unlock(self, name: str, job_id: int) -> None:
        delete_where(JobLockRow(keys.job_lock_pk(name), keys.LOCK_SK), JobLockRow.job_id == job_id)


def stamp(now: float) -> str:
    """A log line's time: UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _outcome(counts: dict[str, int] | None, run_count: int | None, error: str | None, log: list[str] | None,
             result: dict[str, Any] | None) -> list[Any]:  # fmt: skip
    actions: list[Any] = []
    if counts is not None:
        actions.append(TaskRow.counts.set(counts))
    if run_count is not None:
        actions.append(TaskRow.run_count.set(run_count))
    if error is not None:
        actions.append(TaskRow.error.set(error[:2000]))
    if log:
        lines, room = [], MAX_TASK_LOG_CHARS
        for line in log:
            room -= len(line[:_LINE_MAX]) + 1
            if room < 0:
                lines.append("(log truncated)")
                break
            lines.append(line[:_LINE_MAX])
        actions.append(TaskRow.log.set((TaskRow.log | []).append(lines)))
    if result is not None:
        actions.append(TaskRow.result.set(json.dumps(result, sort_keys=True)))
    return actions


def _to_task(row: TaskRow) -> Task:
    return Task(
        task_id=int(row.task_id), execution_id=keys.job_id_of(row.pk), status=JobStatus(row.status),
        subject=row.subject, parameters=json.loads(row.parameters or "{}"),
        created_at=int(row.created_at), updated_at=int(row.updated_at),
        counts={str(k): int(v) for k, v in (row.counts.as_dict() if row.counts else {}).items()},
        run_count=int(row.run_count or 0), error=row.error,
        started_at=int(row.started_at) if row.started_at is not None else None,
        ended_at=int(row.ended_at) if row.ended_at is not None else None,
        log=tuple(str(line) for line in row.log or ()), result=json.loads(row.result) if row.result else {},
        reported=row.reported is not None,
    )  # fmt: skip


def _to_schedule(vendor_type: str, policy_id: int, row: ScheduleRow) -> Schedule:
    return Schedule(
        vendor_type=vendor_type, schedule_type=row.schedule_type, cron=row.cron,
        parameters=json.loads(row.parameters or "{}"), created_at=int(row.created_at),
        updated_at=int(row.updated_at), last_fired=int(row.last_fired or 0), policy_id=policy_id,
    )  # fmt: skip


def _to_job(row: JobRow) -> Job:
    return Job(
        job_id=keys.job_id_of(row.pk),
        vendor_type=row.vendor_type,
        trigger=row.trigger,
        status=JobStatus(row.status),
        parameters=json.loads(row.parameters or "{}"),
        schedule_type=row.schedule_type,
        schedule_cron=row.schedule_cron,
        counts={str(k): int(v) for k, v in (row.counts.as_dict() if row.counts else {}).items()},
        execution_arn=row.execution_arn,
        stop_requested=bool(row.stop_requested),
        error=row.error,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
        started_at=int(row.started_at) if row.started_at is not None else None,
        ended_at=int(row.ended_at) if row.ended_at is not None else None,
        lock=row.lock,
        metrics={str(k): int(v) for k, v in (row.metrics.as_dict() if row.metrics else {}).items()},
    )


@dataclass
class StepFunctionsRunner:
    """Starts, stops and inspects the state machine executions that run jobs (one machine per kind).

    The client is built on first use: most API requests never touch a job."""

    client_factory: Callable[[], SFNClient]
    machines: dict[str, str] = field(default_factory=dict)  # vendor type -> state machine ARN
    _client: SFNClient | None = None

    @property
    def client(self) -> SFNClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def start(self, vendor_type: str, job_id: int, payload: dict[str, Any]) -> str:
        arn = self.machines.get(vendor_type)
        if not arn:
            raise RuntimeError(f"no state machine is configured for {vendor_type} jobs")
        # Execution names must be unique per machine for 90 days; a rebuilt table restarts the ids.
        name = f"job-{job_id}-{uuid.uuid4().hex[:8]}"
        started = self.client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
        return str(started["executionArn"])

    def stop(self, execution_arn: str) -> None:
        try:
            self.client.stop_execution(executionArn=execution_arn, cause="stopped through the API")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise

    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED; MISSING when the engine does not know it
        (locally: the process that ran it restarted)."""
        try:
            status: str = self.client.describe_execution(executionArn=execution_arn)["status"]
            return status
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return "MISSING"
            raise


def is_final(status: JobStatus) -> bool:
    return status in FINAL_STATUSES
