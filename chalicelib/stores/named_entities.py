"""The shape users, robots and projects share: an entity keyed by its name, with Harbor's integer id.

The row is `<KIND>#<name>` / `ENTITY` (authentication and authorisation look entities up by name,
one GetItem); its integer id comes from the `COUNTER#<kind>` sequence and resolves through the id
row `<KIND>ID#<id>`, written in the same transaction as the entity, so a taken name is a Conflict
and never leaves an orphan id. Listing the names is one Query on the kind's `gsi1` partition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pynamodb.transactions import TransactWrite

from chalicelib.core.clock import Clock, system_clock
from chalicelib.stores import keys
from chalicelib.stores.tables import IdRow, ListEntry, batch_get_raw, connection, create_with_id, name_by_id, next_id

E = TypeVar("E")


class NamedEntityStore(Generic[E]):
    """`row` is the entity's model (with `<kind>_id`, `created_at`, `updated_at` and the list index
    attributes), `kind` its key word (`USER`), `pk_of` the key of a name, `list_pk` the `gsi1`
    partition of the names, `to_entity` the typed record a row becomes, `clock` the time rows are
    stamped with."""

    def __init__(
        self,
        row: Any,
        kind: str,
        pk_of: Callable[[str], str],
        list_pk: str,
        to_entity: Callable[[Any], E],
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._row = row
        self._kind = kind
        self._pk_of = pk_of
        self._list_pk = list_pk
        self._to_entity = to_entity

    def _insert(self, name: str, **attributes: Any) -> E:
        """Create the entity with a new id and its id row; Conflict if the name is taken."""
        now = int(self._clock())
        noun = self._kind.lower()
        row = self._row(
            self._pk_of(name), keys.ENTITY_SK, **{f"{noun}_id": next_id(noun)}, created_at=now, updated_at=now,
            gsi1pk=self._list_pk, gsi1sk=name, **attributes,
        )  # fmt: skip
        create_with_id(row, self._kind, name, f"{noun} {name!r} already exists")
        return self._to_entity(row)

    def get(self, name: str) -> E | None:
        try:
            return self._to_entity(self._row.get(self._pk_of(name), keys.ENTITY_SK))
        except self._row.DoesNotExist:
            return None

    def name_of(self, entity_id: int) -> str | None:
        return name_by_id(self._kind, entity_id)

    def get_by_id(self, entity_id: int) -> E | None:
        name = self.name_of(entity_id)
        return self.get(name) if name else None

    def names(self) -> list[str]:
        """Every name, sorted (one Query on the list index)."""
        return [row.gsi1sk for row in ListEntry.listing.query(self._list_pk)]

    def get_many(self, names: list[str]) -> list[E]:
        """The entities that exist, in the order of `names` (one BatchGetItem per 100)."""
        items = batch_get_raw([(self._pk_of(n), keys.ENTITY_SK) for n in names])
        found = {item["pk"]["S"]: self._to_entity(self._row.from_raw_data(item)) for item in items}
        return [found[pk] for pk in map(self._pk_of, names) if pk in found]

    def _delete(
        self, name: str, entity_id: int, *others: Any, also: Callable[[TransactWrite], None] | None = None
    ) -> None:
        """The entity, its id row and `others` (rows kept under it), in one transaction, with what
        `also` adds to it (a counter kept elsewhere)."""
        with TransactWrite(connection=connection()) as tx:
            tx.delete(self._row(self._pk_of(name), keys.ENTITY_SK))
            tx.delete(IdRow(keys.id_pk(self._kind, entity_id), keys.ENTITY_SK))
            for row in others:
                tx.delete(row)
            if also is not None:
                also(tx)
