"""Harbor's `operation_description` for the extended audit log: recorded from the event, and rebuilt
in the same words for rows written before descriptions were stored."""

from __future__ import annotations

from chalicelib.core.audit import AuditEntry
from chalicelib.events import Event, EventType
from chalicelib.services.audit import EXT_EVENT_TYPES, description_of

DIGEST = "sha256:" + "a" * 64


def _event(event_type: EventType, **fields: object) -> Event:
    return Event(type=event_type, operator="admin", occurred_at=1.0, **fields)  # type: ignore[arg-type]


def test_descriptions_use_harbors_wording() -> None:
    push = _event(EventType.PUSH_ARTIFACT, project="p", repository="p/app", digest=DIGEST, tag="v1")
    assert description_of(push) == f"push artifact: p/app@{DIGEST}"
    pull = _event(EventType.PULL_ARTIFACT, project="p", repository="p/app", digest=DIGEST)
    assert description_of(pull) == f"pull artifact: p/app@{DIGEST}"
    assert description_of(_event(EventType.CREATE_PROJECT, project="p", resource_type="project", resource="p")) == (
        "create project: p"
    )
    tag = _event(EventType.DELETE_TAG, project="p", repository="p/app", digest=DIGEST, tag="v1")
    assert description_of(tag) == "delete tag: p/app:v1"


def test_rows_without_a_description_get_the_same_wording() -> None:
    old = AuditEntry(1, "admin", "p/app:v1", "artifact", "create", 0, "p")
    assert old.operation_description == "push artifact: p/app:v1"
    assert AuditEntry(2, "admin", "p", "project", "delete", 0).operation_description == "delete project: p"
    assert AuditEntry(3, "admin", "p", "project", "delete", 0, description="x").operation_description == "x"


def test_event_types_are_harbors_names_for_what_is_recorded() -> None:
    assert EXT_EVENT_TYPES == ("create_artifact", "delete_artifact", "pull_artifact", "create_project",
                               "delete_project", "create_robot", "delete_robot")  # fmt: skip
