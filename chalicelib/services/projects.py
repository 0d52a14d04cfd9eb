"""Projects: the unit of tenancy, access and quota. A repository belongs to the project named by its
first path component."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.auth.rbac import Permission, Role
from chalicelib.core.identity import UNLIMITED, Member, Principal, Project
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, Precondition, ProjectNotFound
from chalicelib.events import EventBus, EventType
from chalicelib.services.allowlists import parse as parse_allowlist

if TYPE_CHECKING:
    from chalicelib.services.access import AccessService
    from chalicelib.services.configuration import ConfigurationService
    from chalicelib.stores.projects import ProjectStore
    from chalicelib.stores.robots import RobotStore

LIBRARY = "library"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_BOOLEAN_KEYS = {"public", "auto_scan", "auto_sbom_generation", "prevent_vul", "reuse_sys_cve_allowlist",
                 "enable_content_trust", "enable_content_trust_cosign"}  # fmt: skip
_SEVERITIES = {"none", "low", "medium", "high", "critical"}
_BOOLEAN_KEYS |= {"proxy_referrer_api", "proxy_cache_local_on_not_found"}
# Proxy-cache settings (Harbor's keys; they matter on a project with `registry_id`).
_COUNT_KEYS = {"proxy_speed_kb", "max_upstream_conn"}
_FILTER_KINDS = {"doublestar", "regex"}
METADATA_KEYS = _BOOLEAN_KEYS | _COUNT_KEYS | {"severity", "proxy_cache_filter_pattern", "proxy_cache_filter_kind"}
# Keys the registry itself keeps in a project's metadata (Harbor: `retention_id`, the project's
# tag retention policy, which its UI reads from GET /projects/{p}). A client may send them back
# with the rest of the metadata; they are ignored there, never taken from a client.
SERVER_METADATA_KEYS = frozenset({"retention_id"})


def validate_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """Harbor's project metadata: string values, booleans written "true"/"false"."""
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        if key in SERVER_METADATA_KEYS:
            continue
        if key not in METADATA_KEYS:
            raise BadRequest(f"unknown project metadata key {key!r}")
        text = str(value).lower() if isinstance(value, bool) else value
        if not isinstance(text, str):
            raise BadRequest(f"metadata {key!r} must be a string")
        if key in _BOOLEAN_KEYS and text not in ("true", "false"):
            raise BadRequest(f"metadata {key!r} must be 'true' or 'false'")
        if key == "severity" and text not in _SEVERITIES:
            raise BadRequest(f"severity must be one of {', '.join(sorted(_SEVERITIES))}")
        _check_proxy_value(key, text)
        clean[key] = text
    return clean


def _check_proxy_value(key: str, text: str) -> None:
    if key in _COUNT_KEYS and not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 10):
        raise BadRequest(f"metadata {key!r} must be an integer")
    if key == "proxy_cache_filter_kind" and text not in _FILTER_KINDS:
        raise BadRequest(f"proxy_cache_filter_kind must be one of {', '.join(sorted(_FILTER_KINDS))}")
    if key == "proxy_cache_filter_pattern" and len(text) > 1024:
        raise BadRequest("proxy_cache_filter_pattern is longer than 1024 characters")


def validate_cve_allowlist(allowlist: dict[str, Any]) -> dict[str, Any]:
    """A project's own list, under the system list's rules (`core/allowlist.py`)."""
    return parse_allowlist(allowlist).to_dict()


def _no_registries(registry_id: int) -> object:
    raise BadRequest("proxy-cache projects need the registries service")


