"""The pure webhook core: policy validation and the payload each target format gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.webhooks import Target, parse_policy, payload
from chalicelib.errors import BadRequest
from chalicelib.events import Event, EventType

DIGEST = "sha256:" + "a" * 64


def _event(event_type: EventType = EventType.PUSH_ARTIFACT, **fields: Any) -> Event:
    values: dict[str, Any] = {"project": "proj", "repository": "proj/team/app", "digest": "sha256:" + "a" * 64,
                              "tag": "v1"}  # fmt: skip
    values.update(fields)
    return Event(type=event_type, operator="alice", occurred_at=1_700_000_000.5, **values)


def _body(target: Target, event: Event | None = None, public: bool = False) -> dict[str, Any]:
    delivery = payload(event or _event(), target, "/projects/proj/webhook/policies/7", "reg.example", public)
    return dict(json.loads(delivery.body))


def test_a_valid_policy_is_normalised() -> None:
    data = {"name": " hook ", "event_types": ["PUSH_ARTIFACT", "PUSH_ARTIFACT", "PULL_ARTIFACT"],
            "targets": [{"address": "https://h.example/x"}]}  # fmt: skip
    policy = parse_policy(data, 3, "admin", 10, 20)
    assert policy.name == "hook" and policy.enabled and policy.event_types == ("PUSH_ARTIFACT", "PULL_ARTIFACT")
    assert policy.targets == (Target("http", "https://h.example/x"),)
    assert policy.wants("PULL_ARTIFACT") and not policy.wants("DELETE_ARTIFACT")
    assert type(policy).from_record(policy.record()) == policy


@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "event_types": ["PUSH_ARTIFACT"], "targets": [{"address": "http://h"}]},
        {"name": "n", "event_types": [], "targets": [{"address": "http://h"}]},
        {"name": "n", "event_types": ["CREATE_PROJECT"], "targets": [{"address": "http://h"}]},
        {"name": "n", "event_types": ["PUSH_ARTIFACT"], "targets": []},
        {"name": "n", "event_types": ["PUSH_ARTIFACT"], "targets": [{"address": "file:///etc/passwd"}]},
        {"name": "n", "event_types": ["PUSH_ARTIFACT"], "targets": [{"type": "email", "address": "http://h"}]},
        {
            "name": "n",
            "event_types": ["PUSH_ARTIFACT"],
            "targets": [{"type": "slack", "address": "http://h", "payload_format": "CloudEvents"}],
        },
    ],
)
def test_invalid_policies_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        parse_policy(data, 1, "admin", 0, 0)


def test_default_payload_and_authorization() -> None:
    target = Target("http", "http://h", auth_header="Bearer t")
    delivery = payload(_event(), target, "/src", "reg.example", False)
    assert delivery.headers == {"Content-Type": "application/json", "Authorization": "Bearer t"}
    body = json.loads(delivery.body)
    assert body == {
        "type": "PUSH_ARTIFACT", "occur_at": 1_700_000_000, "operator": "alice",
        "event_data": {
            "resources": [{"digest": DIGEST, "tag": "v1", "resource_url": "reg.example/proj/team/app:v1"}],
            "repository": {"date_created": 1_700_000_000, "name": "team/app", "namespace": "proj",
                           "repo_full_name": "proj/team/app", "repo_type": "private"},
        },
    }  # fmt: skip


def test_cloudevents_payload() -> None:
    body = _body(Target("http", "http://h", payload_format="CloudEvents"), _event(EventType.DELETE_ARTIFACT, tag=None))
    assert body["specversion"] == "1.0" and body["type"] == "harbor.artifact.deleted"
    assert body["source"] == "/projects/proj/webhook/policies/7" and body["time"] == "2023-11-14T22:13:20Z"
    assert body["operator"] == "alice" and body["datacontenttype"] == "application/json"
    assert body["data"]["resources"] == [{"digest": "sha256:" + "a" * 64,
                                          "resource_url": "reg.example/proj/team/app@sha256:" + "a" * 64}]  # fmt: skip


def test_quota_and_retention_event_data() -> None:
    quota = _body(Target("http", "http://h"), _event(EventType.QUOTA_EXCEED, detail={"details": "over 1 MiB"}), True)
    # Harbor's quota payload: no resource URL, no creation time, the tag always present.
    assert quota["event_data"] == {
        "resources": [{"digest": DIGEST, "tag": "v1"}],
        "repository": {"name": "team/app", "namespace": "proj", "repo_full_name": "proj/team/app",
                       "repo_type": "public"},
        "custom_attributes": {"Details": "over 1 MiB"},
    }  # fmt: skip
    retention = _event(EventType.TAG_RETENTION, repository=None, digest=None, tag=None,
                       detail={"retention": {"total": 2, "retained": 1}})  # fmt: skip
    # The webhook adds Harbor's `harbor_hostname` (the external host without its port).
    expected = {"retention": {"total": 2, "retained": 1, "harbor_hostname": "reg.example"}}
    assert _body(Target("http", "http://h"), retention)["event_data"] == expected


def test_slack_payload() -> None:
    body = _body(Target("slack", "https://hooks.slack.example/x"))
    assert body["blocks"][0]["text"]["text"] == "*Harbor webhook events*"
    assert "*event_type:* PUSH_ARTIFACT" in body["blocks"][1]["text"]["text"]
