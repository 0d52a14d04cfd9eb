"""GET /api/v2.0/health: Harbor's health shape, each component probed with one cheap call."""

from __future__ import annotations

from typing import Any

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._route import Routes
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


@routes.get("/health")
def health(request: HttpRequest) -> dict[str, Any]:
    components = services().health.components()
    status = "healthy" if all(c["status"] == "healthy" for c in components) else "unhealthy"
    return {"status": status, "components": components}
