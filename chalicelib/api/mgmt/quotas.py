"""/api/v2.0/quotas: per-project storage quotas (Harbor: the quota id is the project's).

Sorting follows Harbor's quota DAO: `creation_time`, `update_time`, `hard.storage` and
`used.storage`, each with `-` for descending; an unlimited (-1) limit sorts as the largest; with no
`sort` the newest quota comes first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso
from chalicelib.api.mgmt._route import Page, Routes
from chalicelib.api.mgmt.paging import parse_sort
from chalicelib.core.bounds import StorageLimit
from chalicelib.core.identity import UNLIMITED, Project
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint

_SORT_KEYS = {
    "creation_time": lambda p: p.created_at,
    "update_time": lambda p: p.updated_at,
    "hard.storage": lambda p: (1, 0) if p.storage_limit == UNLIMITED else (0, p.storage_limit),
    "used.storage": lambda p: p.storage_used,
}


def quota_view(project: Project) -> dict[str, Any]:
    return {
        "id": project.project_id,
        "ref": {"id": project.project_id, "name": project.name, "owner_name": project.owner_name},
        "hard": {"storage": project.storage_limit},
        "used": {"storage": project.storage_used},
        "creation_time": iso(project.created_at),
        "update_time": iso(project.updated_at),
    }


class Hard(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    storage: StorageLimit


class QuotaUpdateReq(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    hard: Hard


def _referenced(request: HttpRequest) -> Project | None:
    """The project a list is filtered to (`reference=project&reference_id=<id>`), if any."""
    reference, reference_id = request.arg("reference"), request.arg("reference_id")
    if reference not in (None, "project"):
        raise BadRequest("reference must be 'project'")
    if reference_id is None:
        return None
    return services().quotas.get(int_param(reference_id, "reference_id"))


def _quota(request: HttpRequest) -> Project:
    return services().quotas.get(int_param(request.params["quota_id"], "quota_id"))


@routes.get("/quotas", locate=_referenced)
def list_quotas(request: HttpRequest, project: Project | None) -> Page:
    spec = parse_sort(request.arg("sort"), (*_SORT_KEYS, "id")) or [("creation_time", True)]
    found = [project] if project is not None else services().quotas.list(request.principal)
    for name, descending in reversed(spec):
        found = sorted(found, key=_SORT_KEYS.get(name, lambda p: p.project_id), reverse=descending)
    return Page([quota_view(p) for p in found])


@routes.get("/quotas/{quota_id}", locate=_quota)
def get_quota(request: HttpRequest, project: Project) -> dict[str, Any]:
    return quota_view(project)


@routes.put("/quotas/{quota_id}", body=QuotaUpdateReq)
def update_quota(request: HttpRequest, body: QuotaUpdateReq) -> None:
    services().quotas.set_limit(int_param(request.params["quota_id"], "quota_id"), body.hard.storage)
