"""A small JSON document kept in one item beside a project's row (`PROJECT#<name>` / a fixed sort
key): the project's immutable-tag rules, its webhook policies.

The store keeps the document as opaque JSON records and a `version`; the service owns their meaning.
A writer reads, changes and puts back with a condition on the version it read (services'
`change_versioned` retries on Conflict), so two concurrent changes can never both pass a limit or a
uniqueness rule. Deleting the project clears its partition and takes the document along.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import next_id


class ProjectDocumentStore:
    """`row` is the document's model (a `version` number and one JSON text attribute named
    `attribute`), `sort_key` its item's sort key; `what` names it in the Conflict message and
    `id_kind` is the id sequence its records take their ids from."""

    def __init__(self, row: Any, sort_key: str, attribute: str, what: str, id_kind: str) -> None:
        self._row = row
        self._sort_key = sort_key
        self._attribute = attribute
        self._what = what
        self._id_kind = id_kind

    def load(self, project: str) -> tuple[list[dict[str, Any]], int]:
        """The project's records and the version they were read at (0: never written)."""
        try:
            row = self._row.get(keys.project_pk(project), self._sort_key, consistent_read=True)
        except self._row.DoesNotExist:
            return [], 0
        records: list[dict[str, Any]] = json.loads(getattr(row, self._attribute) or "[]")
        return records, int(row.version)

    def save(self, project: str, records: list[dict[str, Any]], read_version: int) -> None:
        """Replace the records if nobody changed them since `read_version`; Conflict otherwise."""
        document = {self._attribute: json.dumps(records)}
        row = self._row(keys.project_pk(project), self._sort_key, version=read_version + 1, **document)
        condition = self._row.pk.does_not_exist() if read_version == 0 else self._row.version == read_version
        try:
            row.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"the {self._what} of project {project} changed concurrently") from None
            raise

    def new_id(self) -> int:
        return next_id(self._id_kind)
