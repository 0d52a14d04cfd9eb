"""/api/v2.0/users: local users, the current user, password and system-administrator changes."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, body, created, int_param, iso, listing, ok, serve
from chalicelib.api.mgmt.query import query_bool
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import UserResp
from chalicelib.auth.rbac import SYSTEM_RESOURCES, Permission
from chalicelib.core.identity import User
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)


class UserCreationReq(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=128)
    email: str = Field(default="", max_length=255)
    realname: str = Field(default="", max_length=255)
    comment: str = Field(default="", max_length=1024)


class UserProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=255)
    realname: str | None = Field(default=None, max_length=255)
    comment: str | None = Field(default=None, max_length=1024)


class PasswordReq(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str | None = Field(default=None, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class SysAdminFlag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sysadmin_flag: bool


def user_view(user: User) -> dict[str, Any]:
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


@bp.route(f"{API}/users", methods=["GET", "POST"], content_types=["*/*"])
def users() -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list)


def _list(request: HttpRequest) -> Response:
    records = [user_view(u) for u in services().users.list_users(request.principal)]
    return listing(request, "/users", records, q_fields={"username": str, "email": str, "user_id": int},
                   sort_fields=("username", "user_id", "creation_time"))  # fmt: skip


def _create(request: HttpRequest) -> Response:
    req = body(request, UserCreationReq)
    user = services().users.create(request.principal, req.username, req.password, email=req.email,
                                   realname=req.realname, comment=req.comment)  # fmt: skip
    return created(f"{API}/users/{user.user_id}")


@bp.route(f"{API}/users/current", methods=["GET"])
def current() -> Response:
    return serve(bp, lambda r: json_response(user_view(services().users.current(r.principal))))


@bp.route(f"{API}/users/current/permissions", methods=["GET"])
def current_permissions() -> Response:
    return serve(bp, _permissions)


def _permissions(request: HttpRequest) -> Response:
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
    return json_response([{"resource": f"{prefix}{p.resource}", "action": p.action} for p in granted])


@bp.route(f"{API}/users/search", methods=["GET"])
def search() -> Response:
    return serve(bp, _search)


def _search(request: HttpRequest) -> Response:
    found = services().users.search(request.principal, request.arg("username") or "")
    records = [{"user_id": u.user_id, "username": u.username} for u in found]
    return listing(request, "/users/search", records)


@bp.route(f"{API}/users/{{user_id}}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
def user(user_id: str) -> Response:
    method = bp.current_request.method
    handler = {"GET": _get, "PUT": _update, "DELETE": _delete}[method]
    return serve(bp, handler, user_id=user_id)


def _get(request: HttpRequest) -> Response:
    user_id = int_param(request.params["user_id"], "user_id")
    return json_response(user_view(services().users.get(request.principal, user_id)))


def _update(request: HttpRequest) -> Response:
    req = body(request, UserProfile)
    user_id = int_param(request.params["user_id"], "user_id")
    services().users.update_profile(request.principal, user_id, req.email, req.realname, req.comment)
    return ok()


def _delete(request: HttpRequest) -> Response:
    services().users.delete(request.principal, int_param(request.params["user_id"], "user_id"))
    return ok()


@bp.route(f"{API}/users/{{user_id}}/password", methods=["PUT"], content_types=["*/*"])
def password(user_id: str) -> Response:
    return serve(bp, _password, user_id=user_id)


def _password(request: HttpRequest) -> Response:
    req = body(request, PasswordReq)
    user_id = int_param(request.params["user_id"], "user_id")
    services().users.change_password(request.principal, user_id, req.old_password, req.new_password)
    return ok()


@bp.route(f"{API}/users/{{user_id}}/sysadmin", methods=["PUT"], content_types=["*/*"])
def sysadmin(user_id: str) -> Response:
    return serve(bp, _sysadmin, user_id=user_id)


def _sysadmin(request: HttpRequest) -> Response:
    req = body(request, SysAdminFlag)
    user_id = int_param(request.params["user_id"], "user_id")
    services().users.set_sysadmin(request.principal, user_id, req.sysadmin_flag)
    return ok()
