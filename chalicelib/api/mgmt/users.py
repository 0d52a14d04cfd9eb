"""/api/v2.0/users: local users, the current user, password and system-administrator changes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.query import query_bool
from chalicelib.api.mgmt.wire import shape
from chalicelib.auth.rbac import SYSTEM_RESOURCES, Permission
from chalicelib.core.identity import User
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint


class UserCreationReq(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=128)
    email: str = Field(default="", max_length=255)
    realname: str = Field(default="", max_length=255)
    comment: str = Field(default="", max_length=1024)


class UserProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    email: str | None = Field(default=None, max_length=255)
    realname: str | None = Field(default=None, max_length=255)
    comment: str | None = Field(default=None, max_length=1024)


class PasswordReq(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    old_password: str | None = Field(default=None, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class SysAdminFlag(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    sysadmin_flag: bool


def user_view(user: User) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire.models import UserResp  # noqa: PLC0415 (response models load on first use)

    return shape(
        UserResp,
        {
            "user_id": user.user_id,
            "username": user.username,
            "email": user.email,
            "realname": user.realname,
            "comment": user.comment,
            "sysadmin_flag": user.sysadmin,
            "admin_role_in_auth": False,
            "creation_time": iso(user.created_at),
            "update_time": iso(user.updated_at),
        },
    )


@routes.get("/users")
def list_users(request: HttpRequest) -> Page:
    records = [user_view(u) for u in services().users.list_users()]
    return Page(records, q_fields={"username": str, "email": str, "user_id": int},
                sort_fields=("username", "user_id", "creation_time"))  # fmt: skip


@routes.post("/users", body=UserCreationReq)
def create_user(request: HttpRequest, body: UserCreationReq) -> Created:
    user = services().users.create(body.username, body.password, email=body.email, realname=body.realname,
                                   comment=body.comment)  # fmt: skip
    return Created(f"/users/{user.user_id}")


@routes.get("/users/current")
def current_user(request: HttpRequest) -> dict[str, Any]:
    return user_view(services().users.current(request.principal))


@routes.get("/users/current/permissions")
def current_permissions(request: HttpRequest) -> list[dict[str, str]]:
    """What the caller may do in a scope: `/project/<id>` or `/system` (Harbor's UI uses this)."""
    registry = services()
    scope = request.arg("scope") or "/system"
    relative = query_bool("relative", request.arg("relative"), default=False)
    if scope.startswith("/project/"):
        project = registry.projects.resolve(scope.removeprefix("/project/"), force_name=False)
        granted = registry.access.project_permissions(request.principal, project.name)
        prefix = "" if relative else f"{scope}/"
    elif scope == "/system":
        every = [
            Permission(res, act) for res in SYSTEM_RESOURCES for act in ("create", "read", "update", "delete", "list")
        ]
        granted = [p for p in every if registry.access.system_allows(request.principal, p)]
        prefix = "" if relative else "/system/"
    else:
        raise BadRequest("scope must be /system or /project/<id>")
    return [{"resource": f"{prefix}{p.resource}", "action": p.action} for p in granted]


@routes.get("/users/search")
def search_users(request: HttpRequest) -> Page:
    found = services().users.search(request.arg("username") or "")
    return Page([{"user_id": u.user_id, "username": u.username} for u in found])


def _user_id(request: HttpRequest) -> int:
    return int_param(request.params["user_id"], "user_id")


@routes.get("/users/{user_id}")
def get_user(request: HttpRequest) -> dict[str, Any]:
    return user_view(services().users.get(_user_id(request)))


@routes.put("/users/{user_id}", body=UserProfile)
def update_user(request: HttpRequest, body: UserProfile) -> None:
    services().users.update_profile(_user_id(request), body.email, body.realname, body.comment)


@routes.delete("/users/{user_id}")
def delete_user(request: HttpRequest) -> None:
    services().users.delete(request.principal, _user_id(request))


@routes.put("/users/{user_id}/password", body=PasswordReq)
def change_password(request: HttpRequest, body: PasswordReq) -> None:
    services().users.change_password(request.principal, _user_id(request), body.old_password, body.new_password)


@routes.put("/users/{user_id}/sysadmin", body=SysAdminFlag)
def set_sysadmin(request: HttpRequest, body: SysAdminFlag) -> None:
    services().users.set_sysadmin(request.principal, _user_id(request), body.sysadmin_flag)
