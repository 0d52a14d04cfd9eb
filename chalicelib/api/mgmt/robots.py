"""/api/v2.0/robots: robot accounts (v2), system and project level."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, int_param, iso, listing, ok, raw_json, serve, validated
from chalicelib.api.mgmt.query import parse_q
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import Robot as WireRobot
from chalicelib.core.bounds import DurationDays
from chalicelib.core.identity import Robot
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)
_CREATE_FIELDS = {"name", "description", "level", "duration", "disable", "permissions", "secret"}
# A PUT may send back what GET returned; the read-only fields are ignored.
_UPDATE_FIELDS = _CREATE_FIELDS | {"id", "editable", "expires_at", "creation_time", "update_time", "creator"}


def robot_view(robot: Robot) -> dict[str, Any]:
    return shape(
        WireRobot,
        {
            "id": robot.robot_id,
            "name": f"{services().access.robot_prefix()}{robot.name}",
            "description": robot.description,
            "level": robot.level,
            "duration": robot.duration,
            "editable": True,
            "disable": robot.disabled,
            "expires_at": robot.expires_at,
            "permissions": [
                {
                    "kind": p.kind,
                    "namespace": p.namespace,
                    "access": [{"resource": a.resource, "action": a.action, "effect": a.effect} for a in p.access],
                }
                for p in robot.permissions
            ],
            "creator": robot.creator,
            "creation_time": iso(robot.created_at),
            "update_time": iso(robot.updated_at),
        },
    )


class _Numbers(BaseModel):
    """The numbers of a robot body, bounded here; the service checks the rest."""

    model_config = ConfigDict(extra="ignore")

    duration: DurationDays | None = None


def _object(request: HttpRequest, allowed: set[str]) -> dict[str, Any]:
    data = raw_json(request)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    validated(_Numbers, data)
    return data


@bp.route(f"{API}/robots", methods=["GET", "POST"], content_types=["*/*"])
def robots() -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list)


def _list(request: HttpRequest) -> Response:
    query = parse_q(request.arg("q"), {"Level": str, "ProjectID": int, "name": str})
    level_term, project_term = query.get("Level"), query.get("ProjectID")
    level = getattr(level_term, "value", None)
    project_id = getattr(project_term, "value", None)
    found = services().robots.list(request.principal, level, project_id)
    records = [robot_view(r) for r in found]
    name_only = {k: v for k, v in query.terms.items() if k == "name"}
    records = [r for r in records if all(term.matches(r.get(k)) for k, term in name_only.items())]
    return listing(request, "/robots", records, sort_fields=("name", "id", "creation_time"))


def _create(request: HttpRequest) -> Response:
    robot, secret = services().robots.create(request.principal, _object(request, _CREATE_FIELDS))
    payload = {"id": robot.robot_id, "name": robot_view(robot)["name"], "secret": secret,
               "expires_at": robot.expires_at, "creation_time": iso(robot.created_at)}  # fmt: skip
    return json_response(payload, 201, {"Location": f"{API}/robots/{robot.robot_id}"})


@bp.route(f"{API}/robots/{{robot_id}}", methods=["GET", "PUT", "PATCH", "DELETE"], content_types=["*/*"])
def robot(robot_id: str) -> Response:
    return serve(bp, _robot, robot_id=robot_id)


def _robot(request: HttpRequest) -> Response:
    robot_id = int_param(request.params["robot_id"], "robot_id")
    registry = services()
    if request.method == "GET":
        return json_response(robot_view(registry.robots.get(request.principal, robot_id)))
    if request.method == "PUT":
        registry.robots.update(request.principal, robot_id, _object(request, _UPDATE_FIELDS))
        return ok()
    if request.method == "PATCH":
        secret = registry.robots.refresh_secret(request.principal, robot_id, _object(request, {"secret"}).get("secret"))
        return json_response({"secret": secret})
    registry.robots.delete(request.principal, robot_id)
    return ok()
