"""Remote registry records; keys in `keys.py`.

Every write that must stay consistent is one transaction with conditions:
- create: the registry row and its name row (the name must be free);
- update: the row, on condition that its `version` is the one read (a concurrent update is a
  Conflict, never a lost write); a rename also moves the name row (the new name must be free);
- delete: the row and its name row;
- a status change (the health check) touches only `status` and `updated_at`, on condition that
  the row still exists, so a check racing a delete cannot bring the row back.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.registries import Credential, Registry
from chalicelib.errors import Conflict, NotFound
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    RegistryNameRow,
    RegistryRow,
    batch_get_raw,
    cancellation_codes,
    condition_failed,
    connection,
    next_id,
)


class RegistryStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def create(self, registry: Registry) -> Registry:
        """Store `registry` under a new id (its `id` is ignored); Conflict if the name is taken."""
        now = int(self._clock())
        registry_id = next_id("registry")
        row = _row(registry, registry_id, now, now, 0)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(row, condition=RegistryRow.pk.does_not_exist())
                tx.save(_name_row(registry.name, registry_id), condition=RegistryNameRow.pk.does_not_exist())
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise Conflict(f"registry {registry.name!r} already exists") from None
            raise
        return _to_registry(row)

    def get(self, registry_id: int) -> Registry | None:
        try:
            return _to_registry(RegistryRow.get(keys.registry_pk(registry_id), keys.ENTITY_SK, consistent_read=True))
        except RegistryRow.DoesNotExist:
            return None

    def id_of(self, name: str) -> int | None:
        try:
            row = RegistryNameRow.get(keys.REGISTRIES_PK, keys.registry_name_sk(name), consistent_read=True)
        except RegistryNameRow.DoesNotExist:
            return None
        return int(row.registry_id)

    def get_by_name(self, name: str) -> Registry | None:
        registry_id = self.id_of(name)
        return self.get(registry_id) if registry_id is not None else None

    def list(self) -> list[Registry]:
        """Every registry, by name: one Query for the ids, one BatchGetItem per 100 rows."""
        names = RegistryNameRow.query(keys.REGISTRIES_PK, RegistryNameRow.sk.startswith(keys.REGISTRY_NAME_PREFIX))
        ids = [int(row.registry_id) for row in names]
        items = batch_get_raw([(keys.registry_pk(i), keys.ENTITY_SK) for i in ids])
        found = {r.id: r for r in (_to_registry(RegistryRow.from_raw_data(item)) for item in items)}
        return [found[i] for i in ids if i in found]

    def update(self, current: Registry, new: Registry) -> Registry:
        """Replace `current` (as read) with `new`; Conflict if the new name is taken, NotFound if the
        registry changed or went meanwhile."""
        now = int(self._clock())
        row = _row(new, current.id, current.creation_time, now, 0)
        actions: list[Any] = [
            RegistryRow.name.set(row.name), RegistryRow.type.set(row.type), RegistryRow.url.set(row.url),
            RegistryRow.access_key.set(row.access_key), RegistryRow.secret_ref.set(row.secret_ref),
            RegistryRow.insecure.set(row.insecure), RegistryRow.description.set(row.description),
            RegistryRow.status.set(row.status), RegistryRow.settings.set(row.settings),
            RegistryRow.ca_certificate.set(row.ca_certificate),
            RegistryRow.updated_at.set(now), RegistryRow.version.add(1),
            RegistryRow.credential_type.set(row.credential_type)
            if row.credential_type is not None else RegistryRow.credential_type.remove(),
        ]  # fmt: skip
        version = current.version
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(RegistryRow(keys.registry_pk(current.id), keys.ENTITY_SK), actions=actions,
                          condition=RegistryRow.pk.exists() & (RegistryRow.version == version)
                          & (RegistryRow.name == current.name))  # fmt: skip
                if new.name != current.name:
                    tx.delete(_name_row(current.name, current.id))
                    tx.save(_name_row(new.name, current.id), condition=RegistryNameRow.pk.does_not_exist())
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound(f"registry {current.id} was changed or deleted meanwhile; read it again") from None
            if "ConditionalCheckFailed" in reasons:
                raise Conflict(f"registry {new.name!r} already exists") from None
            raise
        updated = self.get(current.id)
        if updated is None:
            raise NotFound(f"registry {current.id} not found")
        return updated

    def set_status(self, registry_id: int, status: str) -> bool:
        """Record a health check's result; False when the registry is gone."""
        try:
            RegistryRow(keys.registry_pk(registry_id), keys.ENTITY_SK).update(
                actions=[RegistryRow.status.set(status), RegistryRow.updated_at.set(int(self._clock()))],
                condition=RegistryRow.pk.exists(),
            )
        except UpdateError as exc:
            if "ConditionalCheckFailed" in str(exc):
                return False
            raise
        return True

    def delete(self, registry: Registry) -> bool:
        """Delete the registry and its name; False if it was already gone. Refused (Conflict)
        while a proxy-cache project counts itself on the row: the condition is part of the delete,
        so a project created meanwhile either counted first (and the delete fails) or finds the
        registry gone (and its create fails)."""
        unused = RegistryRow.project_refs.does_not_exist() | (RegistryRow.project_refs == 0)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(RegistryRow(keys.registry_pk(registry.id), keys.ENTITY_SK),
                          condition=RegistryRow.pk.exists() & unused)  # fmt: skip
                tx.delete(_name_row(registry.name, registry.id))
        except TransactWriteError as exc:
            if not condition_failed(exc):
                raise
            if self.project_refs(registry.id) > 0:
                raise Conflict(
                    f"the registry {registry.id} is referenced by proxy cache project, cannot delete it"
                ) from None
            return False
        return True

    def project_refs(self, registry_id: int) -> int:
        """How many proxy-cache projects use the registry (0 when it is gone)."""
        try:
            row = RegistryRow.get(keys.registry_pk(registry_id), keys.ENTITY_SK, consistent_read=True)
        except RegistryRow.DoesNotExist:
            return 0
        return int(row.project_refs or 0)


def _name_row(name: str, registry_id: int) -> RegistryNameRow:
    return RegistryNameRow(keys.REGISTRIES_PK, keys.registry_name_sk(name), registry_id=registry_id)


def _row(registry: Registry, registry_id: int, created: int, updated: int, version: int) -> RegistryRow:
    credential = registry.credential
    return RegistryRow(
        keys.registry_pk(registry_id), keys.ENTITY_SK, name=registry.name, type=registry.type, url=registry.url,
        credential_type=credential.type if credential is not None else None,
        access_key=credential.access_key if credential is not None else "",
        secret_ref=credential.secret_ref if credential is not None else "",
        insecure=registry.insecure, description=registry.description, status=registry.status,
        settings=json.dumps(registry.settings, sort_keys=True), ca_certificate=registry.ca_certificate,
        created_at=created, updated_at=updated,
        version=version,
    )  # fmt: skip


def _to_registry(row: RegistryRow) -> Registry:
    credential = None
    if row.credential_type is not None:
        credential = Credential(row.credential_type, row.access_key or "", row.secret_ref or "")
    return Registry(
        id=int(row.pk.removeprefix(keys.REGISTRY_PREFIX)), name=row.name, type=row.type, url=row.url,
        credential=credential, insecure=bool(row.insecure), description=row.description or "",
        status=row.status or "healthy", creation_time=int(row.created_at), update_time=int(row.updated_at),
        settings=json.loads(row.settings or "{}"), ca_certificate=row.ca_certificate or "",
        version=int(row.version or 0),
    )  # fmt: skip
