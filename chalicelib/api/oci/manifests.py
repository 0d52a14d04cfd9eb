"""/v2/<name>/manifests/<reference>: push, pull (with content negotiation) and delete."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.auth.rbac import PUSH, SCANNER_PULL
from chalicelib.core.models import Moved
from chalicelib.core.reference import project_of
from chalicelib.observability import count
from chalicelib.wiring import services


def put_manifest(request: HttpRequest) -> Response:
    name = request.params["name"]
    services().proxy.refuse_push(name)  # a proxy-cache project is read-only (Harbor: 403 DENIED)
    manifest = services().manifests.put(name, request.params["reference"], request.body, request.header("content-type"))
    count("ManifestPushes")
    headers = {"Location": f"/v2/{name}/manifests/{manifest.digest}", "Docker-Content-Digest": manifest.digest}
    if manifest.subject:
        headers["OCI-Subject"] = manifest.subject
    return empty_response(201, headers)


def get_manifest(request: HttpRequest) -> Response:
    registry = services()
    name, reference = request.params["name"], request.params["reference"]
    tag = None if ":" in reference else reference

    gate = registry.gate.pull(name, tag, lambda: _exempt(request, name))
    # In a proxy-cache project the pull goes through to the upstream (services/proxy_cache.py).
    manifest = registry.proxy.get_manifest(
        name, reference, _accepted(request.header("accept")), with_body=request.method == "GET", gate=gate
    )
    if isinstance(manifest, Moved):
        return empty_response(301, {"Location": manifest.location})
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


def _exempt(request: HttpRequest, repository: str) -> bool:
    """Harbor's pulls the vulnerability policy lets through: the scanner's robot (`scanner-pull`),
    and a signing client (cosign, notation) that may also push. Decided from the caller's token
    or robot grants alone (no AWS call)."""
    if request.claims is not None:
        actions = set(request.claims.actions_for("repository", repository))
    elif request.principal.kind == "robot":
        project = project_of(repository)
        actions = {word for word, permission in (("scanner-pull", SCANNER_PULL), ("push", PUSH))
                   if request.principal.robot_allows(project, permission)}  # fmt: skip
    else:
        return False
    if "scanner-pull" in actions:
        return True
    agent = (request.header("user-agent") or "").lower()
    return "push" in actions and ("cosign" in agent or "notation" in agent)


def _accepted(header: str | None) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in (header or "").split(",") if part.strip()]
