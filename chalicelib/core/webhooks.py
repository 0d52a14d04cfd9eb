"""Harbor's webhooks, the pure part: policy validation and the payloads a receiver gets.

No I/O. A policy (Harbor's `WebhookPolicy`) names event types and targets; a target is `http` or
`slack`, with an address, an optional `auth_header` (sent as `Authorization`), `skip_cert_verify`
and a `payload_format`, `Default` (Harbor's own JSON) or `CloudEvents` (structured CloudEvents
1.0, http targets only, as Harbor offers it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import BadRequest
from chalicelib.events import Event, EventType

# The event types a policy may name: every one Harbor supports, in Harbor's order. Policies naming
# scan or replication events are kept and listed; they fire once those features publish the events.
EVENT_TYPES = (
    EventType.PUSH_ARTIFACT,
    EventType.PULL_ARTIFACT,
    EventType.DELETE_ARTIFACT,
    EventType.QUOTA_EXCEED,
    EventType.QUOTA_WARNING,
    EventType.SCANNING_FAILED,
    EventType.SCANNING_STOPPED,
    EventType.SCANNING_COMPLETED,
    EventType.REPLICATION,
    EventType.TAG_RETENTION,
)
NOTIFY_TYPES = ("http", "slack")
PAYLOAD_FORMATS = {"http": ("Default", "CloudEvents"), "slack": ("Default",)}
# CloudEvents `type` for each event type (Harbor's names).
CLOUDEVENT_TYPES = {
    EventType.PUSH_ARTIFACT: "harbor.artifact.pushed",
    EventType.PULL_ARTIFACT: "harbor.artifact.pulled",
    EventType.DELETE_ARTIFACT: "harbor.artifact.deleted",
    EventType.QUOTA_EXCEED: "harbor.quota.exceeded",
    EventType.QUOTA_WARNING: "harbor.quota.warned",
    EventType.REPLICATION: "harbor.replication.status.changed",
    EventType.SCANNING_FAILED: "harbor.scan.failed",
    EventType.SCANNING_COMPLETED: "harbor.scan.completed",
    EventType.SCANNING_STOPPED: "harbor.scan.stopped",
    EventType.TAG_RETENTION: "harbor.tag_retention.finished",
}
_SCANNING = frozenset({EventType.SCANNING_COMPLETED, EventType.SCANNING_FAILED, EventType.SCANNING_STOPPED})
MAX_TARGETS = 10
MAX_POLICIES = 50  # per project: all of them live in one item


@dataclass(frozen=True, slots=True)
class Target:
    type: str
    address: str
    auth_header: str = ""
    skip_cert_verify: bool = False
    payload_format: str = "Default"

    def record(self) -> dict[str, Any]:
        return {"type": self.type, "address": self.address, "auth_header": self.auth_header,
                "skip_cert_verify": self.skip_cert_verify, "payload_format": self.payload_format}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: int
    name: str
    description: str
    enabled: bool
    event_types: tuple[str, ...]
    targets: tuple[Target, ...]
    creator: str
    created_at: int
    updated_at: int

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types

    def record(self) -> dict[str, Any]:
        """What the store keeps (the API adds `project_id` and formats the times)."""
        return {
            "id": self.policy_id, "name": self.name, "description": self.description, "enabled": self.enabled,
            "event_types": list(self.event_types), "targets": [t.record() for t in self.targets],
            "creator": self.creator, "created_at": self.created_at, "updated_at": self.updated_at,
        }  # fmt: skip

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Policy:
        return cls(
            policy_id=int(data["id"]), name=str(data["name"]), description=str(data.get("description") or ""),
            enabled=bool(data["enabled"]), event_types=tuple(data["event_types"]),
            targets=tuple(Target(**t) for t in data["targets"]), creator=str(data.get("creator") or ""),
            created_at=int(data["created_at"]), updated_at=int(data["updated_at"]),
        )  # fmt: skip


def parse_policy(data: dict[str, Any], policy_id: int, creator: str, created_at: int, now: int) -> Policy:
    """Validate Harbor's policy JSON (types already checked by the API model); 400 on anything wrong."""
    name = (data.get("name") or "").strip()
    if not name:
        raise BadRequest("name is required")
    event_types = data.get("event_types") or []
    if not event_types:
        raise BadRequest("event_types must name at least one event type")
    unknown = sorted({str(e) for e in event_types} - set(EVENT_TYPES))
    if unknown:
        raise BadRequest(f"unsupported event types: {', '.join(unknown)[:200]}")
    targets = data.get("targets") or []
    if not targets:
        raise BadRequest("targets must hold at least one target")
    enabled = data.get("enabled")
    return Policy(
        policy_id=policy_id, name=name, description=data.get("description") or "",
        enabled=True if enabled is None else bool(enabled), event_types=tuple(dict.fromkeys(event_types)),
        targets=tuple(_target(t) for t in targets), creator=creator, created_at=created_at, updated_at=now,
    )  # fmt: skip


