"""The pull gate's one read: a BatchGetItem of the project row, the artifact's manifest row (with
its scan summaries), the system CVE allowlist and the scanner registrations (layout in `keys.py`).

Only the attributes the gate needs are read (a manifest row may carry a 300 kB inline body)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core import allowlist, scans
from chalicelib.core.allowlist import CveAllowlist
from chalicelib.core.gate import GateRead, PullTarget
from chalicelib.core.mediatypes import INDEXES
from chalicelib.core.scanners import ScannerRegistration
from chalicelib.stores import keys
from chalicelib.stores.artifacts import SCAN_ATTRIBUTES
from chalicelib.stores.tables import batch_get_raw

_GATE_REPORTS = {mime: SCAN_ATTRIBUTES[mime] for mime in scans.VULNERABILITY_REPORTS}
# The union of what the gate reads of the four items (a projection applies to every key).
_ATTRIBUTES = ["pk", "sk", "metadata", "cve_allowlist", "created_at", "updated_at", "kind", "media_type",
               "accessory_type", *_GATE_REPORTS.values(), "items", "expiry", "registrations"]  # fmt: skip


class GateStore:
    def read(self, project: str, repository: str, digest: str) -> GateRead | None:
        """The gate's view of a pull; None when the project is gone."""
        project_key = (keys.project_pk(project), keys.ENTITY_SK)
        manifest_key = (keys.repo_pk(repository), keys.manifest_sk(digest))
        allowlist_key = (keys.CONFIG_PK, keys.SYSTEM_ALLOWLIST_SK)
        scanners_key = (keys.SCANNERS_PK, keys.SCANNER_REGISTRATIONS_SK)
        items = {(i["pk"]["S"], i["sk"]["S"]): _plain(i) for i in
                 batch_get_raw([project_key, manifest_key, allowlist_key, scanners_key], _ATTRIBUTES)}  # fmt: skip
        found = items.get(project_key)
        if found is None:
            return None
        return GateRead(
            metadata={str(k): str(v) for k, v in (found.get("metadata") or {}).items()},
            project_allowlist=_project_allowlist(found),
            system_allowlist=_system_allowlist(items.get(allowlist_key)),
            target=_target(items.get(manifest_key)),
            scanner_enabled=_scanner_enabled(items.get(scanners_key)),
        )


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415 (loaded on the first gated pull)

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def _project_allowlist(row: dict[str, Any]) -> CveAllowlist:
    try:
        stored = json.loads(row.get("cve_allowlist") or "{}")
    except ValueError:
        stored = {}
    return allowlist.from_stored(stored if isinstance(stored, dict) else {}, int(row.get("created_at") or 0),
                                 int(row.get("updated_at") or 0))  # fmt: skip


def _system_allowlist(row: dict[str, Any] | None) -> CveAllowlist:
    if not row:
        return CveAllowlist()
    expiry = row.get("expiry")
    return CveAllowlist(tuple(str(i) for i in row.get("items") or ()), None if expiry is None else int(expiry),
                        int(row.get("created_at") or 0), int(row.get("updated_at") or 0))  # fmt: skip


def _target(row: dict[str, Any] | None) -> PullTarget | None:
    if row is None:
        return None
    summaries: dict[str, scans.ReportSummary] = {}
    for mime, attribute in _GATE_REPORTS.items():
        text = row.get(attribute)
        if text:
            summaries.update(scans.decode(f'{{"{mime}":{text}}}'))  # a damaged summary reads as none
    media_type = str(row.get("media_type") or "")
    return PullTarget(kind=str(row.get("kind") or "UNKNOWN"), manifest_media_type=media_type,
                      accessory_type=row.get("accessory_type"), is_index=media_type in INDEXES,
                      summaries=summaries)  # fmt: skip


def _scanner_enabled(row: dict[str, Any] | None) -> bool:
    if not row:
        return False
    try:
        records = json.loads(row.get("registrations") or "[]")
        return any(not ScannerRegistration.from_record(r).disabled for r in records)
    except (ValueError, TypeError, KeyError):
        return True  # unreadable: scannable, so an unscanned image is refused rather than let through
