"""/v2/<name>/manifests/<reference>: push, pull (with content negotiation) and delete."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.observability import count
from chalicelib.wiring import services


def put_manifest(request: HttpRequest) -> Response:
    name = request.params["name"]
    manifest = services().manifests.put(name, request.params["reference"], request.body, request.header("content-type"))
    count("ManifestPushes")
    headers = {"Location": f"/v2/{name}/manifests/{manifest.digest}", "Docker-Content-Digest": manifest.digest}
    if manifest.subject:
        headers["OCI-Subject"] = manifest.subject
    return empty_response(201, headers)


def get_manifest(request: HttpRequest) -> Response:
    manifest = services().manifests.get(
        request.params["name"],
        request.params["reference"],
        _accepted(request.header("accept")),
        with_body=request.method == "GET",
    )
    if request.method == "GET":
        count("ManifestPulls")
    return Response(
        body=manifest.body if request.method == "GET" else b"",
        status_code=200,
        headers={
            "Content-Type": manifest.media_type,
            "Content-Length": str(manifest.size),
            "Docker-Content-Digest": manifest.digest,
        },
    )


def delete_manifest(request: HttpRequest) -> Response:
    services().manifests.delete(request.params["name"], request.params["reference"])
    return empty_response(202)


def _accepted(header: str | None) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in (header or "").split(",") if part.strip()]
