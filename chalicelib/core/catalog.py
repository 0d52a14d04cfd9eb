"""Records of the artifact catalogue kept by this registry: repositories and labels (no persistence)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

GLOBAL = "g"
PROJECT = "p"
LabelScope = Literal["g", "p"]


def harbor_time(epoch: int | float | None) -> str | None:
    """Harbor's timestamps (RFC 3339, milliseconds, UTC); None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository row. `repository_id` is 0 until one is assigned (on first use by the API)."""

    name: str
    project: str
    repository_id: int = 0
    description: str = ""
    pull_count: int = 0
    pull_time: int | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Label:
    """A Harbor label: global (`g`, project_id 0) or of one project (`p`)."""

    label_id: int
    name: str
    scope: LabelScope
    project_id: int = 0
    description: str = ""
    color: str = ""
    created_at: int = 0
    updated_at: int = 0

    def harbor_json(self) -> dict[str, Any]:
        """Harbor's Label model, as both `/labels` and an artifact's `labels[]` show it."""
        return {
            "id": self.label_id,
            "name": self.name,
            "description": self.description,
            "color": self.color,
            "scope": self.scope,
            "project_id": self.project_id,
            "creation_time": harbor_time(self.created_at),
            "update_time": harbor_time(self.updated_at),
        }
