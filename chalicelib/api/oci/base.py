"""GET /v2/: the API version check."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, json_response


def version_check(request: HttpRequest) -> Response:
    return json_response({})
