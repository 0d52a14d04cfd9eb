"""/api/v2.0/robots: robot accounts (v2), system and project level."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param, iso, raw_json, validated
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.query import Query, parse_q
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import DurationDays
from chalicelib.core.identity import Project, Robot
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_CREATE_FIELDS = {"name", "description", "level", "duration", "disable", "permissions", "secret"}
# A PUT may send back what GET returned; the read-only fields are ignored.
_UPDATE_FIELDS = _CREATE_FIELDS | {"id", "editable", "expires_at", "creation_time", "update_time", "creator"}


def robot_view(robot: Robot) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire.models import Robot as WireRobot  # noqa: PLC0415 (response models load on first use)

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

    model_config = ConfigDict(extra="ignore", defer_build=True)

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


def _listed_project(request: HttpRequest) -> Project | None:
    """`q=ProjectID=<id>` lists one project's robots (the project permission); without it, all."""
    project_id = getattr(_query(request).get("ProjectID"), "value", None)
    return None if project_id is None else services().projects.resolve(str(project_id), force_name=False)


def _query(request: HttpRequest) -> Query:
    return parse_q(request.arg("q"), {"Level": str, "ProjectID": int, "name": str})


def _new_robot_project(request: HttpRequest) -> Project | None:
    """A project robot is created in the project its one permission entry names."""
    data = raw_json(request)
    level = data.get("level") if isinstance(data, dict) else None
    if level not in ("system", "project"):
        raise BadRequest("level must be 'system' or 'project'")
    if level == "system":
        return None
    from chalicelib.services.robots import parse_permissions  # noqa: PLC0415 (services load on first use)

    entries = parse_permissions(data.get("permissions"), level)
    if len(entries) != 1:
        raise BadRequest("a project robot has exactly one permission entry, for its project")
    namespace = entries[0].namespace
    return services().projects.resolve(namespace, force_name=True)


def _robot_project(request: HttpRequest) -> Project | None:
    """A robot is managed where it lives: its project, or the system."""
    robots = services().robots
    return robots.project_of(robots.get(_robot_id(request)))


def _robot_id(request: HttpRequest) -> int:
    return int_param(request.params["robot_id"], "robot_id")


@routes.get("/robots", locate=_listed_project)
def list_robots(request: HttpRequest, project: Project | None) -> Page:
    query = _query(request)
    level = getattr(query.get("Level"), "value", None)
    records = [robot_view(r) for r in services().robots.list(level, project)]
    name_only = {k: v for k, v in query.terms.items() if k == "name"}
    records = [r for r in records if all(term.matches(r.get(k)) for k, term in name_only.items())]
    return Page(records, sort_fields=("name", "id", "creation_time"))


@routes.post("/robots", locate=_new_robot_project)
def create_robot(request: HttpRequest) -> Created:
    robot, secret = services().robots.create(request.principal, _object(request, _CREATE_FIELDS))
    payload = {"id": robot.robot_id, "name": robot_view(robot)["name"], "secret": secret,
               "expires_at": robot.expires_at, "creation_time": iso(robot.created_at)}  # fmt: skip
    return Created(f"/robots/{robot.robot_id}", payload)


@routes.get("/robots/{robot_id}", locate=_robot_project)
def get_robot(request: HttpRequest) -> dict[str, Any]:
    return robot_view(services().robots.get(_robot_id(request)))


@routes.put("/robots/{robot_id}", locate=_robot_project)
def update_robot(request: HttpRequest) -> None:
    services().robots.update(request.principal, _robot_id(request), _object(request, _UPDATE_FIELDS))


@routes.patch("/robots/{robot_id}", locate=_robot_project)
def refresh_robot_secret(request: HttpRequest) -> dict[str, Any]:
    secret = services().robots.refresh_secret(_robot_id(request), _object(request, {"secret"}).get("secret"))
    return {"secret": secret}


@routes.delete("/robots/{robot_id}", locate=_robot_project)
def delete_robot(request: HttpRequest) -> None:
    services().robots.delete(_robot_id(request))
