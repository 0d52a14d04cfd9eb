"""CVE allowlists (Harbor's `CVEAllowlist`): the system's and each project's, and which one applies.

An allowlist names vulnerability ids the pull gate ignores; reports and `scan_overview` still show
them. Harbor accepts any non-empty id (GHSA, DSA and OSV ids appear in reports as well as CVE ids),
so the only format rules are: not blank after trimming, no duplicates, and our size bounds (an
allowlist is read on gated pulls, so it stays small). Matching is an exact, case-sensitive compare
on the report item's `id`. An allowlist whose `expires_at` has passed (`now >= expires_at`) is
ignored as a whole; one without `expires_at` never expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core.bounds import MAX_EPOCH

# The system list's `project_id` in Harbor's shape.
SYSTEM_PROJECT_ID = 0
MAX_ITEMS = 1000
MAX_ID_LENGTH = 128


class AllowlistInvalid(ValueError):
    """The message names the first problem found (the caller maps it to a 400)."""


@dataclass(frozen=True)
class CveAllowlist:
    items: tuple[str, ...] = ()
    expires_at: int | None = None
    created_at: int = 0
    updated_at: int = 0

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def active_ids(self, now: float) -> frozenset[str]:
        """The ids the gate ignores now: none once the list has expired."""
        return frozenset() if self.expired(now) else frozenset(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"items": [{"cve_id": i} for i in self.items], "expires_at": self.expires_at}


def parse(body: Mapping[str, Any]) -> CveAllowlist:
    """Validate a client's `{items: [{cve_id}], expires_at}` (other keys Harbor echoes are ignored)."""
    items = body.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise AllowlistInvalid("items must be a list of {cve_id}")
    if len(items) > MAX_ITEMS:
        raise AllowlistInvalid(f"an allowlist holds at most {MAX_ITEMS} items")
    seen: list[str] = []
    for item in items:
        raw = item.get("cve_id") if isinstance(item, dict) else None
        if not isinstance(raw, str):
            raise AllowlistInvalid("items must be a list of {cve_id} with string ids")
        cve_id = raw.strip()
        if not cve_id:
            raise AllowlistInvalid("empty or whitespace-only CVE ID in allowlist")
        if len(cve_id) > MAX_ID_LENGTH:
            raise AllowlistInvalid(f"a CVE ID is at most {MAX_ID_LENGTH} characters")
        if cve_id in seen:
            raise AllowlistInvalid(f"duplicate CVE ID in allowlist: {cve_id}")
        seen.append(cve_id)
    expires = body.get("expires_at")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)
                                or not 0 <= expires <= MAX_EPOCH):  # fmt: skip
        raise AllowlistInvalid(f"expires_at must be an integer from 0 to {MAX_EPOCH} or null")
    return CveAllowlist(tuple(seen), expires)


def from_stored(stored: Mapping[str, Any] | None, created_at: int = 0, updated_at: int = 0) -> CveAllowlist:
    """A stored list (already validated when it was written; tolerant of older, looser rows)."""
    if not stored:
        return CveAllowlist(created_at=created_at, updated_at=updated_at)
    ids: list[str] = []
    for item in stored.get("items") or []:
        cve_id = item.get("cve_id") if isinstance(item, dict) else None
        if isinstance(cve_id, str) and cve_id.strip() and cve_id.strip() not in ids:
            ids.append(cve_id.strip())
    expires = stored.get("expires_at")
    return CveAllowlist(tuple(ids), expires if isinstance(expires, int) else None, created_at, updated_at)


def reuses_system(metadata: Mapping[str, str]) -> bool:
    """Harbor: the system list applies unless `reuse_sys_cve_allowlist` is explicitly "false"."""
    return metadata.get("reuse_sys_cve_allowlist", "true").lower() != "false"


def effective(metadata: Mapping[str, str], project_list: CveAllowlist, system_list: CveAllowlist) -> CveAllowlist:
    return system_list if reuses_system(metadata) else project_list
