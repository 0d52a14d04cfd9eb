"""/api/v2.0/projects: projects, their metadata, summary and deletability."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, iso, listing, ok, raw_json, serve
from chalicelib.api.mgmt.names import is_resource_name
from chalicelib.api.mgmt.query import query_bool
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import Project as WireProject
from chalicelib.api.mgmt.wire.models import ProjectDeletable, ProjectSummary
from chalicelib.core.bounds import Epoch, Id, StorageLimit
from chalicelib.core.identity import Member, Project
from chalicelib.errors import BadRequest, NotFound, Unauthorized
from chalicelib.wiring import services

bp = Blueprint(__name__)


class CveAllowlist(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Harbor clients echo id/project_id/creation_time back

    items: list[dict[str, str]] = Field(default_factory=list, max_length=1000)
    expires_at: Epoch | None = None


class ProjectReq(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_name: str | None = Field(default=None, max_length=255)
    public: bool | None = None  # deprecated by Harbor; folded into metadata.public
    metadata: dict[str, Any] | None = None
    cve_allowlist: CveAllowlist | None = None
    storage_limit: StorageLimit | None = None
    registry_id: Id | None = None


def project_view(project: Project, member: Member | None, repo_count: int) -> dict[str, Any]:
    """Harbor's project shape (its omit-empty fields left out); `member` is the caller's membership."""
    role = int(member.role) if member else None
    return shape(WireProject, {
        "project_id": project.project_id,
        "name": project.name,
        "owner_id": project.owner_id,
        "owner_name": project.owner_name,
        "metadata": project.metadata,
        "cve_allowlist": {"project_id": project.project_id, **project.cve_allowlist,
                          "creation_time": iso(project.created_at), "update_time": iso(project.updated_at)},
        "current_user_role_id": role or 0,
        "current_user_role_ids": [role] if role else [],
        "togglable": True,
        "repo_count": repo_count,
        "creation_time": iso(project.created_at),
        "update_time": iso(project.updated_at),
    })  # fmt: skip


def target(request: HttpRequest) -> Project:
    value = request.params["project"]
    return services().projects.resolve(value, is_resource_name(value, request.header("x-is-resource-name")))


@bp.route(f"{API}/projects", methods=["GET", "HEAD", "POST"], content_types=["*/*"])
def projects() -> Response:
    method = bp.current_request.method
    return serve(bp, {"GET": _list, "HEAD": _head, "POST": _create}[method])


def _list(request: HttpRequest) -> Response:
    registry = services()
    visible = registry.projects.visible(request.principal)
    name, owner = request.arg("name"), request.arg("owner")
    public = None if request.arg("public") in (None, "") else query_bool("public", request.arg("public"), default=False)
    query_bool("with_detail", request.arg("with_detail"), default=True)  # every view is detailed; the value is checked
    roles = registry.projects.memberships(request.principal, visible)
    chosen = {
        project.name: project
        for project in visible
        if not ((name and name not in project.name) or (owner and owner != project.owner_name))
        and (public is None or project.public == public)
    }
    records = [
        {
            "name": p.name,
            "project_id": p.project_id,
            "owner_name": p.owner_name,
            "public": p.public,
            "creation_time": iso(p.created_at),
            "update_time": iso(p.updated_at),
        }
        for p in chosen.values()
    ]

    def views(page: list[dict[str, Any]]) -> list[dict[str, Any]]:  # repo counts for the page only
        return [project_view(chosen[r["name"]], roles.get(r["name"]), registry.projects.repository_count(r["name"]))
                for r in page]  # fmt: skip

    return listing(request, "/projects", records,
                   q_fields={"name": str, "project_id": int, "owner_name": str, "public": bool},
                   sort_fields=("name", "project_id", "creation_time", "update_time"), fill=views)  # fmt: skip


def _head(request: HttpRequest) -> Response:
    """Whether a project name is taken, for logged-in callers only (as Harbor): an anonymous
    answer would list private projects' names one guess at a time."""
    if not request.principal.authenticated:
        raise Unauthorized("log in to look up project names")
    name = request.arg("project_name")
    if not name:
        raise BadRequest("project_name is required")
    if not services().projects.exists(name):
        raise NotFound(f"project {name} not found")
    return ok()


