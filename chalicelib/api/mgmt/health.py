"""GET /api/v2.0/health: Harbor's health shape, each component probed with one cheap call."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.edge import HttpRequest, guarded, json_response, request_from
from chalicelib.wiring import services

bp = Blueprint(__name__)


@bp.route("/api/v2.0/health", methods=["GET"])
def health() -> Response:
    return guarded(_health, request_from(bp.current_request))


def _health(request: HttpRequest) -> Response:
    components = services().health.components()
    status = "healthy" if all(c["status"] == "healthy" for c in components) else "unhealthy"
    return json_response({"status": status, "components": components})
