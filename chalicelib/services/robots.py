"""Robot accounts (Harbor v2): machine credentials with explicit permissions and an expiry.

The secret is generated (or checked for strength), returned once, and only its salted hash is kept.
A project robot is stored as `<project>+<name>`, a system robot as `<name>`; clients log in with the
configured prefix in front (`robot$proj+ci`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.auth import secrets as credentials
from chalicelib.auth.delegation import robot_holds
from chalicelib.auth.rbac import ACTIONS, PROJECT_RESOURCES, ROLE_PERMISSIONS, SYSTEM_RESOURCES, Permission, Role
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import Principal, Project, Robot, RobotAccess, RobotPermission
from chalicelib.errors import BadRequest, Forbidden, NotFound
from chalicelib.events import Event, EventBus, EventType

if TYPE_CHECKING:
    from chalicelib.services.access import AccessService
    from chalicelib.services.configuration import ConfigurationService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.robots import RobotStore

_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_DAY = 86_400


def parse_permissions(raw: Any, level: str) -> tuple[RobotPermission, ...]:
    """Validate Harbor's `[{kind, namespace, access:[{resource, action, effect}]}]`."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("permissions must be a non-empty list")
    parsed = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise BadRequest("each permission must be an object")
        kind, namespace, access = entry.get("kind"), entry.get("namespace"), entry.get("access")
        if kind not in ("project", "system"):
            raise BadRequest("permission kind must be 'project' or 'system'")
        if level == "project" and kind != "project":
            raise BadRequest("a project robot can only hold project permissions")
        if not isinstance(namespace, str) or not namespace or (kind == "system" and namespace != "/"):
            raise BadRequest("namespace must be a project name or '*' (project) or '/' (system)")
        if not isinstance(access, list) or not access:
            raise BadRequest("access must be a non-empty list")
        resources = PROJECT_RESOURCES if kind == "project" else SYSTEM_RESOURCES
        parsed.append(RobotPermission(kind=kind, namespace=namespace,
                                      access=tuple(_access(a, resources) for a in access)))  # fmt: skip
    return tuple(parsed)


def _access(raw: Any, resources: tuple[str, ...]) -> RobotAccess:
    if not isinstance(raw, dict):
        raise BadRequest("each access entry must be an object")
    resource, action, effect = raw.get("resource"), raw.get("action"), raw.get("effect") or "allow"
    if resource != "*" and resource not in resources:
        raise BadRequest(f"unknown resource {resource!r}")
    if action != "*" and action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}")
    if effect not in ("allow", "deny"):
        raise BadRequest("effect must be 'allow' or 'deny'")
    return RobotAccess(str(resource), str(action), "deny" if effect == "deny" else "allow")


def expiry(duration: int, now: int) -> int:
    if duration == -1:
        return -1
    if duration <= 0:
        raise BadRequest("duration must be -1 (never expires) or a positive number of days")
    return now + duration * _DAY


