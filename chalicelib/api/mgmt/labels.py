"""/api/v2.0/labels and the label sub-resource of artifacts (attach, detach)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, raw_json
from chalicelib.api.mgmt._route import Created, Page, Routes, project_named_in_path
from chalicelib.api.mgmt.names import decode_repository_name
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Project
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


class LabelReq(BaseModel):
    """Harbor's Label model as a request: what GET returned may be sent back (read-only fields are
    ignored); lengths beyond these bounds are rejected before any rule runs."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str | None = Field(default=None, max_length=1024)
    description: str | None = Field(default=None, max_length=65_536)
    color: str | None = Field(default=None, max_length=1024)
    scope: str | None = Field(default=None, max_length=8)
    project_id: int | None = Field(default=None, ge=0, le=2**53)
    id: Id | None = None
    creation_time: str | None = None
    update_time: str | None = None
    deleted: bool | None = None


def _listed_project(request: HttpRequest) -> Project | None:
    """`scope=p&project_id=<id>` lists a project's labels (the project permission); `g`, anyone."""
    raw_project = request.arg("project_id")
    if request.arg("scope") != "p" or not raw_project:
        return None
    return services().labels.scope_project("p", int_param(raw_project, "project_id"))


def _new_label_project(request: HttpRequest) -> Project | None:
    """A project label (`scope: p`) is created in its project, a global one by the system permission."""
    data = raw_json(request)
    scope, project_id = (data.get("scope") or "g", data.get("project_id")) if isinstance(data, dict) else ("g", None)
    return services().labels.scope_project(scope, project_id if isinstance(project_id, int) else None)


def _label_project(request: HttpRequest) -> Project | None:
    labels = services().labels
    return labels.project_of(labels.get(_label_id(request)))


def _label_id(request: HttpRequest) -> int:
    return int_param(request.params["label_id"], "label_id")


@routes.get("/labels", locate=_listed_project)
def list_labels(request: HttpRequest, project: Project | None) -> Page:
    found = services().labels.in_scope(request.arg("scope") or "g", project)
    name = request.arg("name")
    records = [label.harbor_json() for label in found if not name or name in label.name]
    return Page(records, q_fields={"name": str, "id": int}, sort_fields=("name", "id", "creation_time", "update_time"))


@routes.post("/labels", body=LabelReq, locate=_new_label_project)
def create_label(request: HttpRequest, body: LabelReq, project: Project | None) -> Created:
    if body.name is None:
        raise BadRequest("name is required")
    label = services().labels.create(body.name, project=project, description=body.description or "",
                                     color=body.color or "")  # fmt: skip
    return Created(f"/labels/{label.label_id}")


@routes.get("/labels/{label_id}", locate=_label_project)
def get_label(request: HttpRequest) -> dict[str, Any]:
    return services().labels.get(_label_id(request)).harbor_json()


@routes.put("/labels/{label_id}", body=LabelReq, locate=_label_project)
def update_label(request: HttpRequest, body: LabelReq) -> None:
    services().labels.update(_label_id(request), body.name, body.description, body.color)


@routes.delete("/labels/{label_id}", locate=_label_project)
def delete_label(request: HttpRequest) -> None:
    services().labels.delete(_label_id(request))


_ARTIFACT = "/projects/{project}/repositories/{repository}/artifacts/{reference}"


class AttachReq(BaseModel):
    """`POST .../labels` takes a Label; only its `id` matters."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: int = Field(ge=1, le=2**53)


@routes.post(f"{_ARTIFACT}/labels", body=AttachReq, locate=project_named_in_path)
def attach_label(request: HttpRequest, body: AttachReq, project: Project) -> None:
    name = decode_repository_name(request.params["repository"])
    services().labels.attach(project, name, request.params["reference"], body.id)


@routes.delete(f"{_ARTIFACT}/labels/{{label_id}}", locate=project_named_in_path)
def detach_label(request: HttpRequest, project: Project) -> None:
    name = decode_repository_name(request.params["repository"])
    services().labels.detach(project, name, request.params["reference"], _label_id(request))
