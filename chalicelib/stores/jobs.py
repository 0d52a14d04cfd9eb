"""Background job records (executions, logs, schedules, the one-running-job locks) and the Step Functions
runner that executes them; keys in `keys.py`."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, UpdateError

from chalicelib.core.jobs import FINAL_STATUSES, Job, JobStatus, Schedule
from chalicelib.stores import keys
from chalicelib.stores.tables import JobLockRow, JobLogRow, JobRow, ListEntry, ScheduleRow, batch_get_raw, delete_where

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

_log_seq = itertools.count()
# A log is for people: past this many lines a job logs a note and stops writing more rows.
MAX_LOG_LINES = 2000


class JobStore:
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

    def transition(self, job_id: int, status: JobStatus, *, allowed: tuple[JobStatus, ...], **fields: Any) -> bool:
        """Move a job to `status` if its current status is one of `allowed`; False if it was not."""
        now = int(time.time())
        actions: list[Any] = [JobRow.status.set(status), JobRow.updated_at.set(now)]
        if status == JobStatus.RUNNING:
            actions.append(JobRow.started_at.set(now))
        if status in FINAL_STATUSES:
            actions.append(JobRow.ended_at.set(now))
        for name, value in fields.items():
            attribute = getattr(JobRow, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        try:
            JobRow(keys.job_pk(job_id), keys.JOB_SK).update(
                actions=actions, condition=JobRow.pk.exists() & JobRow.status.is_in(*allowed)
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_fields(self, job_id: int, **fields: Any) -> None:
        """Set attributes of the row; `parameters` is given as a dict, as `create` takes it."""
        if "parameters" in fields:
            fields["parameters"] = json.dumps(fields["parameters"], sort_keys=True)
        actions = [getattr(JobRow, name).set(value) for name, value in fields.items()]
        JobRow(keys.job_pk(job_id), keys.JOB_SK).update(actions=[*actions, JobRow.updated_at.set(int(time.time()))])

    def request_stop(self, job_id: int) -> None:
        JobRow(keys.job_pk(job_id), keys.JOB_SK).update(actions=[JobRow.stop_requested.set(True)])

    # Logs.

    def log(self, job_id: int, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        JobLogRow(keys.job_pk(job_id), keys.job_log_sk(time.time_ns() // 1_000_000, next(_log_seq) % 1_000_000),
                  line=f"{stamp} {line}"[:4000]).save()  # fmt: skip

    def log_lines(self, job_id: int) -> list[str]:
        rows = JobLogRow.query(keys.job_pk(job_id), JobLogRow.sk.startswith(keys.LOG_PREFIX), limit=MAX_LOG_LINES + 1)
        return [row.line for row in rows]

    # Schedules.

    def schedule(self, vendor_type: str) -> Schedule | None:
        try:
            row = ScheduleRow.get(keys.schedule_pk(vendor_type), keys.SCHEDULE_SK)
        except ScheduleRow.DoesNotExist:
            return None
        return Schedule(
            vendor_type=vendor_type, schedule_type=row.schedule_type, cron=row.cron,
            parameters=json.loads(row.parameters), created_at=int(row.created_at),
            updated_at=int(row.updated_at), last_fired=int(row.last_fired),
        )  # fmt: skip

    def save_schedule(self, schedule: Schedule) -> None:
        ScheduleRow(
            keys.schedule_pk(schedule.vendor_type), keys.SCHEDULE_SK,
            schedule_type=schedule.schedule_type, cron=schedule.cron,
            parameters=json.dumps(schedule.parameters, sort_keys=True),
            created_at=schedule.created_at, updated_at=schedule.updated_at, last_fired=schedule.last_fired,
        ).save()  # fmt: skip

    def claim_slot(self, vendor_type: str, previous: int, slot: int) -> bool:
        """Record that the run for cron slot `slot` was started; False if another scheduler did."""
        try:
            ScheduleRow(keys.schedule_pk(vendor_type), keys.SCHEDULE_SK).update(
                actions=[ScheduleRow.last_fired.set(slot)],
                condition=ScheduleRow.pk.exists() & (ScheduleRow.last_fired == previous),
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


def _to_job(row: JobRow) -> Job:
    return Job(
        job_id=int(row.pk.removeprefix("JOB#")),
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
