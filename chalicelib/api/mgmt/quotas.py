"""/api/v2.0/quotas: per-project storage quotas (Harbor: the quota id is the project's)."""

from __future__ import annotations

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, int_param, listing, ok, serve
from chalicelib.core.bounds import StorageLimit
from chalicelib.errors import BadRequest
from chalicelib.services.quotas import quota_view
from chalicelib.wiring import services

bp = Blueprint(__name__)


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
    found = services().quotas.list(request.principal, ref_id)
    return listing(request, "/quotas", [quota_view(p) for p in found], sort_fields=("id",))


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
