"""/api/v2.0/icons/{digest}: an artifact's icon as base64 JSON (Harbor's `Icon` model).

Harbor asks no permission for icons (the portal shows them next to public and private artifacts
alike); credentials, when sent, must still be valid.
"""

from __future__ import annotations

import base64

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._route import Routes
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


@routes.get("/icons/{digest}")
def icon(request: HttpRequest) -> dict[str, str]:
    found = services().icons.get(request.params["digest"])
    return {"content-type": found.content_type, "content": base64.b64encode(found.content).decode()}
