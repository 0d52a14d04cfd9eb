"""What /api/v2.0 handlers share: the caller, JSON bodies as pydantic models, list responses.

The route decorator (`_route.py`) uses these for every route; handlers use the helpers directly
when a route needs more than the decorator does (raw JSON objects, store-paged lists).

Harbor's API authenticates with HTTP Basic (a user's password or a robot's secret). Registry tokens
from /service/token are refused here, as in Harbor: they carry a narrow grant for /v2 and must not
become a full API login. Bodies are validated with
pydantic models that forbid unknown fields, so a typo is a 400 naming the field, never a 500.
Those models say `defer_build=True`: each validator is built on its route's first request, not
when the Lambda handler module is imported (its cold start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from chalice.app import Response
from pydantic import BaseModel, ValidationError

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt.paging import apply_sort, page_headers, paginate, parse_page, parse_sort
from chalicelib.api.mgmt.query import parse_q
from chalicelib.core import jsondoc
from chalicelib.errors import BadRequest, Unauthorized
from chalicelib.events import set_operator
from chalicelib.observability import logger
from chalicelib.wiring import services

API = "/api/v2.0"
ModelT = TypeVar("ModelT", bound=BaseModel)
_MAX_BODY = 1024 * 1024


def identified(request: HttpRequest) -> HttpRequest:
    header = request.header("authorization")
    if header and header.lower().startswith("bearer "):
        raise Unauthorized("registry tokens are for /v2; use Basic credentials on the management API")
    principal, _ = services().access.authenticate(header, request.source)
    logger.thread_safe_append_keys(user=principal.name or "anonymous")
    set_operator(principal.name)
    return request.with_caller(principal, None)


def body(request: HttpRequest, model: type[ModelT]) -> ModelT:
    """Parse the JSON body into `model`; malformed JSON, wrong types or unknown fields are a 400.

    The body first passes `jsondoc`'s bounds (depth, digits, UTF-8), then is validated strictly:
    JSON's own types only, so `"no"` or `1` is no boolean and `"5"` or `5.0` no integer (pydantic's
    lax mode would coerce them, and a caller's typo would flip a flag it meant to keep)."""
    raw_json(request)
    return _checked(lambda: model.model_validate_json(request.body or b"{}", strict=True))


def validated(model: type[ModelT], data: Any) -> ModelT:
    """`data` as `model`; wrong types, out-of-bound numbers or unknown fields are a 400 naming them."""
    return _checked(lambda: model.model_validate(data))


def _checked(parse: Callable[[], ModelT]) -> ModelT:
    try:
        return parse()
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()[:10]]
        raise BadRequest("invalid request body", problems) from None


def raw_json(request: HttpRequest) -> Any:
    """The JSON body (`{}` when empty) within `jsondoc`'s bounds; anything else is a 400."""
    if len(request.body) > _MAX_BODY:
        raise BadRequest(f"request body larger than {_MAX_BODY} bytes")
    try:
        return jsondoc.loads(request.body or b"{}")
    except jsondoc.JsonInvalid as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def int_param(value: str, name: str) -> int:
    # ASCII only: str.isdigit() is also true of "²", which int() refuses (a 500).
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest(f"{name} must be a positive integer", {name: value[:32]})
    return int(value)


def listing(
    request: HttpRequest,
    path: str,
    records: list[dict[str, Any]],
    *,
    q_fields: Mapping[str, type] | None = None,
    sort_fields: tuple[str, ...] = (),
    fill: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> Response:
    """Filter (`q`), sort, page and answer with `X-Total-Count` and `Link`, as Harbor lists do.

    `fill` completes the records of the returned page only (fields too costly to compute for
    every record, such as counts)."""
    page = parse_page(request.arg("page"), request.arg("page_size"))
    if q_fields is not None:
        query = parse_q(request.arg("q"), dict(q_fields))
        records = [r for r in records if query.matches(r)]
    spec = parse_sort(request.arg("sort"), sort_fields) if sort_fields else []
    if spec:
        records = apply_sort(records, spec)
    others = {k: v[-1] for k, v in request.query.items() if k not in ("page", "page_size") and v}
    headers = page_headers(f"{API}{path}", others, page, len(records))
    page_records = paginate(records, page)
    return json_response(fill(page_records) if fill else page_records, headers=headers)


def created(location: str, payload: Any = None) -> Response:
    if payload is None:
        return Response(body=b"", status_code=201, headers={"Location": location, "Content-Length": "0"})
    return json_response(payload, 201, {"Location": location})


def ok() -> Response:
    return Response(body=b"", status_code=200, headers={"Content-Length": "0"})


def iso(epoch: int) -> str:
    """Harbor's timestamps: RFC 3339 with milliseconds, UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
