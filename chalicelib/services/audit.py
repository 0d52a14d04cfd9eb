"""The audit log: who pushed, pulled or deleted what, and who created or deleted projects and robots.

Entries come from domain events (`events.py`), never from the request path: services publish after
their write succeeded and the audit writer runs later, so recording costs a request nothing.
- Locally the in-process bus delivers events on its worker thread; whatever is queued at that
  moment arrives as one batch (`subscribe_batch`), written with one UpdateItem (ids) and
  BatchWriteItem calls (two rows an entry).
- On AWS the in-process bus is not durable (a Lambda may freeze before its worker runs), so the
  publisher sends events to EventBridge and a consumer Lambda hands what it receives to the same
  subscribers (`EventBus.deliver`), which call `AuditService.record_many`.

Entries expire through DynamoDB TTL `retention_days` after the operation (Harbor purges its audit
log on a schedule; here the table does it). Ids are Harbor's integers, reserved a batch at a time
with one UpdateItem on one counter item: a consumer that records events one by one is bounded by
that item's write rate (~1,000/s), so consumers should call `record_many` with what they receive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chalicelib.auth.rbac import Permission
from chalicelib.core.audit import AuditEntry, AuditFilter
from chalicelib.core.clock import Clock, system_clock
from chalicelib.events import Event, EventType

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.services.access import AccessService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.audit import AuditStore

_DAY = 86_400

# Harbor's (operation, resource_type) for each recorded event type; others are not audited.
_RECORDED: dict[EventType, tuple[str, str]] = {
    EventType.PUSH_ARTIFACT: ("create", "artifact"),
    EventType.PULL_ARTIFACT: ("pull", "artifact"),
    EventType.DELETE_ARTIFACT: ("delete", "artifact"),
    EventType.CREATE_TAG: ("create", "tag"),
    EventType.DELETE_TAG: ("delete", "tag"),
    EventType.CREATE_PROJECT: ("create", "project"),
    EventType.DELETE_PROJECT: ("delete", "project"),
    EventType.CREATE_ROBOT: ("create", "robot"),
    EventType.DELETE_ROBOT: ("delete", "robot"),
    EventType.SCAN_ARTIFACT: ("scan", "artifact"),
    EventType.STOP_SCAN_ARTIFACT: ("stop_scan", "artifact"),
    EventType.CREATE_SCANNER: ("create", "scanner"),
    EventType.UPDATE_SCANNER: ("update", "scanner"),
    EventType.DELETE_SCANNER: ("delete", "scanner"),
    EventType.CREATE_REGISTRY: ("create", "registry"),
    EventType.UPDATE_REGISTRY: ("update", "registry"),
    EventType.DELETE_REGISTRY: ("delete", "registry"),
}

_ARTIFACT_VERBS = {EventType.PUSH_ARTIFACT: "push", EventType.PULL_ARTIFACT: "pull",
                   EventType.DELETE_ARTIFACT: "delete"}  # fmt: skip
# The extended log's event types (`<operation>_<resource_type>`, Harbor's names and order) this
# registry records; Harbor also lists user, login, member and configuration events.
_HARBOR_EXT_EVENT_TYPES = ("create_artifact", "delete_artifact", "pull_artifact", "create_project", "delete_project",
                           "delete_repository", "login_user", "logout_user", "create_user", "delete_user",
                           "update_user", "create_robot", "delete_robot", "update_configuration", "create_member",
                           "delete_member", "update_member", "update_project")  # fmt: skip
EXT_EVENT_TYPES = tuple(t for t in _HARBOR_EXT_EVENT_TYPES if tuple(t.split("_", 1)) in set(_RECORDED.values()))


def resource_of(event: Event) -> str:
    """Harbor's `resource`: `<project>/<repo>:<tag>` or `<project>/<repo>@<digest>` for artifacts
    and tags, the name for projects and robots."""
    if event.repository is not None:
        if event.tag and event.type is not EventType.DELETE_ARTIFACT:
            return f"{event.repository}:{event.tag}"
        return f"{event.repository}@{event.digest}"
    return event.resource or event.project or ""


class AuditService:
    def __init__(
        self,
        store: AuditStore,
        projects: ProjectService,
        access: AccessService,
        retention_days: int,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._projects = projects
        self._access = access
        self._retention_seconds = retention_days * _DAY
        self._clock = clock

    # Writing.

    def record_many(self, events: Sequence[Event]) -> None:
        audited = [e for e in events if e.type in _RECORDED]
        if not audited:
            return
        first = self._store.reserve_ids(len(audited))
        entries = [_entry(first + offset, event) for offset, event in enumerate(audited)]
        self._store.write(entries, [int(e.occurred_at) + self._retention_seconds for e in audited])

    # Reading.

    def list_all(
        self, caller: Principal, flt: AuditFilter, offset: int, size: int, *, newest_first: bool = True
    ) -> tuple[int, list[AuditEntry]]:
        """/audit-logs (Harbor): everything for holders of the system `audit-log` list permission
        (administrators), else the entries of the projects where the caller is a member allowed to
        list logs; robots without the system permission see none."""
        if caller.sysadmin or self._access.system_allows(caller, Permission("audit-log", "list")):
            partitions: list[str | None] = [None]
        elif caller.kind == "robot":
            partitions = []
        else:
            partitions = [p.name for p in self._projects.visible(caller, "log", "list")]
        return self._page(partitions, flt, offset, size, newest_first)

    @staticmethod
    def event_types() -> tuple[str, ...]:
        """/auditlog-exts/events: the event types the extended log records."""
        return EXT_EVENT_TYPES

    def list_project(
        self,
        project: Project,
        flt: AuditFilter,
        offset: int,
        size: int,
        *,
        newest_first: bool = True,
    ) -> tuple[int, list[AuditEntry]]:
        return self._page([project.name], flt, offset, size, newest_first)

    def _page(
        self, partitions: list[str | None], flt: AuditFilter, offset: int, size: int, newest_first: bool
    ) -> tuple[int, list[AuditEntry]]:
        """Total and one page; each partition is asked for at most `offset + size` entries, which are
        merged in time order (a member of several projects sees them interleaved)."""
        total = sum(self._store.count(p, flt) for p in partitions)
        if offset >= total:
            return total, []
        merged = [e for p in partitions for e in self._store.newest(p, flt, offset + size, newest_first=newest_first)]
        merged.sort(key=lambda e: (e.op_time_ms, e.log_id), reverse=newest_first)
        return total, merged[offset : offset + size]


def description_of(event: Event) -> str:
    """Harbor's `operation_description` for the event (its audit-log-ext wording)."""
    if event.type in _ARTIFACT_VERBS:
        return f"{_ARTIFACT_VERBS[event.type]} artifact: {event.repository}@{event.digest}"
    operation, resource_type = _RECORDED[event.type]
    return f"{operation} {resource_type}: {resource_of(event)}"


def _entry(log_id: int, event: Event) -> AuditEntry:
    operation, resource_type = _RECORDED[event.type]
    return AuditEntry(
        log_id=log_id, username=event.operator, resource=resource_of(event), resource_type=resource_type,
        operation=operation, op_time_ms=int(event.occurred_at * 1000), project=event.project,
        description=description_of(event),
    )  # fmt: skip