def _target(data: dict[str, Any]) -> Target:
    kind = data.get("type") or "http"
    if kind not in NOTIFY_TYPES:
        raise BadRequest(f"target type must be one of {', '.join(NOTIFY_TYPES)}")
    address = (data.get("address") or "").strip()
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("target address must be an http:// or https:// URL with a host")
    payload_format = data.get("payload_format") or "Default"
    if payload_format not in PAYLOAD_FORMATS[kind]:
        raise BadRequest(f"payload_format of a {kind} target must be one of {', '.join(PAYLOAD_FORMATS[kind])}")
    return Target(kind, address, data.get("auth_header") or "", bool(data.get("skip_cert_verify")), payload_format)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request to send: what `Target` gets for one event."""

    body: bytes
    headers: dict[str, str]


def event_data(event: Event, registry_host: str, public: bool) -> dict[str, Any]:
    """Harbor's `event_data`: resources and repository for artifact and quota events (quota ones
    explain themselves in `custom_attributes`), `retention` for TAG_RETENTION, `replication` for
    REPLICATION."""
    if event.type is EventType.TAG_RETENTION:  # {"retention": {...}} from services/retention.py
        retention = dict(event.detail.get("retention") or {})
        retention["harbor_hostname"] = urlsplit(f"//{registry_host}").hostname or registry_host
        return {"retention": retention}
    if event.type is EventType.REPLICATION:  # {"replication": {...}} from services/replication_run.py
        replication = dict(event.detail.get("replication") or {})
        replication["harbor_hostname"] = urlsplit(f"//{registry_host}").hostname or registry_host
        return {"replication": replication}
    if event.repository is None:
        return dict(event.detail)
    namespace, _, name = event.repository.partition("/")
    repository = {"name": name, "namespace": namespace, "repo_full_name": event.repository,
                  "repo_type": "public" if public else "private"}  # fmt: skip
    if event.type in (EventType.QUOTA_EXCEED, EventType.QUOTA_WARNING):
        # Harbor's quota payload (`constructQuotaPayload`): no URL, no creation time; the event
        # explains itself in `custom_attributes.Details`.
        quota: dict[str, Any] = {"repository": repository,
                                 "custom_attributes": {"Details": str(event.detail.get("details", ""))}}  # fmt: skip
        if event.digest or event.tag:
            quota["resources"] = [{"digest": event.digest, "tag": event.tag or ""}]
        return quota
    reference = f":{event.tag}" if event.tag else f"@{event.digest}"
    url = f"{registry_host}/{event.repository}{reference}"
    resource: dict[str, Any] = {"digest": event.digest, "resource_url": url}
    if event.tag:
        resource["tag"] = event.tag
    if event.type in _SCANNING:
        # Harbor's scan payload: the artifact's scan overview (or SBOM overview) on the resource.
        for name in ("scan_overview", "sbom_overview"):
            if name in event.detail:
                resource[name] = event.detail[name]
    if event.type in _SCANNING:  # Harbor's scan payload names no creation time
        return {"resources": [resource], "repository": repository}
    # Harbor sends the repository's creation time; the event carries none, so the event's time
    # stands in (a documented difference).
    return {"resources": [resource], "repository": {"date_created": int(event.occurred_at), **repository}}


def payload(event: Event, target: Target, policy_source: str, registry_host: str, public: bool, *,
            event_id: str | None = None) -> Delivery:  # fmt: skip
    """`event_id` is the CloudEvents `id`: a durable delivery keeps one across its attempts."""
    data = event_data(event, registry_host, public)
    headers = {"Content-Type": "application/json"}
    if target.auth_header:
        headers["Authorization"] = target.auth_header
    document: dict[str, Any]
    if target.type == "slack":
        document = _slack(event, data)
    elif target.payload_format == "CloudEvents":
        headers["Content-Type"] = "application/cloudevents+json"
        document = {
            "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": policy_source,
            "type": CLOUDEVENT_TYPES.get(EventType(event.type), f"harbor.{event.type.lower()}"),
            "datacontenttype": "application/json",
            "time": datetime.fromtimestamp(event.occurred_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operator": event.operator, "data": data,
        }  # fmt: skip
    else:
        document = {"type": event.type.value, "occur_at": int(event.occurred_at), "operator": event.operator,
                    "event_data": data}  # fmt: skip
    return Delivery(json.dumps(document).encode(), headers)


def _slack(event: Event, data: dict[str, Any]) -> dict[str, Any]:
    """Harbor's Slack message: a header block and the event's fields as mrkdwn text."""
    when = datetime.fromtimestamp(event.occurred_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = (f"*event_type:* {event.type.value}\n*occur_at:* {when}\n*operator:* {event.operator}\n"
            f"*event_data:* ```{json.dumps(data, indent=2)}```")  # fmt: skip
    return {
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Harbor webhook events*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        ]
    }


def longest_delivery(attempts: int, timeout_seconds: float, backoff_seconds: float) -> float:
    """The longest one delivery (execution) can take: every target, every attempt timing out
    (connect and read), every backoff; plus a minute for the rows. Active for longer means its
    deliverer stopped."""
    per_target = attempts * 2 * timeout_seconds + backoff_seconds * (2**attempts - 1)
    return float(MAX_TARGETS * per_target + 60)
