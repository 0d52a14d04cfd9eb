"""Audit log rows (keys in `keys.py`): each entry under its project's partition and the global one.

Lists never Scan: a list is a Query on one partition, newest first, with the time window as a sort
key condition and the other filters as a FilterExpression, so DynamoDB returns only what matches;
the total (`X-Total-Count`) is a `Select=COUNT` Query with the same conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynamodb.models import BatchWrite

from chalicelib.core.audit import AuditEntry, AuditFilter
from chalicelib.stores import keys
from chalicelib.stores.tables import AuditRow, next_id

_ATTRIBUTES = {
    "operation": AuditRow.operation,
    "resource": AuditRow.resource,
    "resource_type": AuditRow.resource_type,
    "username": AuditRow.username,
}


class AuditStore:
    def reserve_ids(self, count: int) -> int:
        """Reserve `count` consecutive integer ids with one UpdateItem; returns the first."""
        return next_id("audit", count) - count + 1

    def write(self, entries: Sequence[AuditEntry], expires_at: Sequence[int]) -> None:
        """BatchWriteItem, 25 rows a call (PynamoDB retries unprocessed items)."""
        with BatchWrite(AuditRow) as batch:
            for entry, expiry in zip(entries, expires_at, strict=True):
                partitions = [None] if entry.project is None else [None, entry.project]
                for partition in partitions:
                    batch.save(_row(entry, partition, expiry))

    def count(self, partition: str | None, flt: AuditFilter) -> int:
        return int(AuditRow.count(keys.audit_pk(partition), _time_condition(flt), filter_condition=_filter(flt)))

    def newest(self, partition: str | None, flt: AuditFilter, limit: int, *, newest_first: bool) -> list[AuditEntry]:
        """Up to `limit` matching entries in time order (newest first unless told otherwise)."""
        rows = AuditRow.query(
            keys.audit_pk(partition),
            _time_condition(flt),
            filter_condition=_filter(flt),
            scan_index_forward=not newest_first,
            limit=limit,
        )
        return [_entry(row) for row in rows]


def _row(entry: AuditEntry, partition: str | None, expires_at: int) -> AuditRow:
    return AuditRow(
        keys.audit_pk(partition), keys.audit_sk(entry.op_time_ms, entry.log_id), log_id=entry.log_id,
        username=entry.username, resource=entry.resource, resource_type=entry.resource_type,
        operation=entry.operation, op_time=entry.op_time_ms, project=entry.project, description=entry.description,
        expires_at=expires_at,
    )  # fmt: skip


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        log_id=int(row.log_id), username=row.username, resource=row.resource, resource_type=row.resource_type,
        operation=row.operation, op_time_ms=int(row.op_time), project=row.project, description=row.description,
    )  # fmt: skip


def _time_condition(flt: AuditFilter) -> Any:
    low = f"{flt.since_ms:013d}" if flt.since_ms is not None else None
    high = f"{flt.until_ms:013d}#~" if flt.until_ms is not None else None  # '~' sorts after every id
    if low is not None and high is not None:
        return AuditRow.sk.between(low, high)
    if low is not None:
        return AuditRow.sk >= low
    if high is not None:
        return AuditRow.sk <= high
    return None


def _filter(flt: AuditFilter) -> Any:
    condition: Any = None
    for name, value in flt.exact.items():
        condition = _and(condition, _ATTRIBUTES[name] == value)
    for name, value in flt.fuzzy.items():
        condition = _and(condition, _ATTRIBUTES[name].contains(value))
    for name, values in flt.any_of.items():
        condition = _and(condition, _ATTRIBUTES[name].is_in(*values))
    return condition


def _and(left: Any, right: Any) -> Any:
    return right if left is None else left & right
