"""/api/v2.0/system/CVEAllowlist: the system CVE allowlist (read by any signed-in caller, as in
Harbor; changed by a system administrator)."""

from __future__ import annotations

from typing import Any

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import iso, raw_json
from chalicelib.api.mgmt._route import Routes
from chalicelib.core.allowlist import SYSTEM_PROJECT_ID, CveAllowlist
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
# Harbor's system list is the row its migration creates first.
SYSTEM_LIST_ID = 1


def allowlist_view(allowlist: CveAllowlist, project_id: int, list_id: int) -> dict[str, Any]:
    """Harbor's CVEAllowlist shape (`expires_at` left out when the list never expires)."""
    view: dict[str, Any] = {
        "id": list_id,
        "project_id": project_id,
        "items": [{"cve_id": i} for i in allowlist.items],
        "creation_time": iso(allowlist.created_at),
        "update_time": iso(allowlist.updated_at),
    }
    if allowlist.expires_at is not None:
        view["expires_at"] = allowlist.expires_at
    return view


@routes.get("/system/CVEAllowlist")
def get_system_allowlist(request: HttpRequest) -> dict[str, Any]:
    return allowlist_view(services().allowlists.system(), SYSTEM_PROJECT_ID, SYSTEM_LIST_ID)


@routes.put("/system/CVEAllowlist")
def put_system_allowlist(request: HttpRequest) -> None:
    document = raw_json(request)
    if not isinstance(document, dict):
        raise BadRequest("body must be a CVE allowlist object: {items: [{cve_id}], expires_at}")
    services().allowlists.set_system(document)
