"""/api/v2.0/repositories and /projects/{project}/repositories: Harbor's repository catalogue.

Repository names in paths are double-encoded by Harbor clients (`team%252Fapp`); `{project}` is a
project name here, as in Harbor's swagger (no numeric ids on these paths).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chalice.app import Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import listing
from chalicelib.api.mgmt._route import Routes, project_named_in_path
from chalicelib.api.mgmt.names import decode_repository_name
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import Id
from chalicelib.core.catalog import Repository, harbor_time
from chalicelib.core.identity import Project
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_Q_FIELDS = {"name": str, "project_id": int}
_SORT_FIELDS = ("name", "creation_time", "update_time", "pull_count")


class RepositoryReq(BaseModel):
    """PUT body: only the description changes; the other fields of a GET may be echoed back."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

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


@routes.get("/repositories")
def all_repositories(request: HttpRequest) -> Response:
    """The repositories of every project the caller may read."""
    found = services().repositories.visible(request.principal)
    return _listing(request, "/repositories", [(r, p.project_id) for r, p in found])


@routes.get("/projects/{project}/repositories", locate=project_named_in_path)
def project_repositories(request: HttpRequest, project: Project) -> Response:
    found = services().repositories.in_project(project)
    path = f"/projects/{quote(project.name)}/repositories"
    return _listing(request, path, [(r, project.project_id) for r in found])


def _listing(request: HttpRequest, path: str, found: list[tuple[Repository, int]]) -> Response:
    """Filter, sort and page on the stored fields; ids and artifact counts only for the page."""
    registry = services().repositories
    by_name = {r.name: r for r, _ in found}

    def complete(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from chalicelib.api.mgmt.wire.models import Repository as WireRepository  # noqa: PLC0415 (response models load on first use)

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


_REPO = "/projects/{project}/repositories/{repository}"


def _name(request: HttpRequest) -> str:
    return decode_repository_name(request.params["repository"])


@routes.get(_REPO, locate=project_named_in_path)
def get_repository(request: HttpRequest, project: Project) -> dict[str, Any]:
    registry = services().repositories
    found = registry.get(project, _name(request))
    view = {"id": found.repository_id, **repository_view(found, project.project_id)}
    return {**view, "artifact_count": registry.artifact_count(found.name)}


@routes.put(_REPO, body=RepositoryReq, locate=project_named_in_path)
def describe_repository(request: HttpRequest, body: RepositoryReq, project: Project) -> None:
    services().repositories.describe(project, _name(request), body.description or "")


@routes.delete(_REPO, locate=project_named_in_path)
def delete_repository(request: HttpRequest, project: Project) -> None:
    services().repositories.delete(project, _name(request))
