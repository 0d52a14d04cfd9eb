"""/api/v2.0/repositories and /projects/{project}/repositories: Harbor's repository catalogue.

Repository names in paths are double-encoded by Harbor clients (`team%252Fapp`); `{project}` is a
project name here, as in Harbor's swagger (no numeric ids on these paths).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, listing, ok, serve
from chalicelib.api.mgmt.names import decode_repository_name
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import Repository as WireRepository
from chalicelib.core.bounds import Id
from chalicelib.core.catalog import Repository, harbor_time
from chalicelib.core.identity import Project
from chalicelib.wiring import services

bp = Blueprint(__name__)
_Q_FIELDS = {"name": str, "project_id": int}
_SORT_FIELDS = ("name", "creation_time", "update_time", "pull_count")


class RepositoryReq(BaseModel):
    """PUT body: only the description changes; the other fields of a GET may be echoed back."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=65_536)
    id: Id | None = None
    project_id: Id | None = None
    name: str | None = Field(default=None, max_length=512)
    artifact_count: Id | None = None
    pull_count: Id | None = None
    creation_time: str | None = None
    update_time: str | None = None


def repository_view(repository: Repository, project_id: int) -> dict[str, Any]:
    """Harbor's Repository model without `id` and `artifact_count` (added per page, see `_listing`)."""
    return {
        "project_id": project_id,
        "name": repository.name,
        "description": repository.description,
        "pull_count": repository.pull_count,
        "creation_time": harbor_time(repository.created_at),
        "update_time": harbor_time(repository.updated_at),
    }


@bp.route(f"{API}/repositories", methods=["GET"])
def all_repositories() -> Response:
    return serve(bp, _list_all)


def _list_all(request: HttpRequest) -> Response:
    found = services().repositories.visible(request.principal)
    return _listing(request, "/repositories", [(r, p.project_id) for r, p in found])


@bp.route(f"{API}/projects/{{project}}/repositories", methods=["GET"])
def project_repositories(project: str) -> Response:
    return serve(bp, _list_project, project=project)


def _list_project(request: HttpRequest) -> Response:
    project = _project(request)
    found = services().repositories.in_project(request.principal, project)
    path = f"/projects/{quote(project.name)}/repositories"
    return _listing(request, path, [(r, project.project_id) for r in found])


def _listing(request: HttpRequest, path: str, found: list[tuple[Repository, int]]) -> Response:
    """Filter, sort and page on the stored fields; ids and artifact counts only for the page."""
    registry = services().repositories
    by_name = {r.name: r for r, _ in found}

    def complete(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        named = registry.with_ids([by_name[record["name"]] for record in page])
        counts = registry.artifact_counts([r.name for r in named])
        return [
            shape(WireRepository, {"id": r.repository_id, **record, "artifact_count": counts[r.name]})
            for r, record in zip(named, page, strict=True)
        ]

    records = [repository_view(r, project_id) for r, project_id in found]
    if not request.arg("sort"):  # Harbor's default order: newest first
        records.sort(key=lambda r: (r["creation_time"], r["name"]), reverse=True)
    return listing(request, path, records, q_fields=_Q_FIELDS, sort_fields=_SORT_FIELDS, fill=complete)


@bp.route(f"{API}/projects/{{project}}/repositories/{{repository}}", methods=["GET", "PUT", "DELETE"],
          content_types=["*/*"])  # fmt: skip
def repository(project: str, repository: str) -> Response:
    return serve(bp, _repository, project=project, repository=repository)


def _repository(request: HttpRequest) -> Response:
    project = _project(request)
    name = decode_repository_name(request.params["repository"])
    registry = services().repositories
    if request.method == "PUT":
        req = body(request, RepositoryReq)
        registry.describe(request.principal, project, name, req.description or "")
        return ok()
    if request.method == "DELETE":
        registry.delete(request.principal, project, name)
        return ok()
    found = registry.get(request.principal, project, name)
    view = {"id": found.repository_id, **repository_view(found, project.project_id)}
    view["artifact_count"] = registry.artifact_count(found.name)
    return json_response(shape(WireRepository, view))


def _project(request: HttpRequest) -> Project:
    return services().projects.resolve(request.params["project"], force_name=True)
