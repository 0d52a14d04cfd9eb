"""/api/v2.0/labels and the label sub-resource of artifacts (attach, detach)."""

from __future__ import annotations

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, int_param, listing, ok, serve
from chalicelib.api.mgmt.names import decode_repository_name
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import Label as WireLabel
from chalicelib.core.bounds import Id
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)


class LabelReq(BaseModel):
    """Harbor's Label model as a request: what GET returned may be sent back (read-only fields are
    ignored); lengths beyond these bounds are rejected before any rule runs."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=1024)
    description: str | None = Field(default=None, max_length=65_536)
    color: str | None = Field(default=None, max_length=1024)
    scope: str | None = Field(default=None, max_length=8)
    project_id: int | None = Field(default=None, ge=0, le=2**53)
    id: Id | None = None
    creation_time: str | None = None
    update_time: str | None = None
    deleted: bool | None = None


@bp.route(f"{API}/labels", methods=["GET", "POST"], content_types=["*/*"])
def labels() -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list)


def _list(request: HttpRequest) -> Response:
    raw_project = request.arg("project_id")
    project_id = int_param(raw_project, "project_id") if raw_project else None
    found = services().labels.in_scope(request.principal, request.arg("scope") or "g", project_id)
    name = request.arg("name")
    records = [shape(WireLabel, label.harbor_json()) for label in found if not name or name in label.name]
    return listing(request, "/labels", records, q_fields={"name": str, "id": int},
                   sort_fields=("name", "id", "creation_time", "update_time"))  # fmt: skip


def _create(request: HttpRequest) -> Response:
    req = body(request, LabelReq)
    if req.name is None:
        raise BadRequest("name is required")
    label = services().labels.create(request.principal, req.name, scope=req.scope or "g", project_id=req.project_id,
                                     description=req.description or "", color=req.color or "")  # fmt: skip
    return created(f"{API}/labels/{label.label_id}")


@bp.route(f"{API}/labels/{{label_id}}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
def label(label_id: str) -> Response:
    return serve(bp, _label, label_id=label_id)


def _label(request: HttpRequest) -> Response:
    label_id = int_param(request.params["label_id"], "label_id")
    registry = services()
    if request.method == "GET":
        return json_response(shape(WireLabel, registry.labels.get(request.principal, label_id).harbor_json()))
    if request.method == "PUT":
        req = body(request, LabelReq)
        registry.labels.update(request.principal, label_id, req.name, req.description, req.color)
        return ok()
    registry.labels.delete(request.principal, label_id)
    return ok()


_ARTIFACT = f"{API}/projects/{{project}}/repositories/{{repository}}/artifacts/{{reference}}"


class AttachReq(BaseModel):
    """`POST .../labels` takes a Label; only its `id` matters."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(ge=1, le=2**53)


@bp.route(f"{_ARTIFACT}/labels", methods=["POST"], content_types=["*/*"])
def attach(project: str, repository: str, reference: str) -> Response:
    return serve(bp, _attach, project=project, repository=repository, reference=reference)


def _attach(request: HttpRequest) -> Response:
    label_id = body(request, AttachReq).id
    registry = services()
    project = registry.projects.resolve(request.params["project"], force_name=True)
    name = decode_repository_name(request.params["repository"])
    registry.labels.attach(request.principal, project, name, request.params["reference"], label_id)
    return ok()


@bp.route(f"{_ARTIFACT}/labels/{{label_id}}", methods=["DELETE"], content_types=["*/*"])
def detach(project: str, repository: str, reference: str, label_id: str) -> Response:
    return serve(bp, _detach, project=project, repository=repository, reference=reference, label_id=label_id)


def _detach(request: HttpRequest) -> Response:
    label_id = int_param(request.params["label_id"], "label_id")
    registry = services()
    project = registry.projects.resolve(request.params["project"], force_name=True)
    name = decode_repository_name(request.params["repository"])
    registry.labels.detach(request.principal, project, name, request.params["reference"], label_id)
    return ok()
