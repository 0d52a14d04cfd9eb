"""/api/v2.0/icons/{digest}: an artifact's icon as base64 JSON (Harbor's `Icon` model).

Harbor asks no permission for icons (the portal shows them next to public and private artifacts
alike); credentials, when sent, must still be valid.
"""

from __future__ import annotations

import base64

from chalice.app import Blueprint, Response

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, serve
from chalicelib.wiring import services

bp = Blueprint(__name__)


@bp.route(f"{API}/icons/{{digest}}", methods=["GET"])
def icon(digest: str) -> Response:
    return serve(bp, _icon, digest=digest)


def _icon(request: HttpRequest) -> Response:
    found = services().icons.get(request.params["digest"])
    return json_response({"content-type": found.content_type, "content": base64.b64encode(found.content).decode()})
