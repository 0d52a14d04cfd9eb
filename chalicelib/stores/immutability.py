"""A project's immutable-tag rules: one item, `PROJECT#<name>` / `IMMUTABLE` (keys in `keys.py`).

The store keeps the rules as opaque JSON records and a `version`; the service owns their meaning.
Writers read, change and put back with a condition on the version they read, so two concurrent
rule changes can never both pass the 15-rule limit or the duplicate check.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import ImmutableRulesRow, next_id


class ImmutabilityStore:
    def load(self, project: str) -> tuple[list[dict[str, Any]], int]:
        """The project's rule records and the version they were read at (0: never written)."""
        try:
            row = ImmutableRulesRow.get(keys.project_pk(project), keys.IMMUTABLE_SK, consistent_read=True)
        except ImmutableRulesRow.DoesNotExist:
            return [], 0
        records: list[dict[str, Any]] = json.loads(row.rules or "[]")
        return records, int(row.version)

    def save(self, project: str, records: list[dict[str, Any]], read_version: int) -> None:
        """Replace the rules if nobody changed them since `read_version`; Conflict otherwise."""
        row = ImmutableRulesRow(
            keys.project_pk(project), keys.IMMUTABLE_SK, rules=json.dumps(records), version=read_version + 1
        )
        condition = (
            ImmutableRulesRow.pk.does_not_exist() if read_version == 0 else ImmutableRulesRow.version == read_version
        )
        try:
            row.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"the immutable rules of project {project} changed concurrently") from None
            raise

    def new_id(self) -> int:
        return next_id("immutable")
