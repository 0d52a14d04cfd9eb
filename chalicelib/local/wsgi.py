"""WSGI adapter: serves the Chalice app by turning each request into an API Gateway proxy event.

Not `chalice local`, which drops chunked bodies and mishandles HEAD (reference/stack.md section 2).
The event is what API Gateway's REST proxy integration sends, so the app runs the same code path
as on Lambda; the body travels as raw bytes (no base64 round trip).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from chalice.app import Chalice

StartResponse = Callable[..., Any]

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class LocalLambdaContext:
    """The attributes of a Lambda context that the app and Powertools read."""

    function_name = "registry-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:registry-local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


class ChaliceWSGI:
    """A WSGI application wrapping a Chalice app's REST routes."""

    def __init__(self, app: Chalice, on_write: Callable[[], None] | None = None) -> None:
        self._app = app
        self._on_write = on_write
        # Literal and single-segment routes match before greedy `{proxy+}` ones, as on API Gateway.
        routes = sorted(app.routes, key=lambda path: ("+}" in path, -path.count("/"), path.count("{"), path))
        self._routes = [(path, _route_regex(path)) for path in routes]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace") or "/"
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        matched = self._match(path)
        if matched is None or method not in self._app.routes[matched[0]]:
            return _plain(
                start_response,
                404 if matched is None else 405,
                b'{"errors":[{"code":"UNSUPPORTED","message":"unknown endpoint"}]}',
            )
        resource, params = matched
        event = self._event(environ, method, path, resource, params)
        result = self._app(event, LocalLambdaContext())
        if method not in ("GET", "HEAD") and self._on_write is not None:
            self._on_write()
        return self._respond(result, method, start_response)

    def _match(self, path: str) -> tuple[str, dict[str, str]] | None:
        for resource, regex in self._routes:
            found = regex.fullmatch(path)
            if found:
                return resource, found.groupdict()
        return None

    @staticmethod
    def _event(
        environ: dict[str, Any], method: str, path: str, resource: str, params: dict[str, str]
    ) -> dict[str, Any]:
        length = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        body = stream.read(int(length)) if length.isdigit() else stream.read()
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").title()] = value
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        request_id = uuid.uuid4().hex
        return {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": method,
                "path": path,
                "stage": "local",
                "requestId": request_id,
                "identity": {"sourceIp": environ.get("REMOTE_ADDR", "")},
            },
            "body": body,
            "isBase64Encoded": False,
        }

    @staticmethod
    def _respond(result: dict[str, Any], method: str, start_response: StartResponse) -> Iterable[bytes]:
        status = int(result["statusCode"])
        body = result.get("body") or b""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body)
        elif isinstance(body, str):
            body = body.encode()
        headers: dict[str, str] = dict(result.get("headers") or {})
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[key] = ", ".join(values)
        if method == "HEAD":
            # A HEAD answer keeps the handler's Content-Length (the size of what GET would send).
            headers.setdefault("Content-Length", str(len(body)))
            body = b""
        else:
            headers["Content-Length"] = str(len(body))
        start_response(f"{status} {_REASONS.get(status, 'Status')}", list(headers.items()))
        return [body]


def _route_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$", re.DOTALL)


def _plain(start_response: StartResponse, status: int, body: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Status')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
