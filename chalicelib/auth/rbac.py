"""Harbor's permission model: resources, actions, project roles and what each role may do.

The matrix follows Harbor's `rbac_role.go` (`src/common/rbac/project`). It is data, not code:
a role is a set of (resource, action) pairs, and every check in the registry, on `/v2` and on
`/api/v2.0` alike, goes through `Permission` lookups in these sets.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NamedTuple


class Role(IntEnum):
    PROJECT_ADMIN = 1
    DEVELOPER = 2
    GUEST = 3
    MAINTAINER = 4
    LIMITED_GUEST = 5

    @property
    def harbor_name(self) -> str:
        return {
            Role.PROJECT_ADMIN: "projectAdmin",
            Role.DEVELOPER: "developer",
            Role.GUEST: "guest",
            Role.MAINTAINER: "maintainer",
            Role.LIMITED_GUEST: "limitedGuest",
        }[self]


class Resource(StrEnum):
    """Harbor's `rbac` resources: what a permission is about (its strings are the wire's)."""

    PROJECT = "project"
    REPOSITORY = "repository"
    ARTIFACT = "artifact"
    TAG = "tag"
    ACCESSORY = "accessory"
    ARTIFACT_ADDITION = "artifact-addition"
    ARTIFACT_LABEL = "artifact-label"
    LABEL = "label"
    MEMBER = "member"
    METADATA = "metadata"
    LOG = "log"
    QUOTA = "quota"
    ROBOT = "robot"
    TAG_RETENTION = "tag-retention"
    SCAN = "scan"
    IMMUTABLE_TAG = "immutable-tag"
    NOTIFICATION_POLICY = "notification-policy"
    USER = "user"
    GARBAGE_COLLECTION = "garbage-collection"
    AUDIT_LOG = "audit-log"
    CATALOG = "catalog"
    CONFIGURATION = "configuration"
    SCANNER = "scanner"
    # Scanning policy (scan all, the security hub).
    SCAN_ALL = "scan-all"
    SECURITY_HUB = "security-hub"
    EXPORT_CVE = "export-cve"
    # Registries (remote endpoints) and the replication adapter catalogue: system resources.
    REGISTRY = "registry"
    REPLICATION_ADAPTER = "replication-adapter"
    REPLICATION = "replication"
    REPLICATION_POLICY = "replication-policy"


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"
    OPERATE = "operate"
    STOP = "stop"
    SCANNER_PULL = "scanner-pull"


class Permission(NamedTuple):
    resource: str
    action: str


PROJECT_RESOURCES = (
    "project", "repository", "artifact", "tag", "accessory", "artifact-addition", "artifact-label", "scan",
    "sbom", "scanner", "label", "member", "metadata", "log", "quota", "robot", "tag-retention", "immutable-tag",
    "notification-policy", "preheat-policy", "export-cve", "configuration",
)  # fmt: skip
SYSTEM_RESOURCES = (
    "project", "user", "user-group", "registry", "replication", "replication-policy", "replication-adapter",
    "distribution", "garbage-collection", "scan-all", "scanner", "audit-log", "catalog", "purge-audit",
    "security-hub", "jobservice-monitor", "system-volumes", "label", "ldap-user", "preheat-instance",
)  # fmt: skip
ACTIONS = ("pull", "push", "create", "read", "update", "delete", "list", "operate", "stop", "scanner-pull")


def _grants(spec: dict[str, str]) -> frozenset[Permission]:
    return frozenset(Permission(resource, action) for resource, actions in spec.items() for action in actions.split())


_CRUDL = "create read update delete list"

_LIMITED_GUEST = {
    "project": "read",
    "repository": "read list pull",
    "artifact": "read list",
    "tag": "list",
    "accessory": "list",
    "artifact-addition": "read",
    "quota": "read",
    "scan": "read",
    "sbom": "read",
}
_GUEST = _LIMITED_GUEST | {
    "member": "read list",
    "metadata": "read list",
    "log": "list",
    "label": "read list",
    "robot": "read list",
    "tag-retention": "read list",
    "immutable-tag": "list",
    "scanner": "read",
    "preheat-policy": "read list",
}
_DEVELOPER = _GUEST | {
    "repository": "create read update list pull push",
    "artifact": "create read list",
    "tag": "create list",
    "artifact-label": "create delete",
    "scan": "create stop read",
    "sbom": "create stop read",
    "tag-retention": "read list operate",
    "export-cve": "create read",
}
_MAINTAINER = _DEVELOPER | {
    "repository": "create read update delete list pull push",
    "artifact": "create read list delete",
    "tag": "create delete list",
    "label": _CRUDL,
    "tag-retention": _CRUDL + " operate",
    "immutable-tag": _CRUDL,
    "notification-policy": "list",  # Harbor: maintainers see the policies, only project admins manage them
}
# Everything in the project except `scanner-pull`, which only the scanner's robot holds.
_PROJECT_ADMIN = {resource: " ".join(a for a in ACTIONS if a != "scanner-pull") for resource in PROJECT_RESOURCES}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.LIMITED_GUEST: _grants(_LIMITED_GUEST),
    Role.GUEST: _grants(_GUEST),
    Role.DEVELOPER: _grants(_DEVELOPER),
    Role.MAINTAINER: _grants(_MAINTAINER),
    Role.PROJECT_ADMIN: _grants(_PROJECT_ADMIN),
}

# What anyone (anonymous included) may do in a public project: read and pull.
PUBLIC_PROJECT_PERMISSIONS: frozenset[Permission] = _grants(_LIMITED_GUEST | {"label": "read list"})

# What the /v2 routes need: a token's repository actions and the catalog.
PULL = Permission(Resource.REPOSITORY, Action.PULL)
PUSH = Permission(Resource.REPOSITORY, Action.PUSH)
DELETE_ARTIFACT = Permission(Resource.ARTIFACT, Action.DELETE)
SCANNER_PULL = Permission(Resource.REPOSITORY, Action.SCANNER_PULL)
READ_CATALOG = Permission(Resource.CATALOG, Action.READ)

# Repository actions a Docker token can carry (the scope's action word), and the permission each needs.
TOKEN_ACTIONS: dict[str, Permission] = {
    "pull": PULL,
    "push": PUSH,
    "delete": DELETE_ARTIFACT,
    "scanner-pull": SCANNER_PULL,
}


def role_allows(role: Role | None, permission: Permission) -> bool:
    return role is not None and permission in ROLE_PERMISSIONS[role]
