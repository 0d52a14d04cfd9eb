"""The relay's WSGI application: one upload session URL, four methods, bodies read as they arrive.

What clients do with a session URL on another host decides the rules here:
- the capability in the path is the authorisation (containerd and docker send no Authorization to
  another host); a valid one is never answered with 401, and an Authorization header a client does
  send (podman, skopeo, oras) is accepted and not needed;
- unknown query parameters are ignored (containerd adds `ns=` and re-sorts the query);
- `Content-Range` may come with or without a `bytes ` prefix; bodies may be chunked, without
  `Content-Length`.
A capability that is forged, expired, or names another session or repository gets 404
BLOB_UPLOAD_UNKNOWN before a byte of the body is read, as an unknown session does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from chalicelib.core import capability
from chalicelib.core.ranges import content_range, range_header
from chalicelib.core.reference import validate_name
from chalicelib.errors import BlobUploadInvalid, BlobUploadUnknown, ErrorCode, RegistryError, Unsupported

if TYPE_CHECKING:
    from chalicelib.wiring import Services

StartResponse = Callable[..., Any]
log = logging.getLogger("registry.relay")

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
}


class ClientGone(BlobUploadInvalid):
    """The request body ended before its announced end (the client went away)."""


class RequestBody:
    """The request body as the upload service reads it: at most `Content-Length` bytes from the
    socket, or the chunked stream to its end; a body cut short raises `ClientGone`."""

    def __init__(self, stream: Any, length: int | None) -> None:
        self._stream = stream
        self._left = length
        self.length = length
        self.consumed = length == 0

    def read(self, size: int, /) -> bytes:
        if self._left is not None:
            size = min(size, self._left)
            if size <= 0:
                self.consumed = True
                return b""
        try:
            data: bytes = self._stream.read(size)
        except (OSError, ValueError) as exc:
            raise ClientGone("the request body ended early") from exc
        if self._left is None:
            self.consumed = not data
            return data
        if not data:
            raise ClientGone("the request body ended before Content-Length bytes")
        self._left -= len(data)
        return data


class RelayApp:
    """WSGI application serving the relay's session URLs (and `GET /health` for load balancers)."""

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        if path == "/health" and method in ("GET", "HEAD"):
            return _respond(start_response, 200, {"Content-Type": "application/json"}, b'{"status":"ok"}')
        body = RequestBody(environ["wsgi.input"], None)  # until the length is known to be valid
        try:
            body = RequestBody(environ["wsgi.input"], _body_length(environ))
            status, headers = self._serve(environ, method, path, body)
        except RegistryError as exc:
            status, headers, payload = exc.http_status, exc.headers(), _envelope(exc)
        except Exception:
            log.exception("relay request failed")
            failure = RegistryError("internal error")
            failure.code = ErrorCode.UNKNOWN
            status, headers, payload = 500, {}, _envelope(failure)
        else:
            payload = b""
        if not body.consumed:
            # The rest of the body is still on the socket: this connection cannot carry another request.
            headers["Connection"] = "close"
        if payload:
            headers["Content-Type"] = "application/json"
        return _respond(start_response, status, headers, payload)

    def _serve(self, environ: dict[str, Any], method: str, path: str, body: RequestBody) -> tuple[int, dict[str, str]]:
        parsed = capability.parse_upload_path(path)
        if parsed is None:
            raise BlobUploadUnknown("not an upload session URL")
        name, upload_id, granted = parsed
        registry = self._services()
        key = registry.relay_key
        if key is None or not capability.verify(key, granted, upload_id, name, time.time()):
            raise BlobUploadUnknown(detail={"upload": upload_id})
        validate_name(name)
        uploads = registry.uploads
        location = self._location(registry, name, upload_id)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        upload_range = content_range(environ.get("HTTP_CONTENT_RANGE"))
        if method == "PATCH":
            upload = uploads.append_stream(
                name, upload_id, body, length=body.length, content_range=upload_range, location=location
            )
            return 202, _session_headers(location, upload.id, upload.offset)
        if method == "PUT":
            digest = (query.get("digest") or [""])[-1]
            stored = uploads.finish_stream(
                name, upload_id, digest, body, length=body.length, content_range=upload_range,
                location=location,
            )  # fmt: skip
            return 201, {"Location": self._blob_location(registry, name, stored), "Docker-Content-Digest": stored}
        if method in ("GET", "HEAD"):
            upload = uploads.status(name, upload_id)
            return 204, _session_headers(location, upload.id, upload.offset)
        if method == "DELETE":
            uploads.cancel(name, upload_id)
            return 204, {}
        raise Unsupported(f"{method} is not served on an upload session")

    @staticmethod
    def _location(registry: Services, name: str, upload_id: str) -> str:
        """This session's URL with a fresh capability (a long push outlives the first one)."""
        settings = registry.settings
        assert settings.relay_url is not None and registry.relay_key is not None
        expires_at = int(time.time()) + settings.upload_ttl_seconds
        return capability.upload_url(settings.relay_url, registry.relay_key, name, upload_id, expires_at)

    @staticmethod
    def _blob_location(registry: Services, name: str, digest: str) -> str:
        base = (registry.settings.external_url or "").rstrip("/")
        return f"{base}/v2/{name}/blobs/{digest}"


def _body_length(environ: dict[str, Any]) -> int | None:
    """Content-Length; None for a chunked body; 0 for neither (HTTP/1.1: no body)."""
    if environ.get("wsgi.input_terminated"):
        return None
    length = environ.get("CONTENT_LENGTH") or ""
    if not length:
        return 0
    if not length.isdigit() or len(length) > 15:
        raise BlobUploadInvalid("malformed Content-Length")
    return int(length)


def _session_headers(location: str, upload_id: str, offset: int) -> dict[str, str]:
    return {"Location": location, "Range": range_header(offset), "Docker-Upload-UUID": upload_id}


def _envelope(exc: RegistryError) -> bytes:
    entry: dict[str, Any] = {"code": exc.code.name, "message": exc.message}
    if exc.detail is not None:
        entry["detail"] = exc.detail
    return json.dumps({"errors": [entry]}, separators=(",", ":")).encode()


def _respond(start_response: StartResponse, status: int, headers: dict[str, str], payload: bytes) -> list[bytes]:
    headers["Content-Length"] = str(len(payload))
    start_response(f"{status} {_REASONS.get(status, 'Status')}", list(headers.items()))
    return [payload]
