"""CVE allowlists: the system list (`/system/CVEAllowlist`) and the rules a project's list follows.

The rules live in `core/allowlist.py`; this service stores the system list and turns invalid input
into Harbor's 400. A project's own list is stored on its row by the project service, validated by
the same `parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.core import allowlist as rules
from chalicelib.core.allowlist import CveAllowlist
from chalicelib.core.identity import Project
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.stores.allowlists import AllowlistStore


def parse(body: Mapping[str, Any]) -> CveAllowlist:
    try:
        return rules.parse(body)
    except rules.AllowlistInvalid as exc:
        raise BadRequest(str(exc)) from None


class AllowlistService:
    def __init__(self, store: AllowlistStore) -> None:
        self._store = store

    def system(self) -> CveAllowlist:
        return self._store.system()

    def set_system(self, body: Mapping[str, Any]) -> CveAllowlist:
        return self._store.save_system(parse(body))

    def effective(self, project: Project) -> CveAllowlist:
        """The list the gate applies in `project` (reads the system list only when it applies)."""
        if rules.reuses_system(project.metadata):
            return self._store.system()
        return rules.from_stored(project.cve_allowlist)
