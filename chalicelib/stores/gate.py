"""What the pull gate reads (layout in `keys.py`): the project row, the system CVE allowlist and the
scanner registrations (the policy rows, whose keys a pull knows from its request), and the pulled
artifact's manifest row (its kind, media type, accessory type and scan summaries).

The policy rows ride on the pull's own read (`AlsoRead`: one BatchGetItem with the tag or manifest
row), so a pull costs one call. A pull by digest reads the manifest row in that same call; a pull by
tag reads the tag row, whose copy holds no scan summaries, so `target` reads the manifest row's gate
attributes when, and only when, the policy is on. Every read is projected: a manifest row may carry
a 300 kB inline body.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core import allowlist
from chalicelib.core.allowlist import CveAllowlist
from chalicelib.core.gate import GATE_REPORTS, GateRead, PullTarget
from chalicelib.core.mediatypes import INDEXES
from chalicelib.core.scanners import ScannerRegistration
from chalicelib.stores import allowlists, keys
from chalicelib.stores.artifacts import SCAN_ATTRIBUTES, scan_summaries
from chalicelib.stores.manifests import AlsoRead, RawItems
from chalicelib.stores.tables import ManifestRow, ProjectRow, ScannerRegistrationsRow

# What the gate reads of the manifest row.
_TARGET = ("kind", "media_type", "accessory_type", *(SCAN_ATTRIBUTES[m] for m in GATE_REPORTS))
# ... and of the policy rows (project, system allowlist, scanners). One projection covers every key
# of a BatchGetItem, so the manifest row's attributes are asked for with them.
_POLICY = ("metadata", "cve_allowlist", "created_at", "updated_at", "items", "expiry", "registrations")


class GateStore:
    def also(self, project: str) -> AlsoRead:
        """The rows to read beside a pulled manifest of `project`."""
        return AlsoRead((_project_key(project), allowlists.system_key(), _SCANNERS_KEY), (*_POLICY, *_TARGET))

    def read(self, project: str, repository: str, digest: str, found: RawItems) -> GateRead | None:
        """The gate's view of a pull from the raw items its read returned (`also`); None when the
        project is gone. `target` is None unless the manifest row was among them (a pull by digest)."""
        project_row = found.get(_project_key(project))
        if project_row is None:
            return None
        row = ProjectRow.from_raw_data(project_row)
        manifest_row = found.get((keys.repo_pk(repository), keys.manifest_sk(digest)))
        return GateRead(
            metadata={str(k): str(v) for k, v in (row.metadata.as_dict() if row.metadata else {}).items()},
            project_allowlist=_project_allowlist(row),
            system_allowlist=allowlists.from_raw(found.get(allowlists.system_key())),
            target=None if manifest_row is None else _target(ManifestRow.from_raw_data(manifest_row)),
            scanner_enabled=_scanner_enabled(found.get(_SCANNERS_KEY)),
        )

    def target(self, repository: str, digest: str) -> PullTarget | None:
        """The manifest row's gate attributes (one GetItem); None when the row is gone."""
        try:
            row = ManifestRow.get(keys.repo_pk(repository), keys.manifest_sk(digest), consistent_read=True,
                                  attributes_to_get=list(_TARGET))  # fmt: skip
        except ManifestRow.DoesNotExist:
            return None
        return _target(row)


_SCANNERS_KEY = (keys.SCANNERS_PK, keys.SCANNER_REGISTRATIONS_SK)


def _project_key(project: str) -> tuple[str, str]:
    return keys.project_pk(project), keys.ENTITY_SK


def _project_allowlist(row: ProjectRow) -> CveAllowlist:
    try:
        stored = json.loads(row.cve_allowlist or "{}")
    except ValueError:
        stored = {}
    return allowlist.from_stored(stored if isinstance(stored, dict) else {}, int(row.created_at or 0),
                                 int(row.updated_at or 0))  # fmt: skip


def _target(row: ManifestRow) -> PullTarget:
    summaries = {mime: summary for mime, summary in scan_summaries(row).items() if mime in GATE_REPORTS}
    media_type = str(row.media_type or "")
    return PullTarget(kind=str(row.kind or "UNKNOWN"), manifest_media_type=media_type,
                      accessory_type=row.accessory_type, is_index=media_type in INDEXES,
                      summaries=summaries)  # fmt: skip


def _scanner_enabled(item: dict[str, Any] | None) -> bool:
    if not item:
        return False
    try:
        records = json.loads(ScannerRegistrationsRow.from_raw_data(item).registrations or "[]")
        return any(not ScannerRegistration.from_record(r).disabled for r in records)
    except (ValueError, TypeError, KeyError):
        return True  # unreadable: scannable, so an unscanned image is refused rather than let through
