"""Replication policies (keys in `keys.py`); executions, tasks and schedules are the executions
service's (`stores/jobs.py`). A policy and its name claim are written in one transaction, so two
policies never share a name and a failed write leaves neither."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core.replication import Policy
from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import ReplicationNameRow, ReplicationPolicyRow, connection, next_id


def _policy(row: ReplicationPolicyRow) -> Policy:
    policy_id = int(row.sk.removeprefix(keys.REPLICATION_POLICY_PREFIX))
    return Policy.from_dict(policy_id, json.loads(row.policy), created_at=int(row.created_at),
                            updated_at=int(row.updated_at), version=int(row.version))  # fmt: skip


class ReplicationStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def create(self, policy: Policy) -> Policy:
        """Store a new policy with a new id; Conflict (409) when its name is taken."""
        policy_id = next_id("replication")
        now = int(self._clock())
        row = ReplicationPolicyRow(keys.REPLICATION_PK, keys.replication_policy_sk(policy_id),
                                   policy=json.dumps(policy.to_dict()), created_at=now, updated_at=now,
                                   version=1)  # fmt: skip
        name = ReplicationNameRow(keys.REPLICATION_PK, keys.replication_name_sk(policy.name), policy_id=policy_id)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(name, condition=ReplicationNameRow.sk.does_not_exist())
                tx.save(row, condition=ReplicationPolicyRow.sk.does_not_exist())
        except TransactWriteError:
            raise Conflict(f"policy {policy.name!r} already exists") from None
        return _policy(row)

    def get(self, policy_id: int) -> Policy | None:
        try:
            row = ReplicationPolicyRow.get(keys.REPLICATION_PK, keys.replication_policy_sk(policy_id),
                                           consistent_read=True)  # fmt: skip
        except ReplicationPolicyRow.DoesNotExist:
            return None
        return _policy(row)

    def list(self) -> list[Policy]:
        rows = ReplicationPolicyRow.query(
            keys.REPLICATION_PK, ReplicationPolicyRow.sk.startswith(keys.REPLICATION_POLICY_PREFIX)
        )
        return [_policy(row) for row in rows]

    def update(self, current: Policy, updated: Policy) -> None:
        """Replace `current` (if nobody changed it since it was read); a new name is claimed and the
        old one released in the same transaction. Conflict when the name is taken or the policy moved."""
        row = ReplicationPolicyRow(keys.REPLICATION_PK, keys.replication_policy_sk(current.policy_id),
                                   policy=json.dumps(updated.to_dict()), created_at=current.created_at,
                                   updated_at=int(self._clock()), version=current.version + 1)  # fmt: skip
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(row, condition=ReplicationPolicyRow.version == current.version)
                if updated.name != current.name:
                    tx.delete(ReplicationNameRow(keys.REPLICATION_PK, keys.replication_name_sk(current.name)))
                    tx.save(ReplicationNameRow(keys.REPLICATION_PK, keys.replication_name_sk(updated.name),
                                               policy_id=current.policy_id),
                            condition=ReplicationNameRow.sk.does_not_exist())  # fmt: skip
        except TransactWriteError:
            raise Conflict(f"policy {updated.name!r} already exists, or the policy changed meanwhile") from None

    def delete(self, policy: Policy) -> None:
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(ReplicationPolicyRow(keys.REPLICATION_PK, keys.replication_policy_sk(policy.policy_id)),
                          condition=ReplicationPolicyRow.version == policy.version)  # fmt: skip
                tx.delete(ReplicationNameRow(keys.REPLICATION_PK, keys.replication_name_sk(policy.name)))
        except TransactWriteError:
            raise Conflict(f"replication policy {policy.policy_id} changed concurrently; retry") from None
