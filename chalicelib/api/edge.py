"""The HTTP edge: a thread-safe Chalice app, a request view, responses, and the one error mapping.

Three Chalice traps are handled here:
- `app.current_request` is a plain attribute, overwritten by concurrent requests under a threaded
  server; `RegistryApp` keeps it (and `lambda_context`) in a thread-local.
- With `binary_types = ['*/*']` Chalice answers 400 to any request without an Accept header, and OCI
  clients send none on blob requests; the check is disabled once, at import.
- Every response body must be bytes; `json_response` and `empty_response` guarantee it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import chalice.app
from chalice.app import Chalice, Response

from chalicelib.core.identity import ANONYMOUS, Principal
from chalicelib.errors import ErrorCode, RegistryError
from chalicelib.events import set_operator
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.auth.tokens import Claims  # cryptography: loaded when a token is first checked

chalice.app.RestAPIEventHandler._validate_binary_response = lambda self, request_headers, response_headers: True  # type: ignore[method-assign]


class RegistryApp(Chalice):
    """Chalice with per-thread request state, so one process can serve requests concurrently."""

    _state = threading.local()

    @property
    def current_request(self) -> chalice.app.Request | None:
        return getattr(self._state, "request", None)

    @current_request.setter
    def current_request(self, value: chalice.app.Request | None) -> None:
        self._state.request = value

    @property
    def lambda_context(self) -> Any:
        return getattr(self._state, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._state.context = value


@dataclass(frozen=True)
class HttpRequest:
    """What a handler needs from a request, independent of Chalice's event shapes."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: bytes
    request_id: str
    params: dict[str, str] = field(default_factory=dict)
    principal: Principal = ANONYMOUS
    # Set when the caller presented a bearer token: /v2 then authorises from its grants alone.
    claims: Claims | None = None
    # The client's address as API Gateway (or the local adapter) saw it; failed sign-ins count per address.
    source: str | None = None

    def with_params(self, params: dict[str, str]) -> HttpRequest:
        return replace(self, params=params)

    def with_caller(self, principal: Principal, claims: Claims | None) -> HttpRequest:
        return replace(self, principal=principal, claims=claims)

    def base_url(self, configured: str | None) -> str:
        """scheme://host the client used (API Gateway sets X-Forwarded-Proto), unless configured."""
        if configured:
            return configured.rstrip("/")
        proto = (self.header("x-forwarded-proto") or "http").split(",")[0].strip()
        return f"{proto}://{self.header('host') or 'localhost'}"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @classmethod
    def from_chalice(cls, request: chalice.app.Request) -> HttpRequest:
        event = request.to_original_event()
        multi = event.get("multiValueHeaders") or {}
        headers = {k.lower(): ", ".join(v) for k, v in multi.items() if v} or {
            k.lower(): v for k, v in (event.get("headers") or {}).items()
        }
        query = event.get("multiValueQueryStringParameters") or {}
        body = request.raw_body if request.method not in ("GET", "HEAD") else b""
        context = event.get("requestContext") or {}
        context_id = context.get("requestId")
        return cls(
            source=(context.get("identity") or {}).get("sourceIp") or None,
            method=request.method,
            headers=headers,
            query={k: list(v) for k, v in query.items()},
            body=body if isinstance(body, bytes) else body.encode(),
            request_id=context_id or uuid.uuid4().hex,
        )


def request_from(chalice_request: chalice.app.Request) -> HttpRequest:
    """The request view, with this thread's log context reset to it (threads serve many requests)."""
    request = HttpRequest.from_chalice(chalice_request)
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(request_id=request.request_id, method=request.method)
    set_operator(None)
    return request


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body=b"", status_code=status, headers={"Content-Length": "0", **(headers or {})})


def error_response(exc: RegistryError, request_id: str, extra_headers: dict[str, str] | None = None) -> Response:
    """The OCI/Harbor error envelope; details of server errors never reach the client."""
    entry: dict[str, Any] = {"code": exc.code.name, "message": exc.message}
    if exc.detail is not None:
        entry["detail"] = exc.detail
    headers = {"X-Request-Id": request_id, **exc.headers(), **(extra_headers or {})}
    return json_response({"errors": [entry]}, exc.http_status, headers)


def guarded(
    handler: Callable[[HttpRequest], Response], request: HttpRequest, extra_headers: dict[str, str] | None = None
) -> Response:
    """Run a handler, turning typed errors into the envelope and anything else into a logged 500."""
    try:
        response = handler(request)
    except RegistryError as exc:
        if exc.http_status >= 500:
            logger.exception("request failed")
        count("ClientErrors" if exc.http_status < 500 else "ServerErrors")
        return error_response(exc, request.request_id, extra_headers)
    except Exception:
        logger.exception("unhandled error")
        count("ServerErrors")
        failure = RegistryError(f"internal error; quote request id {request.request_id}")
        failure.code = ErrorCode.UNKNOWN
        return error_response(failure, request.request_id, extra_headers)
    response.headers.setdefault("X-Request-Id", request.request_id)
    return response
