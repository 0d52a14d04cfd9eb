"""The /v2 blueprint: one greedy Chalice route and a dispatch table for names with slashes.

API Gateway and Chalice cannot route `<name>` values that contain `/`, so everything under `/v2/`
arrives on `/v2/{proxy+}` and is matched here, most specific pattern first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from chalice.app import Blueprint, Response

from chalicelib.api.edge import HttpRequest, guarded, request_from
from chalicelib.api.oci import base, blobs, discovery, manifests, uploads
from chalicelib.api.oci._auth import identify, require, require_caller
from chalicelib.auth.rbac import DELETE_ARTIFACT, PULL, PUSH, READ_CATALOG, Permission
from chalicelib.core.reference import validate_name
from chalicelib.errors import PayloadTooLarge, Unsupported
from chalicelib.events import set_operator
from chalicelib.observability import flush, logger, traced

Handler = Callable[[HttpRequest], Response]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}


class Route(NamedTuple):
    pattern: re.Pattern[str]
    # method -> (handler, the permission the caller needs on the repository, or on the catalog)
    handlers: dict[str, tuple[Handler, Permission]]


def _route(pattern: str, **handlers: tuple[Handler, Permission]) -> Route:
    return Route(re.compile(pattern, re.DOTALL), handlers)


_NAME = r"(?P<name>.+)"
ROUTES: tuple[Route, ...] = (
    _route(r"^_catalog$", GET=(discovery.catalog, READ_CATALOG)),
    _route(rf"^{_NAME}/tags/list$", GET=(discovery.list_tags, PULL)),
    _route(
        rf"^{_NAME}/manifests/(?P<reference>[^/]+)$",
        GET=(manifests.get_manifest, PULL),
        HEAD=(manifests.get_manifest, PULL),
        PUT=(manifests.put_manifest, PUSH),
        DELETE=(manifests.delete_manifest, DELETE_ARTIFACT),
    ),
    _route(rf"^{_NAME}/blobs/uploads/?$", POST=(uploads.start_upload, PUSH)),
    _route(
        rf"^{_NAME}/blobs/uploads/(?P<upload>[^/]+)$",
        GET=(uploads.upload_status, PUSH),
        PATCH=(uploads.patch_upload, PUSH),
        PUT=(uploads.finish_upload, PUSH),
        DELETE=(uploads.cancel_upload, PUSH),
    ),
    _route(
        rf"^{_NAME}/blobs/(?P<digest>[^/]+)$",
        GET=(blobs.get_blob, PULL),
        HEAD=(blobs.head_blob, PULL),
        DELETE=(blobs.delete_blob, DELETE_ARTIFACT),
    ),
    _route(rf"^{_NAME}/referrers/(?P<digest>[^/]+)$", GET=(discovery.referrers, PULL)),
)

bp = Blueprint(__name__)


@bp.route("/v2", methods=["GET", "HEAD"], content_types=["*/*"])
def v2_root() -> Response:
    return _serve("", base.version_check)


@bp.route("/v2/{proxy+}", methods=METHODS, content_types=["*/*"])
def v2_proxy() -> Response:
    request = bp.current_request
    path = (request.uri_params or {}).get("proxy") or ""
    return _serve(path, None)


@traced(capture_response=False)
def _serve(path: str, fixed: Handler | None) -> Response:
    request = request_from(bp.current_request)
    response = guarded(lambda r: _dispatch(path, r, fixed), request, API_VERSION)
    response.headers.update(API_VERSION)
    logger.info("request", extra={"path": f"/v2/{path}", "status": response.status_code})
    # One EMF line per request on Lambda (a no-op when POWERTOOLS_METRICS_DISABLED is set).
    flush()
    return response


def _dispatch(path: str, request: HttpRequest, fixed: Handler | None) -> Response:
    if fixed is not None or path in ("", "/"):
        request = identify(request)
        require_caller(request)
        return (fixed or base.version_check)(request)
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        entry = route.handlers.get(request.method)
        if entry is None:
            raise Unsupported(f"{request.method} is not supported here", status=405)
        handler, needed = entry
        params = match.groupdict()
        if "name" in params:
            validate_name(params["name"])
        logger.thread_safe_append_keys(
            repository=params.get("name"), digest=params.get("digest"), reference=params.get("reference")
        )
        request = identify(request)
        require(request, params.get("name"), needed)
        logger.thread_safe_append_keys(user=request.principal.name or "anonymous")
        set_operator(request.principal.name)
        _check_body_cap(request)
        return handler(request.with_params(params))
    raise Unsupported("unknown endpoint", {"path": path[:200]}, status=404)


def _check_body_cap(request: HttpRequest) -> None:
    from chalicelib.config import get_settings  # noqa: PLC0415 (pydantic-settings loads on the first request)

    cap = get_settings().max_body_bytes
    if cap and len(request.body) > cap:
        raise PayloadTooLarge(
            f"request body of {len(request.body)} bytes exceeds this registry's limit of {cap} bytes; "
            f"push the blob in chunks: POST an upload, then PATCH at most {cap} bytes per request "
            "with Content-Range (the limit is advertised in OCI-Chunk-Max-Length)",
            {"limit": cap, "size": len(request.body)},
        )
