"""/api/v2.0 system endpoints: ping, systeminfo, statistics and configurations."""

from __future__ import annotations

from datetime import UTC, datetime

from chalice.app import Blueprint, Response

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, ok, raw_json, serve
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import GeneralInfo
from chalicelib.auth.rbac import Permission
from chalicelib.errors import BadRequest, Forbidden, Unauthorized
from chalicelib.wiring import services

bp = Blueprint(__name__)
VERSION = "v2.0.0-serverless"


@bp.route(f"{API}/ping", methods=["GET"])
def ping() -> Response:
    return Response(body=b"Pong", status_code=200, headers={"Content-Type": "text/plain"})


@bp.route(f"{API}/systeminfo", methods=["GET"])
def systeminfo() -> Response:
    return serve(bp, _systeminfo)


def _systeminfo(request: HttpRequest) -> Response:
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
    return json_response(shape(GeneralInfo, info))


@bp.route(f"{API}/statistics", methods=["GET"])
def statistics() -> Response:
    return serve(bp, _statistics)


def _statistics(request: HttpRequest) -> Response:
    if not request.principal.authenticated:
        raise Unauthorized("log in to read statistics")
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
    return json_response(stats)


@bp.route(f"{API}/configurations", methods=["GET", "PUT"], content_types=["*/*"])
def configurations() -> Response:
    return serve(bp, _configurations)


def _configurations(request: HttpRequest) -> Response:
    registry = services()
    if not request.principal.authenticated:
        raise Unauthorized("log in first")
    # A PUT changes the configuration: it needs `update`, never just `read`.
    action = "read" if request.method == "GET" else "update"
    if not registry.access.system_allows(request.principal, Permission("configuration", action)):
        raise Forbidden(f"only system administrators may {action} the configuration")
    if request.method == "GET":
        return json_response(registry.configuration.describe())
    changes = raw_json(request)
    if not isinstance(changes, dict):
        raise BadRequest("body must be a JSON object of configuration keys")
    registry.configuration.update(changes)
    return ok()
