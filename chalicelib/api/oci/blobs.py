"""/v2/<name>/blobs/<digest>: HEAD from DynamoDB, GET as a redirect to S3, DELETE of the link."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.core.models import Moved
from chalicelib.observability import count
from chalicelib.wiring import services


def head_blob(request: HttpRequest) -> Response:
    found = services().proxy.blob_stat(request.params["name"], request.params["digest"])
    if isinstance(found, Moved):
        return empty_response(301, {"Location": found.location})
    digest, size = found
    return Response(
        body=b"",
        status_code=200,
        headers={
            "Content-Length": str(size),
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
        },
    )


def get_blob(request: HttpRequest) -> Response:
    # In a proxy-cache project a missing blob is landed from the upstream first (services/proxy_cache.py).
    found = services().proxy.blob_download(request.params["name"], request.params["digest"])
    if isinstance(found, Moved):
        return empty_response(301, {"Location": found.location})
    digest, size, url = found
    count("BlobPulls")
    count("BlobBytesRedirected", size, "Bytes")
    return empty_response(307, {"Location": url, "Docker-Content-Digest": digest})


def delete_blob(request: HttpRequest) -> Response:
    services().blobs.delete(request.params["name"], request.params["digest"])
    return empty_response(202)
