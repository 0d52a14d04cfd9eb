"""/api/v2.0 system endpoints: ping, systeminfo, statistics and configurations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalice.app import Response

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import raw_json
from chalicelib.api.mgmt._route import Routes
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
VERSION = "v2.0.0-serverless"


@bp.route("/api/version", methods=["GET"])
def api_version() -> Response:
    """Harbor's unversioned version probe, open to everyone: a Harbor that replicates to or from this
    registry asks it first and speaks its v2.0 API only when the answer says so."""
    return Response(body={"version": "v2.0"}, status_code=200, headers={"Content-Type": "application/json"})


@routes.get("/ping")
def ping(request: HttpRequest) -> Response:
    return Response(body=b"Pong", status_code=200, headers={"Content-Type": "text/plain"})


@routes.get("/systeminfo")
def systeminfo(request: HttpRequest) -> dict[str, Any]:
    """Harbor's GeneralInfo: the login page's fields for everyone, the rest for logged-in callers."""
    registry = services()
    info: dict[str, object] = {
        "auth_mode": "db_auth",
        "primary_auth_mode": False,
        "self_registration": False,
        "banner_message": registry.configuration.banner_message(),
        "oidc_provider_name": "",
    }
    if request.principal.authenticated:
        base = request.base_url(registry.settings.external_url)
        info.update({
            "has_ca_root": False,
            "project_creation_restriction": registry.configuration.project_creation_restriction(),
            "harbor_version": VERSION,
            "external_url": base,
            "registry_url": base.split("://", 1)[-1],
            "read_only": False,
            "registry_storage_provider_name": "s3",
            "notification_enable": True,
            "current_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        })  # fmt: skip
    return info


@routes.get("/statistics")
def statistics(request: HttpRequest) -> dict[str, Any]:
    """Counts over the projects the caller may read."""
    registry = services()
    visible = registry.projects.visible(request.principal)
    public = [p for p in visible if p.public]
    private = [p for p in visible if not p.public]
    repos = {p.name: registry.projects.repository_count(p.name) for p in visible}
    stats: dict[str, int] = {
        "private_project_count": len(private),
        "private_repo_count": sum(repos[p.name] for p in private),
        "public_project_count": len(public),
        "public_repo_count": sum(repos[p.name] for p in public),
        "total_project_count": len(visible),
        "total_repo_count": sum(repos.values()),
    }
    # Harbor counts storage for administrators only and writes 0 for everyone else.
    stats["total_storage_consumption"] = sum(p.storage_used for p in visible) if request.principal.sysadmin else 0
    return stats


@routes.get("/configurations")
def get_configurations(request: HttpRequest) -> dict[str, Any]:
    return services().configuration.describe()


@routes.put("/configurations")
def update_configurations(request: HttpRequest) -> None:
    changes = raw_json(request)
    if not isinstance(changes, dict):
        raise BadRequest("body must be a JSON object of configuration keys")
    services().configuration.update(changes)
