"""WSGI adapter: serves the Chalice app by turning each request into an API Gateway proxy event.

Not `chalice local`, which drops chunked bodies and mishandles HEAD.
The event is what API Gateway's REST proxy integration sends, so the app runs the same code path
as on Lambda; the body travels as raw bytes (no base64 round trip).

Beside the app, it serves the signed download URLs of the local object store (`stores/files.py`),
the part S3 plays on AWS when blob GET redirects there: GET and HEAD, one byte range at most.
With `inline_downloads`, a blob GET the app answers with a redirect to such a URL is answered with
the bytes at once (distribution's filesystem driver does the same): a pull then makes one request
per blob instead of two, which on a loaded machine is most of what a small blob costs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from io import BytesIO
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote

from chalice.app import Chalice

from chalicelib.local import bodygate
from chalicelib.stores.files import DOWNLOAD_PREFIX, DownloadRefused, FileObjectStore
from chalicelib.stores.spool import SPOOLS, TEE_PREFIX

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

    def __init__(
        self,
        app: Chalice,
        files: FileObjectStore | None = None,
        *,
        inline_downloads: bool = False,
    ) -> None:
        self._app = app
        self._files = files
        self._inline = inline_downloads and files is not None
        # Literal and single-segment routes match before greedy `{proxy+}` ones, as on API Gateway.
        routes = sorted(app.routes, key=lambda path: ("+}" in path, -path.count("/"), path.count("{"), path))
        self._routes = [(path, _route_regex(path)) for path in routes]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace") or "/"
        if self._files is not None and path.startswith(DOWNLOAD_PREFIX):
            url = f"{path[len(DOWNLOAD_PREFIX) :]}?{environ.get('QUERY_STRING', '')}"
            return self._download(environ, method, url, start_response)
        if path.startswith(TEE_PREFIX):
            return _tee(method, path[len(TEE_PREFIX) :], start_response, [])
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
        verdict = environ.pop(bodygate.ENVIRON_HEADER, None)
        if verdict == bodygate.TOO_LARGE:
            # The body gate read it off the socket without keeping it (local/bodygate.py).
            return _plain(start_response, 413, _error("SIZE_INVALID", "request body too large for this route"))
        if verdict == bodygate.UNVERIFIED and not bodygate.verified(environ.get("HTTP_AUTHORIZATION", "")):
            # Credentials that do not verify: the app answers 401 without a byte of the body.
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = BytesIO(b""), "0"
        event = self._event(environ, method, path, resource, params)
        result = self._app(event, LocalLambdaContext())
        served = self._serve_redirect(environ, method, result, start_response) if method == "GET" else None
        return served if served is not None else self._respond(result, method, start_response)

    def _serve_redirect(
        self, environ: dict[str, Any], method: str, result: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """A blob GET answered with a redirect to bytes this server holds: those bytes, at once."""
        teed = _tee_redirect(result)
        if teed is not None:  # a proxy-cache blob arriving from its upstream: streamed as it comes
            return _tee(method, teed[0], start_response, teed[1])
        redirect = _local_redirect(result) if self._inline else None
        if redirect is not None:  # serve the bytes here instead of sending the client there
            return self._download(environ, method, redirect[0], start_response, extra_headers=redirect[1])
        return None

    def _download(
        self,
        environ: dict[str, Any],
        method: str,
        url: str,
        start_response: StartResponse,
        *,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        """A signed download URL: the object's bytes (S3's GetObject, as far as clients use it)."""
        assert self._files is not None
        if method not in ("GET", "HEAD"):
            return _plain(start_response, 405, _error("UNSUPPORTED", "read only"))
        key, _, query_string = url.partition("?")
        query = parse_qs(query_string)
        try:
            body = self._files.open_signed(
                unquote(key), query.get("expires", [""])[-1], query.get("signature", [""])[-1]
            )
        except DownloadRefused as exc:
            return _plain(start_response, 403, _error("DENIED", str(exc)))
        except (FileNotFoundError, IsADirectoryError):
            return _plain(start_response, 404, _error("BLOB_UNKNOWN", "blob unknown"))
        return _send_file(environ, method, body, start_response, extra_headers or [])

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
        if isinstance(stream, BytesIO) and stream.tell() == 0:
            # waitress's own buffer: CPython hands out its bytes without copying them (a layer is
            # tens of MB; a copy costs ~1 ms per MB here, mostly page faults on fresh memory).
            body = stream.getvalue()
            body = body[: int(length)] if length.isdigit() else body
        else:
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


def _local_redirect(result: dict[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
    """For an app answer that redirects to a local download URL: that URL (without the prefix) and
    the headers to keep (the digest); None for any other answer."""
    headers = result.get("headers") or {}
    location = str(headers.get("Location", ""))
    if result["statusCode"] != 307 or not location.startswith(DOWNLOAD_PREFIX):
        return None
    kept = [(name, str(headers[name])) for name in ("Docker-Content-Digest",) if name in headers]
    return location[len(DOWNLOAD_PREFIX) :], kept


def _tee_redirect(result: dict[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
    """For an app answer that redirects to a spool (a blob streaming in from a proxy-cache
    upstream): its token and the headers to keep."""
    headers = result.get("headers") or {}
    location = str(headers.get("Location", ""))
    if result["statusCode"] != 307 or not location.startswith(TEE_PREFIX):
        return None
    kept = [(name, str(headers[name])) for name in ("Docker-Content-Digest",) if name in headers]
    return location[len(TEE_PREFIX) :], kept


def _tee(method: str, token: str, start_response: StartResponse, extra: list[tuple[str, str]]) -> Iterable[bytes]:
    """A spool's bytes as they arrive (`stores/spool.py`); a broken spool ends the response short
    of its Content-Length, so the client refuses it."""
    spool = SPOOLS.open(token)
    if spool is None or method not in ("GET", "HEAD"):
        return _plain(start_response, 404, _error("BLOB_UNKNOWN", "blob unknown"))
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(spool.size)), *extra]
    if not any(name == "Docker-Content-Digest" for name, _ in extra):
        headers.append(("Docker-Content-Digest", spool.digest))
    start_response("200 OK", headers)
    if method == "HEAD" or spool.size == 0:
        return [b""]
    return spool.chunks()


def _route_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$", re.DOTALL)


def _send_file(
    environ: dict[str, Any], method: str, body: BinaryIO, start_response: StartResponse, extra: list[tuple[str, str]]
) -> Iterable[bytes]:
    size = os.fstat(body.fileno()).st_size
    span = _byte_range(environ.get("HTTP_RANGE"), size)
    if span is None:
        body.close()
        start_response("416 Range Not Satisfiable", [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
        return [b""]
    first, last = span
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(last - first + 1)),
        ("Accept-Ranges", "bytes"),
        *extra,
    ]
    partial = (first, last) != (0, size - 1)
    if partial:
        headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
    start_response("206 Partial Content" if partial else "200 OK", headers)
    if method == "HEAD" or size == 0:
        body.close()
        return [b""]
    if hasattr(os, "posix_fadvise"):
        # Blobs are written past the page cache (O_DIRECT): start reading all of the span now, so
        # that waitress's loop, which reads the file block by block as it sends, rarely waits.
        os.posix_fadvise(body.fileno(), first, last - first + 1, os.POSIX_FADV_WILLNEED)
    body.seek(first)
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        # waitress sends the file from where it stands, as many bytes as Content-Length says
        # (with `os.sendfile` under `make serve`: local/sendfile.py).
        return wrapper(body, 1024 * 1024)  # type: ignore[no-any-return]
    return _read_span(body, last - first + 1)


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a `Range: bytes=...` header (the whole object without one);
    None when unsatisfiable. Multiple ranges are not supported: the whole object is sent, as the
    HTTP spec allows a server to do."""
    whole = (0, size - 1)  # (0, -1): an empty object
    found = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if found is None or found.group(1) == found.group(2) == "":
        return whole
    start, end = found.groups()
    if start == "":
        first, last = max(size - int(end), 0), size - 1
    else:
        first, last = int(start), min(int(end), size - 1) if end else size - 1
    if first >= size or first > last:
        return None
    return first, last


def _read_span(body: BinaryIO, length: int) -> Iterator[bytes]:
    try:
        while length > 0:
            block = body.read(min(length, 1024 * 1024))
            if not block:
                return
            length -= len(block)
            yield block
    finally:
        body.close()


def _plain(start_response: StartResponse, status: int, body: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Status')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
