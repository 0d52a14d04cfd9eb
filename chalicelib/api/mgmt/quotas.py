"""/api/v2.0/quotas: per-project storage quotas (Harbor: the quota id is the project's).

Sorting follows Harbor's quota DAO: `creation_time`, `update_time`, `hard.storage` and
`used.storage`, each with `-` for descending; an unlimited (-1) limit sorts as the largest; with no
`sort` the newest quota comes first.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, int_param, iso, listing, ok, serve
from chalicelib.api.mgmt.paging import parse_sort
from chalicelib.core.bounds import StorageLimit
from chalicelib.core.identity import UNLIMITED, Project
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)

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
    model_config = ConfigDict(extra="forbid")

    storage: StorageLimit


class QuotaUpdateReq(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hard: Hard


@bp.route(f"{API}/quotas", methods=["GET"])
def quotas() -> Response:
    return serve(bp, _list)


def _list(request: HttpRequest) -> Response:
    reference, reference_id = request.arg("reference"), request.arg("reference_id")
    if reference not in (None, "project"):
        raise BadRequest("reference must be 'project'")
    ref_id = int_param(reference_id, "reference_id") if reference_id is not None else None
    spec = parse_sort(request.arg("sort"), (*_SORT_KEYS, "id")) or [("creation_time", True)]
    found = services().quotas.list(request.principal, ref_id)
    for name, descending in reversed(spec):
        found = sorted(found, key=_SORT_KEYS.get(name, lambda p: p.project_id), reverse=descending)
    return listing(request, "/quotas", [quota_view(p) for p in found])


@bp.route(f"{API}/quotas/{{quota_id}}", methods=["GET", "PUT"], content_types=["*/*"])
def quota(quota_id: str) -> Response:
    return serve(bp, _quota, quota_id=quota_id)


def _quota(request: HttpRequest) -> Response:
    quota_id = int_param(request.params["quota_id"], "quota_id")
    registry = services()
    if request.method == "GET":
        return json_response(quota_view(registry.quotas.get(request.principal, quota_id)))
    registry.quotas.set_limit(request.principal, quota_id, body(request, QuotaUpdateReq).hard.storage)
    return ok()
