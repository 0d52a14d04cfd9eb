"""Tag retention policies, the project link and execution tasks (keys in `keys.py`).

The policy JSON is opaque here; `services/retention.py` owns its meaning. A project has at most
one policy: the link row is created with `attribute_not_exists`, so two concurrent creates cannot
both succeed, and the policy row is written only after the link was won.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import BatchWrite

from chalicelib.errors import BadRequest, Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    RetentionLinkRow,
    RetentionPolicyRow,
    RetentionScheduleRow,
    RetentionTaskRow,
    next_id,
)


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    policy_id: int
    project: str
    project_id: int
    policy: dict[str, Any]
    created_at: int
    updated_at: int
    version: int


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    policy_id: int
    cron: str
    updated_at: int
    last_fired: int


@dataclass(frozen=True, slots=True)
class TaskRecord:
    task_id: int
    execution_id: int
    repository: str
    status: str
    total: int
    retained: int
    started_at: int
    ended_at: int | None
    log: str
    deleted: tuple[str, ...] = ()  # a real run's deleted artifacts, as TAG_RETENTION names them
    announced: bool = False


# Task statuses (Harbor's job statuses); a task in an ended one is never run again.
PENDING, RUNNING, SUCCESS, ERROR, STOPPED = "Pending", "Running", "Success", "Error", "Stopped"
ENDED = (SUCCESS, ERROR, STOPPED)
_LOG_MAX = 280_000  # characters; with `deleted` (<= ~100 KB) the row stays under DynamoDB's 400 KB
# What a listing reads: everything but the log (up to 280 KB a task).
_SUMMARY = ["task_id", "repository", "status", "total", "retained", "started_at", "ended_at", "deleted",
            "announced"]  # fmt: skip


def _conditional(exc: PutError | DeleteError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


class RetentionStore:
    # Policies.

    def create(self, project: str, project_id: int, policy: dict[str, Any]) -> int:
        """A new policy for the project; BadRequest if it already has one (Harbor's answer)."""
        policy_id = next_id("retention")
        try:
            RetentionLinkRow(keys.project_pk(project), keys.RETENTION_LINK_SK, policy_id=policy_id).save(
                condition=RetentionLinkRow.pk.does_not_exist()
            )
        except PutError as exc:
            if _conditional(exc):
                raise BadRequest(f"project {project} already has a retention policy") from None
            raise
        now = int(time.time())
        RetentionPolicyRow(keys.retention_pk(policy_id), keys.RETENTION_POLICY_SK, project=project,
                           project_id=project_id, policy=json.dumps(policy), created_at=now,
                           updated_at=now).save()  # fmt: skip
        return policy_id

    def get(self, policy_id: int) -> PolicyRecord | None:
        try:
            row = RetentionPolicyRow.get(keys.retention_pk(policy_id), keys.RETENTION_POLICY_SK, consistent_read=True)
        except RetentionPolicyRow.DoesNotExist:
            return None
        return PolicyRecord(policy_id, row.project, int(row.project_id), json.loads(row.policy),
                            int(row.created_at), int(row.updated_at), int(row.version))  # fmt: skip

    def policy_of(self, project: str) -> int | None:
        try:
            return int(RetentionLinkRow.get(keys.project_pk(project), keys.RETENTION_LINK_SK).policy_id)
        except RetentionLinkRow.DoesNotExist:
            return None

    def update(self, record: PolicyRecord, policy: dict[str, Any]) -> None:
        """Replace the policy if nobody changed it since `record` was read; Conflict otherwise."""
        row = RetentionPolicyRow(keys.retention_pk(record.policy_id), keys.RETENTION_POLICY_SK,
                                 project=record.project, project_id=record.project_id, policy=json.dumps(policy),
                                 created_at=record.created_at, updated_at=int(time.time()),
                                 version=record.version + 1)  # fmt: skip
        try:
            row.save(condition=RetentionPolicyRow.version == record.version)
        except PutError as exc:
            if _conditional(exc):
                raise Conflict(f"retention policy {record.policy_id} changed concurrently; retry") from None
            raise

    def delete(self, record: PolicyRecord) -> None:
        """The policy row, then the link (a crash between leaves a link to nothing: `create`'s
        caller sees Conflict, and the service repairs a dangling link)."""
        try:
            RetentionPolicyRow(keys.retention_pk(record.policy_id), keys.RETENTION_POLICY_SK).delete(
                condition=RetentionPolicyRow.version == record.version
            )
        except DeleteError as exc:
            if _conditional(exc):
                raise Conflict(f"retention policy {record.policy_id} changed concurrently; retry") from None
            raise
        self.unlink(record.project, record.policy_id)

    def unlink(self, project: str, policy_id: int) -> None:
        try:
            RetentionLinkRow(keys.project_pk(project), keys.RETENTION_LINK_SK).delete(
                condition=RetentionLinkRow.policy_id == policy_id
            )
        except DeleteError as exc:
            if not _conditional(exc):
                raise

    # Schedules.

    def set_schedule(self, policy_id: int, cron: str) -> None:
        """Record the policy's cron (an empty one removes the schedule); slots already fired stay fired."""
        sk = keys.retention_schedule_sk(policy_id)
        if not cron:
            RetentionScheduleRow(keys.RETENTION_SCHEDULES_PK, sk).delete()
            return
        RetentionScheduleRow(keys.RETENTION_SCHEDULES_PK, sk).update(actions=[
            RetentionScheduleRow.policy_id.set(policy_id), RetentionScheduleRow.cron.set(cron),
            RetentionScheduleRow.updated_at.set(int(time.time())),
        ])  # fmt: skip

    def schedules(self) -> list[ScheduleRecord]:
        rows = RetentionScheduleRow.query(keys.RETENTION_SCHEDULES_PK, consistent_read=True)
        return [ScheduleRecord(int(r.policy_id), r.cron, int(r.updated_at), int(r.last_fired or 0)) for r in rows]

    def claim_slot(self, policy_id: int, last_fired: int, slot: int) -> bool:
        """Move `last_fired` from what was read to `slot`; False if another scheduler got there first."""
        row = RetentionScheduleRow(keys.RETENTION_SCHEDULES_PK, keys.retention_schedule_sk(policy_id))
        try:
            unchanged = RetentionScheduleRow.last_fired == last_fired
            if not last_fired:  # never fired: the attribute may not exist yet
                unchanged = unchanged | RetentionScheduleRow.last_fired.does_not_exist()
            row.update(actions=[RetentionScheduleRow.last_fired.set(slot)],
                       condition=RetentionScheduleRow.pk.exists() & unchanged)  # fmt: skip
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # Tasks.

    def create_tasks(self, execution_id: int, repositories: list[str]) -> int:
        """One Pending task per repository, with consecutive ids; returns the first id.

        Whatever tasks an earlier attempt of the same call left are deleted first: nothing runs a
        task before this call has returned (the state machine's Map starts after it), so they are
        all Pending, and a retried `begin` never leaves a repository with two tasks."""
        stale = RetentionTaskRow.query(keys.job_pk(execution_id),
                                       RetentionTaskRow.sk.startswith(keys.RETENTION_TASK_PREFIX),
                                       consistent_read=True, attributes_to_get=["pk", "sk"])  # fmt: skip
        with BatchWrite(RetentionTaskRow) as batch:
            for row in stale:
                batch.delete(row)
        if not repositories:
            return 0
        first = next_id("retention-task", len(repositories)) - len(repositories) + 1
        now = int(time.time())
        with BatchWrite(RetentionTaskRow) as batch:
            for n, repository in enumerate(repositories):
                batch.save(RetentionTaskRow(keys.job_pk(execution_id), keys.retention_task_sk(first + n),
                                            task_id=first + n, repository=repository, status=PENDING,
                                            started_at=now))  # fmt: skip
        return first

    def claim_task(self, execution_id: int, task_id: int) -> TaskRecord | None:
        """Pending -> Running; None if the task does not exist or has ended (a retried or
        re-driven Task never runs it again). A Running task is returned as it is: the attempt that
        claimed it died, and this one takes over."""
        row = RetentionTaskRow(keys.job_pk(execution_id), keys.retention_task_sk(task_id))
        try:
            now = int(time.time())
            actions: list[Action] = [RetentionTaskRow.status.set(RUNNING), RetentionTaskRow.started_at.set(now)]
            row.update(actions=actions, condition=RetentionTaskRow.status == PENDING)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        task = self.task(execution_id, task_id)
        return task if task is not None and task.status == RUNNING else None

    def end_task(self, task: TaskRecord, status: str, total: int, retained: int, log: str, *,
                 deleted: list[str] | None = None) -> bool:  # fmt: skip
        """Record a running task's end; False if it had already ended. A task the stop API marked
        Stopped while it ran still records what it did before it noticed."""
        actions: list[Action] = [RetentionTaskRow.status.set(status), RetentionTaskRow.total.set(total),
                   RetentionTaskRow.retained.set(retained), RetentionTaskRow.ended_at.set(int(time.time())),
                   RetentionTaskRow.log.set(log[:_LOG_MAX])]  # fmt: skip
        if deleted:
            actions.append(RetentionTaskRow.deleted.set(json.dumps(deleted)))
        row = RetentionTaskRow(keys.job_pk(task.execution_id), keys.retention_task_sk(task.task_id))
        try:
            allowed = (RUNNING, STOPPED) if status == STOPPED else (RUNNING,)
            row.update(actions=actions, condition=RetentionTaskRow.status.is_in(*allowed))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def stop_tasks(self, execution_id: int) -> None:
        """Every task that has not ended becomes Stopped (a stopped execution's leftovers)."""
        for task in self.tasks(execution_id):
            if task.status in ENDED:
                continue
            row = RetentionTaskRow(keys.job_pk(execution_id), keys.retention_task_sk(task.task_id))
            try:
                row.update(actions=[RetentionTaskRow.status.set(STOPPED),
                                    RetentionTaskRow.ended_at.set(int(time.time()))],
                           condition=RetentionTaskRow.status.is_in(PENDING, RUNNING))  # fmt: skip
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise

    def mark_announced(self, execution_id: int, task_id: int) -> bool:
        """Claim the task's one TAG_RETENTION event; False if it was already claimed."""
        row = RetentionTaskRow(keys.job_pk(execution_id), keys.retention_task_sk(task_id))
        try:
            row.update(
                actions=[RetentionTaskRow.announced.set(int(time.time()))],
                condition=RetentionTaskRow.pk.exists() & RetentionTaskRow.announced.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def tasks(self, execution_id: int) -> list[TaskRecord]:
        """The execution's tasks without their logs (one Query)."""
        rows = RetentionTaskRow.query(keys.job_pk(execution_id),
                                      RetentionTaskRow.sk.startswith(keys.RETENTION_TASK_PREFIX),
                                      consistent_read=True, attributes_to_get=_SUMMARY)  # fmt: skip
        return [_task(execution_id, row) for row in rows]

    def task(self, execution_id: int, task_id: int) -> TaskRecord | None:
        try:
            row = RetentionTaskRow.get(keys.job_pk(execution_id), keys.retention_task_sk(task_id), consistent_read=True)
        except RetentionTaskRow.DoesNotExist:
            return None
        return _task(execution_id, row)


def _task(execution_id: int, row: RetentionTaskRow) -> TaskRecord:
    ended = int(row.ended_at) if row.ended_at is not None else None
    deleted = tuple(json.loads(row.deleted)) if row.deleted else ()
    return TaskRecord(int(row.task_id), execution_id, row.repository, row.status, int(row.total or 0),
                      int(row.retained or 0), int(row.started_at), ended, row.log or "", deleted,
                      row.announced is not None)  # fmt: skip
