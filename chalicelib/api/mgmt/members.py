"""/api/v2.0/projects/{project}/members: who may do what in a project."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, int_param, listing, ok, serve
from chalicelib.api.mgmt.projects import target
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Member
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)


class MemberUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=255)
    user_id: Id | None = None


class MemberReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role_id: Id
    member_user: MemberUser | None = None
    member_group: dict[str, Any] | None = None


class RoleReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role_id: Id


def member_view(member: Member, project_id: int) -> dict[str, Any]:
    return {
        "id": member.member_id,
        "project_id": project_id,
        "entity_name": member.entity_name,
        "entity_type": member.entity_type,
        "entity_id": member.entity_id,
        "role_id": int(member.role),
        "role_name": member.role.harbor_name,
    }


@bp.route(f"{API}/projects/{{project}}/members", methods=["GET", "POST"], content_types=["*/*"])
def members(project: str) -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list, project=project)


def _list(request: HttpRequest) -> Response:
    found = target(request)
    listed = services().members.list(request.principal, found, request.arg("entityname"))
    return listing(request, f"/projects/{request.params['project']}/members",
                   [member_view(m, found.project_id) for m in listed])  # fmt: skip


def _create(request: HttpRequest) -> Response:
    req = body(request, MemberReq)
    if req.member_group is not None:
        raise BadRequest("group members need LDAP or OIDC groups, which are not supported")
    if req.member_user is None or (req.member_user.username is None and req.member_user.user_id is None):
        raise BadRequest("member_user with username or user_id is required")
    found = target(request)
    member = services().members.add(request.principal, found, req.role_id, req.member_user.username,
                                    req.member_user.user_id)  # fmt: skip
    return created(f"{API}/projects/{request.params['project']}/members/{member.member_id}")


@bp.route(f"{API}/projects/{{project}}/members/{{member_id}}", methods=["GET", "PUT", "DELETE"],
          content_types=["*/*"])  # fmt: skip
def member(project: str, member_id: str) -> Response:
    return serve(bp, _member, project=project, member_id=member_id)


def _member(request: HttpRequest) -> Response:
    found = target(request)
    member_id = int_param(request.params["member_id"], "member_id")
    registry = services()
    if request.method == "GET":
        return json_response(member_view(registry.members.get(request.principal, found, member_id), found.project_id))
    if request.method == "PUT":
        registry.members.update(request.principal, found, member_id, body(request, RoleReq).role_id)
        return ok()
    registry.members.remove(request.principal, found, member_id)
    return ok()
