"""/v2/<name>/blobs/<digest>: HEAD from DynamoDB, GET as a redirect to S3, DELETE of the link."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.observability import count
from chalicelib.wiring import services


def head_blob(request: HttpRequest) -> Response:
    digest, size = services().blobs.stat(request.params["name"], request.params["digest"])
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
    digest, size, url = services().blobs.download_url(request.params["name"], request.params["digest"])
    count("BlobPulls")
    count("BlobBytesRedirected", size, "Bytes")
    return empty_response(307, {"Location": url, "Docker-Content-Digest": digest})


def delete_blob(request: HttpRequest) -> Response:
    services().blobs.delete(request.params["name"], request.params["digest"])
    return empty_response(202)