class RobotService:
    def __init__(self, robots: RobotStore, projects: ProjectService, access: AccessService,
                 configuration: ConfigurationService, events: EventBus, *,
                 clock: Clock = system_clock) -> None:  # fmt: skip
        self._robots = robots
        self._events = events
        self._projects = projects
        self._access = access
        self._configuration = configuration
        self._clock = clock

    def create(self, caller: Principal, body: dict[str, Any]) -> tuple[Robot, str]:
        """Create a robot; returns it with its clear-text secret (shown this once)."""
        level = body.get("level")
        if level not in ("system", "project"):
            raise BadRequest("level must be 'system' or 'project'")
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 128 or not _NAME_RE.fullmatch(name):
            raise BadRequest("robot name must be lower-case letters, digits and . _ - separators")
        permissions = parse_permissions(body.get("permissions"), level)
        stored = self._stored_name(caller, level, name, permissions)
        duration = body.get("duration")
        if duration is None or duration == 0:
            duration = self._configuration.robot_token_duration()
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise BadRequest("duration must be an integer number of days")
        secret = self._secret(body.get("secret"))
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 1024:
            raise BadRequest("description must be a string of at most 1024 characters")
        disabled = body.get("disable", False)
        if not isinstance(disabled, bool):  # `"no"` is a string, not a way to say false
            raise BadRequest("disable must be a boolean")
        now = int(self._clock())
        robot = Robot(
            robot_id=0, name=stored, level=level, permissions=permissions,
            secret_hash=credentials.hash_secret(secret), description=description, duration=duration,
            expires_at=expiry(duration, now), disabled=disabled, creator=caller.name,
        )  # fmt: skip
        created = self._robots.create(robot)
        self._publish(EventType.CREATE_ROBOT, created)
        return created, secret

    def _stored_name(self, caller: Principal, level: str, name: str,
                     permissions: tuple[RobotPermission, ...]) -> str:  # fmt: skip
        """The stored name (`<project>+<name>` for a project robot), once the caller is seen to
        grant nothing it does not hold."""
        if level == "system":
            self._check_no_escalation(caller, permissions)
            return name
        if len(permissions) != 1:
            raise BadRequest("a project robot has exactly one permission entry, for its project")
        project = self._projects.resolve(permissions[0].namespace, force_name=True)
        self._check_no_escalation(caller, permissions)
        return f"{project.name}+{name}"

    def _check_no_escalation(self, caller: Principal, permissions: tuple[RobotPermission, ...]) -> None:
        """A caller can only hand out what it holds itself (Harbor's rule), system and project
        permissions alike: a robot what its own grants contain, a user what its role gives it in
        the project (a user holds no system permission and no project `*` unless an administrator)."""
        if caller.sysadmin:
            return
        every = ROLE_PERMISSIONS[Role.PROJECT_ADMIN] | {Permission("repository", "scanner-pull")}
        for permission in permissions:
            user_held: set[Permission] = set()
            if caller.robot is None and permission.kind == "project" and permission.namespace != "*":
                user_held = set(self._access.project_permissions(caller, permission.namespace))
            for access in permission.access:
                if access.effect == "deny":
                    continue
                if caller.robot is not None:
                    holds = robot_holds(caller.robot, permission, access)
                else:
                    wanted = {p for p in every if access.resource in (p.resource, "*")
                              and access.action in (p.action, "*")}  # fmt: skip
                    holds = bool(user_held) and wanted <= user_held
                if not holds:
                    raise Forbidden(
                        f"cannot grant {access.resource}:{access.action} on {permission.kind} "
                        f"{permission.namespace}, which the caller does not hold"
                    )

    def _secret(self, provided: Any) -> str:
        if provided is None:
            return credentials.generate_robot_secret()
        if not isinstance(provided, str) or not credentials.validate_secret_strength(provided):
            raise BadRequest("secret must be 8-128 characters with upper-case, lower-case and a digit")
        return provided

    def get(self, robot_id: int) -> Robot:
        robot = self._robots.get_by_id(robot_id)
        if robot is None:
            raise NotFound(f"robot {robot_id} not found")
        return robot

    def project_of(self, robot: Robot) -> Project | None:
        """The project a project robot belongs to; None for a system robot."""
        if robot.level == "system":
            return None
        return self._projects.resolve(robot.name.split("+", 1)[0], force_name=True)

    def list(self, level: str | None, project: Project | None) -> list[Robot]:
        """Every robot, or a project's robots only."""
        robots = self._robots.get_many(self._robots.names())
        if project is not None:
            robots = [r for r in robots if r.level == "project" and r.name.startswith(f"{project.name}+")]
        if level is not None:
            robots = [r for r in robots if r.level == level]
        return robots

    def update(self, caller: Principal, robot_id: int, body: dict[str, Any]) -> None:
        robot = self.get(robot_id)
        duration = body.get("duration", robot.duration)
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise BadRequest("duration must be an integer number of days")
        permissions = (
            parse_permissions(body["permissions"], robot.level) if "permissions" in body else robot.permissions
        )
        if permissions != robot.permissions:
            project = robot.name.split("+", 1)[0]
            if robot.level == "project" and (len(permissions) != 1 or permissions[0].namespace != project):
                raise BadRequest("a project robot's permission must stay on its own project")
            self._check_no_escalation(caller, permissions)
        description = body.get("description", robot.description)
        if not isinstance(description, str):
            raise BadRequest("description must be a string")
        expires_at = robot.expires_at if duration == robot.duration else expiry(duration, int(self._clock()))
        disabled = body.get("disable", robot.disabled)
        if not isinstance(disabled, bool):
            raise BadRequest("disable must be a boolean")
        self._robots.update(replace(robot, description=description, duration=duration, expires_at=expires_at,
                                    permissions=permissions, disabled=disabled),
                            revoke_tokens=disabled and not robot.disabled)  # fmt: skip

    def refresh_secret(self, robot_id: int, provided: Any) -> str:
        robot = self.get(robot_id)
        secret = self._secret(provided)
        self._robots.update(replace(robot, secret_hash=credentials.hash_secret(secret)), revoke_tokens=True)
        return secret

    def delete(self, robot_id: int) -> None:
        robot = self.get(robot_id)
        self._robots.delete(robot)
        self._publish(EventType.DELETE_ROBOT, robot)

    def _publish(self, event_type: EventType, robot: Robot) -> None:
        """For the audit log: the robot's login name, under its project when it has one."""
        project = robot.name.split("+", 1)[0] if robot.level == "project" else None
        name = f"{self._access.robot_prefix()}{robot.name}"
        self._events.publish(Event.now(event_type, project=project, resource_type="robot", resource=name))
