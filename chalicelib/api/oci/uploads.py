"""/v2/<name>/blobs/uploads/: sessions, chunks, monolithic pushes, mounts, status and cancel."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.api.oci._auth import allowed
from chalicelib.api.oci._http import blob_location, upload_location
from chalicelib.auth.rbac import PULL
from chalicelib.core import capability
from chalicelib.core.models import Upload
from chalicelib.core.ranges import content_range, range_header
from chalicelib.core.reference import validate_name
from chalicelib.errors import NameInvalid
from chalicelib.observability import count
from chalicelib.wiring import services


def start_upload(request: HttpRequest) -> Response:
    name = request.params["name"]
    registry = services()
    registry.proxy.refuse_push(name)  # a proxy-cache project is read-only (Harbor: 403 DENIED)
    mount, digest, source = request.arg("mount"), request.arg("digest"), request.arg("from")
    # Mounting needs pull on the source too; without it the client gets a plain upload session.
    readable = source is None or (_valid_name(source) and allowed(request, source, PULL))
    if mount and readable and registry.uploads.mount(name, mount, source):
        return _created(name, mount)
    if digest:
        stored = registry.uploads.put_monolithic(name, digest, request.body)
        count("BytesUploaded", len(request.body), "Bytes")
        return _created(name, stored)
    upload = registry.uploads.start(name, request.arg("digest-algorithm") or "sha256")
    return _session(name, upload, 202)


def _valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except NameInvalid:
        return False
    return True


def patch_upload(request: HttpRequest) -> Response:
    name, upload_id = request.params["name"], request.params["upload"]
    upload = services().uploads.append(
        name,
        upload_id,
        request.body,
        content_range=content_range(request.header("content-range")),
        location=upload_location(name, upload_id),
    )
    count("BytesUploaded", len(request.body), "Bytes")
    return _session(name, upload, 202)


def finish_upload(request: HttpRequest) -> Response:
    name, upload_id = request.params["name"], request.params["upload"]
    digest = request.arg("digest") or ""
    stored = services().uploads.finish(
        name,
        upload_id,
        digest,
        request.body,
        content_range=content_range(request.header("content-range")),
        location=upload_location(name, upload_id),
    )
    count("BytesUploaded", len(request.body), "Bytes")
    return _created(name, stored)


def upload_status(request: HttpRequest) -> Response:
    name = request.params["name"]
    return _session(name, services().uploads.status(name, request.params["upload"]), 204)


def cancel_upload(request: HttpRequest) -> Response:
    services().uploads.cancel(request.params["name"], request.params["upload"])
    return empty_response(204)


def _session(name: str, upload: Upload, status: int) -> Response:
    registry = services()
    settings = registry.settings
    headers = {
        "Location": _session_location(name, upload),
        "Range": range_header(upload.offset),
        "Docker-Upload-UUID": upload.id,
    }
    if settings.body_cap_enabled and registry.relay_key is None:
        headers["OCI-Chunk-Max-Length"] = str(settings.max_body_bytes)
    return empty_response(status, headers)


def _session_location(name: str, upload: Upload) -> str:
    """The session URL: on the relay when one is configured (bodies of any size, a capability in
    the path because clients drop Authorization on another host), else on this app."""
    registry = services()
    settings = registry.settings
    if settings.relay_url is None or registry.relay_key is None:
        return upload_location(name, upload.id)
    expires_at = int(registry.clock()) + settings.upload_ttl_seconds
    return capability.upload_url(settings.relay_url, registry.relay_key, name, upload.id, expires_at)


def _created(name: str, digest: str) -> Response:
    return empty_response(201, {"Location": blob_location(name, digest), "Docker-Content-Digest": digest})
