"""Scanner registrations and each project's chosen registration (keys in `keys.py`).

All registrations are one item: there are a handful at most, a read is one GetItem, and a writer
puts the whole list back with a condition on the version it read, so two concurrent creates cannot
both take a name or URL and there is always at most one default. A project's choice sits in the
same partition, so the scanner of a project (its choice, else the default) is one BatchGetItem.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from chalicelib.core.scanners import ScannerRegistration
from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import ProjectScannerRow, ScannerRegistrationsRow, batch_get_raw


class ScannerStore:
    def load(self) -> tuple[list[ScannerRegistration], int]:
        """Every registration and the version read (0: never written)."""
        try:
            row = ScannerRegistrationsRow.get(keys.SCANNERS_PK, keys.SCANNER_REGISTRATIONS_SK, consistent_read=True)
        except ScannerRegistrationsRow.DoesNotExist:
            return [], 0
        return _parse(row.registrations), int(row.version)

    def save(self, registrations: list[ScannerRegistration], read_version: int) -> None:
        """Replace the list if nobody changed it since `read_version`; Conflict otherwise."""
        row = ScannerRegistrationsRow(
            keys.SCANNERS_PK, keys.SCANNER_REGISTRATIONS_SK, version=read_version + 1,
            registrations=json.dumps([r.record() for r in registrations]),
        )  # fmt: skip
        condition = (
            ScannerRegistrationsRow.pk.does_not_exist()
            if read_version == 0
            else ScannerRegistrationsRow.version == read_version
        )
        try:
            row.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict("the scanner registrations changed concurrently") from None
            raise

    def load_for_project(self, project_id: int) -> tuple[list[ScannerRegistration], str | None]:
        """The registrations and the uuid the project chose (None: no choice), in one BatchGetItem."""
        items = batch_get_raw(
            [(keys.SCANNERS_PK, keys.SCANNER_REGISTRATIONS_SK), (keys.SCANNERS_PK, keys.project_scanner_sk(project_id))]
        )
        registrations: list[ScannerRegistration] = []
        chosen: str | None = None
        for item in items:
            if item["sk"]["S"] == keys.SCANNER_REGISTRATIONS_SK:
                registrations = _parse(ScannerRegistrationsRow.from_raw_data(item).registrations)
            else:
                chosen = ProjectScannerRow.from_raw_data(item).registration or None
        return registrations, chosen

    def set_project_choice(self, project_id: int, registration_uuid: str) -> None:
        ProjectScannerRow(keys.SCANNERS_PK, keys.project_scanner_sk(project_id), registration=registration_uuid).save()

    def clear_project_choice(self, project_id: int, *, if_registration: str | None = None) -> None:
        """Forget a project's choice (only if it still names `if_registration`, when given)."""
        row = ProjectScannerRow(keys.SCANNERS_PK, keys.project_scanner_sk(project_id))
        condition = ProjectScannerRow.registration == if_registration if if_registration is not None else None
        try:
            row.delete(condition=condition)
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise


def _parse(text: str | None) -> list[ScannerRegistration]:
    records: list[dict[str, Any]] = json.loads(text or "[]")
    return [ScannerRegistration.from_record(r) for r in records]