class ProjectService:
    def __init__(
        self,
        projects: ProjectStore,
        access: AccessService,
        configuration: ConfigurationService,
        robots: RobotStore,
        events: EventBus,
    ) -> None:
        self._projects = projects
        self._events = events
        self._access = access
        self._configuration = configuration
        self._robots = robots
        self._require_proxyable: Callable[[int], object] = _no_registries
        self._proxy_created: Callable[[Principal, Project], object] | None = None

    def ensure_library(self, owner_id: int, owner_name: str) -> None:
        """The public `library` project Harbor creates at start (idempotent)."""
        if self._projects.get(LIBRARY) is None:
            with contextlib.suppress(Conflict):  # another instance created it first
                self._projects.create(Project(0, LIBRARY, owner_id, owner_name, metadata={"public": "true"}))

    def use_registries(self, require_proxyable: Callable[[int], object]) -> None:
        """How a proxy-cache project's `registry_id` is checked (the registry service's rule; wiring
        connects them, the registries being built after the projects)."""
        self._require_proxyable = require_proxyable

    def on_proxy_project_created(self, hook: Callable[[Principal, Project], object]) -> None:
        """What follows the creation of a proxy-cache project (Harbor: its default retention policy;
        wiring connects the retention service, built after the projects)."""
        self._proxy_created = hook

    def create(self, caller: Principal, name: str, metadata: dict[str, Any], cve_allowlist: dict[str, Any],
               storage_limit: int | None, *, registry_id: int | None = None) -> Project:  # fmt: skip
        may_create = self._access.system_allows(caller, Permission("project", "create"))
        if registry_id is not None and not may_create:
            raise Forbidden("Only system admin can create proxy cache project")
        if not may_create and (
            caller.kind == "robot" or self._configuration.project_creation_restriction() != "everyone"
        ):
            raise Forbidden("Only system admin can create project")
        if not 1 <= len(name) <= 255 or not _NAME_RE.fullmatch(name):
            raise BadRequest(
                "project name must be lower-case letters, digits and . _ - separators", {"name": name[:64]}
            )
        limit = self._configuration.storage_per_project() if storage_limit is None else storage_limit
        if limit < UNLIMITED or (limit == 0 and storage_limit is None):
            raise BadRequest("storage_limit must be -1 (unlimited) or a positive number of bytes")
        if (
            storage_limit is not None
            and not caller.sysadmin
            and storage_limit != self._configuration.storage_per_project()
        ):
            raise Forbidden("only system administrators may set a storage limit")
        owner_id = caller.user_id if caller.user_id is not None else 0
        clean = validate_metadata(metadata)
        if registry_id is not None:
            self._require_proxyable(registry_id)
            clean.pop("enable_content_trust", None)  # Harbor ignores it on a proxy-cache project
        try:
            project = self._projects.create(Project(0, name, owner_id, caller.name, metadata=clean,
                                                    cve_allowlist=validate_cve_allowlist(cve_allowlist),
                                                    storage_limit=limit, registry_id=registry_id or 0))  # fmt: skip
        except NotFound as exc:  # the registry went between the check and the create
            raise BadRequest(exc.message) from None
        if caller.kind == "user" and caller.user_id is not None:
            self._projects.add_member(name, caller.user_id, caller.name, Role.PROJECT_ADMIN)
        if registry_id is not None and self._proxy_created is not None:
            self._proxy_created(caller, project)
        self._events.emit(EventType.CREATE_PROJECT, project=name, resource_type="project", resource=name)
        return project

    def resolve(self, name_or_id: str, force_name: bool) -> Project:
        numeric = name_or_id.isascii() and name_or_id.isdigit() and len(name_or_id) <= 19  # an int64 id
        name = name_or_id if force_name or not numeric else self._projects.name_of(int(name_or_id))
        project = self._projects.get(name) if name else None
        if project is None:
            raise ProjectNotFound(f"project {name_or_id} not found")
        return project

    def authorize(self, caller: Principal, project: Project, resource: str, action: str) -> None:
        """The retention and webhook services' own check, until they trust the route's as the
        others do (the route table checks the same permission first)."""
        self._access.require_project(caller, project, Permission(resource, action))

    def repository_count(self, name: str) -> int:
        return self._projects.repository_count(name)

    def exists(self, name: str) -> bool:
        return self._projects.get(name) is not None

    def visible(self, caller: Principal, resource: str = "project", action: str = "read") -> list[Project]:
        """Projects in which the caller may do `action` on `resource` (by default: read the project).

        The caller's memberships are read in one batch, not one call per project."""
        projects = self._projects.get_many(self._projects.names())
        if caller.sysadmin:
            return projects
        roles = self.memberships(caller, projects)
        wanted = Permission(resource, action)
        return [p for p in projects if self._access.allows(caller, p, roles.get(p.name), wanted)]

    def memberships(self, caller: Principal, projects: list[Project]) -> dict[str, Member]:
        """The caller's membership in each project that has one (users only; robots have grants)."""
        if caller.user_id is None or not projects:
            return {}
        return self._projects.memberships(caller.user_id, [p.name for p in projects])

    def update(self, caller: Principal, project: Project, metadata: dict[str, Any] | None,
               cve_allowlist: dict[str, Any] | None, storage_limit: int | None) -> None:  # fmt: skip
        if storage_limit is not None and not caller.sysadmin:
            raise Forbidden("only system administrators may change the storage limit")
        changed = None if metadata is None else validate_metadata(metadata)  # merged into the stored keys
        allowlist = None if cve_allowlist is None else validate_cve_allowlist(cve_allowlist)
        self._projects.update(project.name, metadata=changed, cve_allowlist=allowlist, storage_limit=storage_limit)

    def set_metadata(self, project: Project, values: dict[str, Any]) -> None:
        self._projects.update(project.name, metadata=validate_metadata(values))

    def set_server_metadata(self, name: str, key: str, value: str | None, *, if_value: str | None = None) -> bool:
        """Write one of `SERVER_METADATA_KEYS` (callers authorised the change they make)."""
        return self._projects.set_metadata_value(name, key, value, if_value=if_value)

    def delete_metadata(self, project: Project, key: str) -> None:
        if key not in project.metadata:
            raise NotFound(f"metadata {key} not found")
        self._projects.update(project.name, remove_metadata=key)

    def deletable(self, project: Project) -> tuple[bool, str]:
        if self._projects.has_repositories(project.name):
            return False, "the project contains repositories"
        return True, ""

    def delete(self, project: Project) -> None:
        ok, message = self.deletable(project)
        if not ok:
            raise Precondition(message)
        # Its robots go first, then the project in one write: a failure anywhere leaves the project
        # in place for a retry (robots were going anyway), never a deleted project whose robots
        # would open a project re-created under the name.
        for robot in self._robots.get_many([n for n in self._robots.names() if n.startswith(f"{project.name}+")]):
            self._robots.delete(robot)
        self._projects.delete(project)
        self._events.emit(
            EventType.DELETE_PROJECT,
            project=project.name,
            resource_type="project",
            resource=project.name,
            # With the project's retention policy id: its consumer deletes the policy's rows.
            detail={
                "project_id": project.project_id,
                **{k: project.metadata[k] for k in SERVER_METADATA_KEYS if k in project.metadata},
            },
        )

    def summary(self, project: Project) -> dict[str, Any]:
        counts = dict.fromkeys(Role, 0)
        for member in self._projects.members(project.name):
            counts[member.role] += 1
        return {
            "repo_count": self._projects.repository_count(project.name),
            "project_admin_count": counts[Role.PROJECT_ADMIN],
            "maintainer_count": counts[Role.MAINTAINER],
            "developer_count": counts[Role.DEVELOPER],
            "guest_count": counts[Role.GUEST],
            "limited_guest_count": counts[Role.LIMITED_GUEST],
            "quota": {"hard": {"storage": project.storage_limit}, "used": {"storage": project.storage_used}},
        }
