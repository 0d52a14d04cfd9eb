"""Tag retention policies and the project link (keys in `keys.py`); executions, their tasks and the
policies' schedules are the executions service's (`stores/jobs.py`).

The policy JSON is opaque here; `services/retention.py` owns its meaning. A project has at most
one policy: the link row is created with `attribute_not_exists`, so two concurrent creates cannot
both succeed, and the policy row is written only after the link was won.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from chalicelib.errors import BadRequest, Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import RetentionLinkRow, RetentionPolicyRow, next_id


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    policy_id: int
    project: str
    project_id: int
    policy: dict[str, Any]
    created_at: int
    updated_at: int
    version: int


def _conditional(exc: PutError | DeleteError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


class RetentionStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

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
        now = int(self._clock())
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
                                 created_at=record.created_at, updated_at=int(self._clock()),
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
