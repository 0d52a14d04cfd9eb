"""Replication policies as Harbor validates them, its filters and its namespace rewriting."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.core.replication import (
    EVENT_BASED,
    SCHEDULED,
    Filter,
    InvalidReplicationPolicy,
    NamespaceTooShort,
    Policy,
    check_filter,
    destination_repository,
    execution_status,
    job_statuses,
    parse_filters,
    resource_text,
    validate_policy,
)

PUSH = Policy(policy_id=1, name="p", dest_registry_id=3)


@pytest.mark.parametrize(
    ("repository", "namespace", "count", "expected"),
    [
        ("a/b/c", "", -1, "a/b/c"),
        ("a/b/c", "ns", -1, "ns/c"),  # legacy: the last component under the namespace
        ("a/b/c", "ns", 0, "ns/a/b/c"),
        ("a/b/c", "ns", 1, "ns/b/c"),
        ("a/b/c", "ns", 2, "ns/c"),
        ("a/b/c", "", 1, "b/c"),
        ("lib/app", "mirror", 1, "mirror/app"),
    ],
)
def test_destination_repository(repository: str, namespace: str, count: int, expected: str) -> None:
    assert destination_repository(repository, namespace, count) == expected


def test_flattening_cannot_drop_the_last_component() -> None:
    with pytest.raises(NamespaceTooShort, match="flattening level is 3"):
        destination_repository("a/b/c", "ns", 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": " "}, "empty name"),
        ({"dest_registry_id": 0}, "either src_registry or dest_registry"),
        ({"src_registry_id": 2}, "either src_registry or dest_registry"),
        ({"dest_namespace": "Bad Name"}, "invalid destination namespace"),
        ({"dest_namespace_replace_count": 200}, "between -1 and 127"),
        ({"trigger_type": "sometimes"}, "invalid trigger type"),
        ({"trigger_type": SCHEDULED}, "cron string cannot be empty"),
        ({"trigger_type": SCHEDULED, "cron": "0 * * * *"}, "invalid cron string"),  # five fields: not Harbor's
        ({"trigger_type": EVENT_BASED, "single_active_replication": True}, "single_active_replication"),
        ({"speed": -1}, "speed"),
    ],
)
def test_invalid_policies(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidReplicationPolicy, match=message):
        validate_policy(dataclasses.replace(PUSH, **change))  # type: ignore[arg-type]


def test_event_based_is_for_push_based_policies_only() -> None:
    pull = dataclasses.replace(PUSH, src_registry_id=2, dest_registry_id=0, trigger_type=EVENT_BASED)
    with pytest.raises(InvalidReplicationPolicy, match="push-based"):
        validate_policy(pull)
    assert validate_policy(dataclasses.replace(PUSH, trigger_type=SCHEDULED, cron="0 0 * * * *")).cron


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "name", "value": 3}, "isn't string"),
        ({"type": "resource", "value": "chart"}, "invalid resource filter"),
        ({"type": "label", "value": "gold"}, "string slice"),
        ({"type": "tag", "value": "[a-"}, "invalid tag filter"),
        ({"type": "colour", "value": "x"}, "invalid filter type"),
        ({"type": "tag", "value": "v*", "decoration": "maybe"}, "invalid filter decoration"),
    ],
)
def test_invalid_filters(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidReplicationPolicy, match=message):
        check_filter(data)


def test_filters_select_as_harbor() -> None:
    filters = [check_filter({"type": "name", "value": "lib/**"}),
               check_filter({"type": "tag", "value": "v1.*", "decoration": "excludes"}),
               check_filter({"type": "label", "value": ["gold"], "decoration": "matches"}),
               check_filter({"type": "resource", "value": "image"})]  # fmt: skip
    selection = parse_filters(filters)
    assert selection.repository("lib/a/b") and not selection.repository("other/a")
    assert selection.tags(["v1.0", "v2.0", "latest"]) == ["v2.0", "latest"]
    assert selection.labels_kept({"gold", "x"}) and not selection.labels_kept({"x"})
    assert not selection.untagged_kept()
    assert selection.resource_kept("application/vnd.oci.image.index.v1+json", None)
    assert not selection.resource_kept("application/vnd.oci.image.manifest.v1+json", "application/vnd.cncf.helm.config")
    assert parse_filters([Filter("label", ("a",), "excludes")]).labels_kept({"b"})
    assert not parse_filters([Filter("label", ("a",), "excludes")]).labels_kept({"a"})
    # Harbor's `excludes` leaves out only an artifact carrying every label named.
    both = parse_filters([Filter("label", ("a", "b"), "excludes")])
    assert both.labels_kept({"a"}) and both.labels_kept(set()) and not both.labels_kept({"a", "b", "c"})
    # A decoration on a name filter means nothing in Harbor: it is dropped, not stored.
    assert check_filter({"type": "name", "value": "x", "decoration": "excludes"}).decoration == ""


def test_wire_words() -> None:
    assert [execution_status(s) for s in ("Pending", "Running", "Success", "Error", "Stopped")] == [
        "InProgress", "InProgress", "Succeed", "Failed", "Stopped"]  # fmt: skip
    assert job_statuses("InProgress") == ("Pending", "Running") and job_statuses("Stopped") == ("Stopped",)
    assert resource_text("a/b", ["v1", "v2"], "sha256:x") == "a/b:[v1,v2]"
    assert resource_text("a/b", [], "sha256:x") == "a/b@sha256:x"


def test_round_trip_of_the_stored_form() -> None:
    filters = (Filter("name", "a/**"), Filter("label", ("x", "y"), "matches"))
    policy = validate_policy(dataclasses.replace(PUSH, filters=filters, override=True, speed=10))
    again = Policy.from_dict(1, policy.to_dict())
    assert again.to_dict() == policy.to_dict()


def test_the_replication_webhook_payload_is_harbors_event_data() -> None:
    from chalicelib.core.webhooks import event_data
    from chalicelib.events import Event, EventType

    copied = [{"type": "image", "status": "Success", "name_tag": "a/b:v1"}]
    detail = {"replication": {"job_status": "Success", "trigger_type": "MANUAL", "successful_artifact": copied}}
    event = Event(EventType.REPLICATION, "admin", 1.0, project="a", resource_type="replication", resource="p",
                  detail=detail)  # fmt: skip
    data = event_data(event, "registry.example:8443", public=False)
    assert data == {"replication": {**detail["replication"], "harbor_hostname": "registry.example"}}
