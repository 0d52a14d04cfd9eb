"""/api/v2.0/projects/{project}/members: who may do what in a project."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Member, Project
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


class MemberUser(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    username: str | None = Field(default=None, max_length=255)
    user_id: Id | None = None


class MemberReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    role_id: Id
    member_user: MemberUser | None = None
    member_group: dict[str, Any] | None = None


class RoleReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

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


@routes.get("/projects/{project}/members")
def list_members(request: HttpRequest, project: Project) -> Page:
    listed = services().members.list(project, request.arg("entityname"))
    return Page([member_view(m, project.project_id) for m in listed])


@routes.post("/projects/{project}/members", body=MemberReq)
def add_member(request: HttpRequest, body: MemberReq, project: Project) -> Created:
    if body.member_group is not None:
        raise BadRequest("group members need LDAP or OIDC groups, which are not supported")
    user = body.member_user
    if user is None or (user.username is None and user.user_id is None):
        raise BadRequest("member_user with username or user_id is required")
    member = services().members.add(request.principal, project, body.role_id, user.username, user.user_id)
    return Created(f"/projects/{request.params['project']}/members/{member.member_id}")


@routes.get("/projects/{project}/members/{member_id}")
def get_member(request: HttpRequest, project: Project) -> dict[str, Any]:
    member = services().members.get(project, int_param(request.params["member_id"], "member_id"))
    return member_view(member, project.project_id)


@routes.put("/projects/{project}/members/{member_id}", body=RoleReq)
def update_member(request: HttpRequest, body: RoleReq, project: Project) -> None:
    member_id = int_param(request.params["member_id"], "member_id")
    services().members.update(request.principal, project, member_id, body.role_id)


@routes.delete("/projects/{project}/members/{member_id}")
def remove_member(request: HttpRequest, project: Project) -> None:
    services().members.remove(project, int_param(request.params["member_id"], "member_id"))
