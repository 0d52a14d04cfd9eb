"""/api/v2.0/projects: projects, their metadata, summary and deletability."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import iso, raw_json
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.query import query_bool
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import Epoch, Id, StorageLimit
from chalicelib.core.identity import Member, Project
from chalicelib.errors import BadRequest, NotFound
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


class CveAllowlist(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)  # Harbor clients echo id/project_id/creation_time back

    items: list[dict[str, str]] = Field(default_factory=list, max_length=1000)
    expires_at: Epoch | None = None


class ProjectReq(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    project_name: str | None = Field(default=None, max_length=255)
    public: bool | None = None  # deprecated by Harbor; folded into metadata.public
    metadata: dict[str, Any] | None = None
    cve_allowlist: CveAllowlist | None = None
    storage_limit: StorageLimit | None = None
    registry_id: Id | None = None


def project_view(project: Project, member: Member | None, repo_count: int) -> dict[str, Any]:
    """Harbor's project shape (its omit-empty fields left out); `member` is the caller's membership."""
    from chalicelib.api.mgmt.wire.models import Project as WireProject  # noqa: PLC0415 (response models load on first use)

    role = int(member.role) if member else None
    return shape(WireProject, {
        "project_id": project.project_id,
        "name": project.name,
        "owner_id": project.owner_id,
        "owner_name": project.owner_name,
        "registry_id": project.registry_id,
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


@routes.get("/projects")
def list_projects(request: HttpRequest) -> Page:
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

    return Page(records, q_fields={"name": str, "project_id": int, "owner_name": str, "public": bool},
                sort_fields=("name", "project_id", "creation_time", "update_time"), fill=views)  # fmt: skip


@routes.head("/projects")
def project_name_taken(request: HttpRequest) -> None:
    """Whether a project name is taken, for logged-in callers only (as Harbor): an anonymous
    answer would list private projects' names one guess at a time."""
    name = request.arg("project_name")
    if not name:
        raise BadRequest("project_name is required")
    if not services().projects.exists(name):
        raise NotFound(f"project {name} not found")


@routes.post("/projects", body=ProjectReq)
def create_project(request: HttpRequest, body: ProjectReq) -> Created:
    if not body.project_name:
        raise BadRequest("project_name is required")
    metadata = dict(body.metadata or {})
    if body.public is not None:
        metadata.setdefault("public", str(body.public).lower())
    allowlist = body.cve_allowlist.model_dump() if body.cve_allowlist else {}
    project = services().projects.create(request.principal, body.project_name, metadata, allowlist,
                                         body.storage_limit, registry_id=body.registry_id)  # fmt: skip
    location = project.name if request.header("x-resource-name-in-location") == "true" else project.project_id
    return Created(f"/projects/{location}")


_P = "/projects/{project}"


def _with_caller_role(request: HttpRequest, project: Project) -> dict[str, Any]:
    registry = services()
    member = registry.projects.memberships(request.principal, [project]).get(project.name)
    return project_view(project, member, registry.projects.repository_count(project.name))


@routes.get(_P)
def get_project(request: HttpRequest, project: Project) -> dict[str, Any]:
    return _with_caller_role(request, project)


@routes.head(_P)
def head_project(request: HttpRequest, project: Project) -> dict[str, Any]:
    return _with_caller_role(request, project)


@routes.put(_P, body=ProjectReq)
def update_project(request: HttpRequest, body: ProjectReq, project: Project) -> None:
    metadata = dict(body.metadata) if body.metadata is not None else None
    if body.public is not None:
        metadata = {**(metadata or {}), "public": str(body.public).lower()}
    allowlist = body.cve_allowlist.model_dump() if body.cve_allowlist else None
    services().projects.update(request.principal, project, metadata, allowlist, body.storage_limit)


@routes.delete(_P)
def delete_project(request: HttpRequest, project: Project) -> None:
    services().projects.delete(project)


@routes.get(f"{_P}/_deletable")
def project_deletable(request: HttpRequest, project: Project) -> dict[str, Any]:
    deletable, message = services().projects.deletable(project)
    return {"deletable": deletable, "message": message}


@routes.get(f"{_P}/summary")
def project_summary(request: HttpRequest, project: Project) -> dict[str, Any]:
    return services().projects.summary(project)


@routes.get(f"{_P}/metadatas")
def list_metadata(request: HttpRequest, project: Project) -> dict[str, Any]:
    return dict(project.metadata)


@routes.post(f"{_P}/metadatas")
def add_metadata(request: HttpRequest, project: Project) -> None:
    values = raw_json(request)
    if not isinstance(values, dict) or not values:
        raise BadRequest("body must be a non-empty object of metadata keys")
    services().projects.set_metadata(project, values)


@routes.get(f"{_P}/metadatas/{{meta_name}}")
def get_metadata(request: HttpRequest, project: Project) -> dict[str, Any]:
    key = request.params["meta_name"]
    if key not in project.metadata:
        raise NotFound(f"metadata {key} not found")
    return {key: project.metadata[key]}


@routes.put(f"{_P}/metadatas/{{meta_name}}")
def update_metadata(request: HttpRequest, project: Project) -> None:
    key, values = request.params["meta_name"], raw_json(request)
    if not isinstance(values, dict) or set(values) != {key}:
        raise BadRequest(f"body must be {{{key!r}: value}}")
    services().projects.set_metadata(project, values)


@routes.delete(f"{_P}/metadatas/{{meta_name}}")
def delete_metadata(request: HttpRequest, project: Project) -> None:
    services().projects.delete_metadata(project, request.params["meta_name"])
