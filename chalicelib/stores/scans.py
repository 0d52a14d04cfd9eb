"""Scan reports and the report summaries on artifact rows (layout in `keys.py`).

A report's raw JSON is an object keyed by (digest, registration, MIME type), so a digest scanned
once is not scanned again for another repository's sake. The summary goes on the artifact's row,
one attribute per MIME type, by an update conditioned on the row existing (an artifact deleted
while it was scanned is not brought back) and, when `replacing` names a report id, on the row's
summary still being that report's (a late task of an older scan never overwrites a newer one).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.core.scans import ReportSummary
from chalicelib.stores import keys
from chalicelib.stores.artifacts import SCAN_ATTRIBUTES
from chalicelib.stores.tables import ManifestRow

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore


class ScanStore:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def save_summary(self, repository: str, digest: str, summary: ReportSummary, *, replacing: str | None = None,
                     unless_report: str | None = None) -> bool:  # fmt: skip
        """Write one summary on the artifact's row; False when the artifact is gone, when
        `replacing` is given and the row's summary of that MIME type is another report's, or when
        `unless_report` is given and the row's summary already is that report's (a placeholder
        written after the execution's first step has moved it on)."""
        attribute = getattr(ManifestRow, SCAN_ATTRIBUTES[summary.mime_type])
        text = json.dumps(summary.record(), separators=(",", ":"), sort_keys=True)
        condition = ManifestRow.pk.exists()
        if replacing is not None:
            condition &= attribute.contains(f'"report_id":"{replacing}"')
        if unless_report is not None:
            condition &= attribute.does_not_exist() | ~attribute.contains(f'"report_id":"{unless_report}"')
        row = ManifestRow(keys.repo_pk(repository), keys.manifest_sk(digest))
        try:
            row.update(actions=[attribute.set(text)], condition=condition)
        except Exception as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_report(self, digest: str, registration: str, mime_type: str, body: bytes) -> None:
        self._objects.put(keys.scan_report_key(digest, registration, mime_type), body)

    def report(self, digest: str, registration: str, mime_type: str) -> bytes | None:
        key = keys.scan_report_key(digest, registration, mime_type)
        return self._objects.get(key) if self._objects.exists(key) else None
