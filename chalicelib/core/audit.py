"""Audit log entries and the filter a list applies to them (pure data, shared by service and store)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The fields a list may filter on besides the time (Harbor's `q` keys of /audit-logs).
FILTER_FIELDS = ("operation", "resource", "resource_type", "username")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Harbor's audit log record; `project` is None for system-level resources (system robots)."""

    log_id: int
    username: str
    resource: str
    resource_type: str
    operation: str
    op_time_ms: int
    project: str | None = None
    description: str | None = None  # Harbor's `operation_description`; None on rows written before it

    @property
    def operation_description(self) -> str:
        """What Harbor's extended audit log shows: the recorded text, or the same wording rebuilt
        from the row (older rows carry no description)."""
        if self.description:
            return self.description
        verb = _VERBS.get((self.operation, self.resource_type), self.operation)
        return f"{verb} {self.resource_type}: {self.resource}"


# Harbor's words for an artifact's operations in its descriptions ("push artifact: ...").
_VERBS = {("create", "artifact"): "push"}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What a list keeps: a time window (inclusive, epoch ms) and per-field conditions, all ANDed.

    `exact` field == value; `fuzzy` value is a substring of the field; `any_of` field is one of.
    """

    since_ms: int | None = None
    until_ms: int | None = None
    exact: dict[str, str] = field(default_factory=dict)
    fuzzy: dict[str, str] = field(default_factory=dict)
    any_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
