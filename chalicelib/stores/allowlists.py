"""The system CVE allowlist: one item beside the configuration row (layout in `stores/keys.py`)."""

from __future__ import annotations

from typing import Any

from chalicelib.core.allowlist import CveAllowlist
from chalicelib.core.clock import Clock, system_clock
from chalicelib.stores import keys
from chalicelib.stores.tables import SystemAllowlistRow


class AllowlistStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def system(self) -> CveAllowlist:
        try:
            row = SystemAllowlistRow.get(keys.CONFIG_PK, keys.SYSTEM_ALLOWLIST_SK)
        except SystemAllowlistRow.DoesNotExist:
            return CveAllowlist()
        return from_row(row)

    def save_system(self, allowlist: CveAllowlist) -> CveAllowlist:
        now = int(self._clock())
        current = self.system()
        row = SystemAllowlistRow(
            keys.CONFIG_PK,
            keys.SYSTEM_ALLOWLIST_SK,
            items=list(allowlist.items),
            expiry=allowlist.expires_at,
            created_at=current.created_at or now,
            updated_at=now,
        )
        row.save()
        return from_row(row)


def from_row(row: SystemAllowlistRow) -> CveAllowlist:
    expiry = row.expiry
    return CveAllowlist(tuple(str(i) for i in row.items or ()), None if expiry is None else int(expiry),
                        int(row.created_at or 0), int(row.updated_at or 0))  # fmt: skip


def system_key() -> tuple[str, str]:
    return keys.CONFIG_PK, keys.SYSTEM_ALLOWLIST_SK


def from_raw(item: dict[str, Any] | None) -> CveAllowlist:
    """The list from a raw BatchGetItem item (read with a pulled manifest), or the empty list."""
    if not item:
        return CveAllowlist()
    row = SystemAllowlistRow.from_raw_data(item)
    return from_row(row)
