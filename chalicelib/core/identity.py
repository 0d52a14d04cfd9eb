"""Identity and tenancy records: users, projects, members, robots (no persistence concerns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.auth.rbac import Permission, Role

UNLIMITED = -1


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    username: str
    email: str = ""
    realname: str = ""
    comment: str = ""
    sysadmin: bool = False
    password_hash: str = field(default="", repr=False)
    created_at: int = 0
    updated_at: int = 0
    # Bumped whenever the user's refresh tokens must stop working (a password change).
    token_version: int = 0


@dataclass(frozen=True, slots=True)
class Project:
    project_id: int
    name: str
    owner_id: int
    owner_name: str
    metadata: dict[str, str] = field(default_factory=dict)
    cve_allowlist: dict[str, Any] = field(default_factory=dict)
    storage_limit: int = UNLIMITED
    storage_used: int = 0
    created_at: int = 0
    updated_at: int = 0
    # The remote registry a proxy-cache project pulls through (Harbor's `registry_id`); 0: none.
    registry_id: int = 0

    @property
    def public(self) -> bool:
        return self.metadata.get("public", "false").lower() == "true"


@dataclass(frozen=True, slots=True)
class Member:
    member_id: int
    project_name: str
    entity_id: int
    entity_name: str
    role: Role
    entity_type: Literal["u", "g"] = "u"


@dataclass(frozen=True, slots=True)
class RobotAccess:
    resource: str
    action: str
    effect: Literal["allow", "deny"] = "allow"


@dataclass(frozen=True, slots=True)
class RobotPermission:
    kind: Literal["project", "system"]
    namespace: str
    access: tuple[RobotAccess, ...]


@dataclass(frozen=True, slots=True)
class Robot:
    robot_id: int
    name: str  # stored name: `<project>+<name>` or `<name>` for system robots
    level: Literal["system", "project"]
    permissions: tuple[RobotPermission, ...]
    secret_hash: str = field(default="", repr=False)
    description: str = ""
    duration: int = -1
    expires_at: int = -1
    disabled: bool = False
    creator: str = ""
    created_at: int = 0
    updated_at: int = 0
    # Bumped whenever the robot's refresh tokens must stop working (disabled, secret refreshed).
    token_version: int = 0

    def expired(self, now: int) -> bool:
        return self.expires_at != -1 and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: anonymous, a user or a robot (resolved once per request)."""

    kind: Literal["anonymous", "user", "robot"]
    name: str = ""
    user_id: int | None = None
    sysadmin: bool = False
    robot: Robot | None = None
    token_version: int = 0  # a user's (a robot's is on `robot`), for the refresh tokens it is issued

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"

    def robot_allows(self, project: str | None, permission: Permission) -> bool:
        """A robot's explicit grants; `deny` wins over `allow`, `*` matches any action."""
        if self.robot is None:
            return False
        allowed = False
        for grant in self.robot.permissions:
            if project is None:
                if grant.kind != "system" or grant.namespace != "/":
                    continue
            elif grant.kind != "project" or grant.namespace not in (project, "*"):
                continue
            for access in grant.access:
                if access.resource not in (permission.resource, "*") or access.action not in (permission.action, "*"):
                    continue
                if access.effect == "deny":
                    return False
                allowed = True
        return allowed


ANONYMOUS = Principal(kind="anonymous")