def _create(request: HttpRequest) -> Response:
    req = body(request, ProjectReq)
    if not req.project_name:
        raise BadRequest("project_name is required")
    if req.registry_id is not None:
        raise BadRequest("proxy-cache projects (registry_id) are not supported yet")
    metadata = dict(req.metadata or {})
    if req.public is not None:
        metadata.setdefault("public", str(req.public).lower())
    allowlist = req.cve_allowlist.model_dump() if req.cve_allowlist else {}
    project = services().projects.create(request.principal, req.project_name, metadata, allowlist,
                                         req.storage_limit)  # fmt: skip
    location = project.name if request.header("x-resource-name-in-location") == "true" else project.project_id
    return created(f"{API}/projects/{location}")


@bp.route(f"{API}/projects/{{project}}", methods=["GET", "PUT", "DELETE", "HEAD"], content_types=["*/*"])
def project(project: str) -> Response:
    method = bp.current_request.method
    handler = {"GET": _get, "HEAD": _get, "PUT": _update, "DELETE": _delete}[method]
    return serve(bp, handler, project=project)


def _get(request: HttpRequest) -> Response:
    found = target(request)
    registry = services()
    registry.projects.authorize(request.principal, found, "project", "read")
    member = registry.projects.memberships(request.principal, [found]).get(found.name)
    return json_response(project_view(found, member, registry.projects.repository_count(found.name)))


def _update(request: HttpRequest) -> Response:
    req = body(request, ProjectReq)
    found = target(request)
    metadata = dict(req.metadata) if req.metadata is not None else None
    if req.public is not None:
        metadata = {**(metadata or {}), "public": str(req.public).lower()}
    allowlist = req.cve_allowlist.model_dump() if req.cve_allowlist else None
    services().projects.update(request.principal, found, metadata, allowlist, req.storage_limit)
    return ok()


def _delete(request: HttpRequest) -> Response:
    services().projects.delete(request.principal, target(request))
    return ok()


@bp.route(f"{API}/projects/{{project}}/_deletable", methods=["GET"])
def deletable(project: str) -> Response:
    return serve(bp, _deletable, project=project)


def _deletable(request: HttpRequest) -> Response:
    ok_, message = services().projects.deletable(request.principal, target(request))
    return json_response(shape(ProjectDeletable, {"deletable": ok_, "message": message}))


@bp.route(f"{API}/projects/{{project}}/summary", methods=["GET"])
def summary(project: str) -> Response:
    return serve(bp, _summary, project=project)


def _summary(request: HttpRequest) -> Response:
    return json_response(shape(ProjectSummary, services().projects.summary(request.principal, target(request))))


@bp.route(f"{API}/projects/{{project}}/metadatas", methods=["GET", "POST"], content_types=["*/*"])
def metadatas(project: str) -> Response:
    return serve(bp, _metadatas, project=project)


def _metadatas(request: HttpRequest) -> Response:
    found = target(request)
    if request.method == "GET":
        services().projects.authorize(request.principal, found, "metadata", "read")
        return json_response(found.metadata)
    values = raw_json(request)
    if not isinstance(values, dict) or not values:
        raise BadRequest("body must be a non-empty object of metadata keys")
    services().projects.set_metadata(request.principal, found, values)
    return ok()


@bp.route(f"{API}/projects/{{project}}/metadatas/{{meta_name}}", methods=["GET", "PUT", "DELETE"],
          content_types=["*/*"])  # fmt: skip
def metadata(project: str, meta_name: str) -> Response:
    return serve(bp, _metadata, project=project, meta_name=meta_name)


def _metadata(request: HttpRequest) -> Response:
    found, key = target(request), request.params["meta_name"]
    if request.method == "GET":
        services().projects.authorize(request.principal, found, "metadata", "read")
        if key not in found.metadata:
            raise NotFound(f"metadata {key} not found")
        return json_response({key: found.metadata[key]})
    if request.method == "DELETE":
        services().projects.delete_metadata(request.principal, found, key)
        return ok()
    values = raw_json(request)
    if not isinstance(values, dict) or set(values) != {key}:
        raise BadRequest(f"body must be {{{key!r}: value}}")
    services().projects.set_metadata(request.principal, found, values)
    return ok()
