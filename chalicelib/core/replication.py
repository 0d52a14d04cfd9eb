"""Replication policies (Harbor's `controller/replication/model` and `pkg/reg/filter`): what a
policy may say, which artifacts its filters select, and where a copy lands. Pure: no I/O.

A policy copies between this registry ("local": registry id 0, Harbor's nil registry) and one
remote registry: `src_registry` set means pull-based (remote -> local), `dest_registry` set means
push-based (local -> remote); exactly one of them is set (Harbor's rule). Filters are Harbor's
`[{type, value, decoration}]`: `name` (doublestar on the repository), `tag` (doublestar on a tag,
`matches`/`excludes`), `label` (a list of label names, `matches`: the artifact has them all,
`excludes`: it has not all of them) and `resource` (`image` or `artifact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.jobs import Cron, CronError
from chalicelib.core.reference import NAME_RE
from chalicelib.core.selectors import EXCLUDES, MATCHES, InvalidPattern, matches, validate

MANUAL, SCHEDULED, EVENT_BASED = "manual", "scheduled", "event_based"
TRIGGER_TYPES = (MANUAL, SCHEDULED, EVENT_BASED)
FILTER_NAME, FILTER_TAG, FILTER_LABEL, FILTER_RESOURCE = "name", "tag", "label", "resource"
RESOURCE_IMAGE, RESOURCE_ARTIFACT = "image", "artifact"
COPY, DELETION = "copy", "deletion"
LOCAL = 0  # the registry id that means this registry (Harbor's nil registry)
MAX_FILTERS = 16
MAX_LABELS = 32
NAME_MAX = 255
DESCRIPTION_MAX = 1024
# Harbor's int8 replace count: -1 is the legacy mode (the last path component under the namespace).
REPLACE_COUNT_MIN, REPLACE_COUNT_MAX = -1, 127
# The image types Harbor's `resource: image` filter keeps (its `ResourceTypeImage`).
IMAGE_MEDIA_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})  # fmt: skip
IMAGE_CONFIG_TYPES = frozenset({
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
})  # fmt: skip


class InvalidReplicationPolicy(ValueError):
    """What is wrong with a policy, worded for a 400."""


@dataclass(frozen=True, slots=True)
class Filter:
    type: str
    value: str | tuple[str, ...]
    decoration: str = ""

    def wire(self) -> dict[str, Any]:
        value: Any = list(self.value) if isinstance(self.value, tuple) else self.value
        out: dict[str, Any] = {"type": self.type, "value": value}
        if self.decoration:
            out["decoration"] = self.decoration
        return out


@dataclass(frozen=True, slots=True)
class Filters:
    """A policy's filters, parsed: what the candidates listing asks of each repository and tag."""

    name: str = ""
    tag: str = ""
    tag_decoration: str = ""
    labels: tuple[str, ...] = ()
    label_decoration: str = ""
    resource: str = ""

    def repository(self, name: str) -> bool:
        return matches(self.name, name)

    def tag_kept(self, tag: str) -> bool:
        return matches(self.tag, tag) != (self.tag_decoration == EXCLUDES)

    def tags(self, tags: list[str]) -> list[str]:
        return [t for t in tags if self.tag_kept(t)]

    def untagged_kept(self) -> bool:
        """An untagged artifact is a candidate only when no tag filter narrows the copy."""
        return not self.tag

    def labels_kept(self, names: set[str]) -> bool:
        if not self.labels:
            return True
        # Harbor's `artifactLabelFilter`: `matches` keeps an artifact carrying every label named,
        # `excludes` keeps the others (one carrying only some of them included).
        return (set(self.labels) <= names) != (self.label_decoration == EXCLUDES)

    def resource_kept(self, media_type: str, config_type: str | None) -> bool:
        if self.resource != RESOURCE_IMAGE:
            return True
        return media_type in IMAGE_MEDIA_TYPES and (config_type is None or config_type in IMAGE_CONFIG_TYPES)


@dataclass(frozen=True, slots=True)
class Policy:
    """A stored replication policy (the service's record; `wire` is the route's concern)."""

    policy_id: int
    name: str
    description: str = ""
    src_registry_id: int = LOCAL
    dest_registry_id: int = LOCAL
    dest_namespace: str = ""
    dest_namespace_replace_count: int = -1
    filters: tuple[Filter, ...] = ()
    trigger_type: str = MANUAL
    cron: str = ""
    replicate_deletion: bool = False
    override: bool = False
    enabled: bool = True
    speed: int = 0
    copy_by_chunk: bool = False
    single_active_replication: bool = False
    creator: str = ""
    created_at: int = 0
    updated_at: int = 0
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pull_based(self) -> bool:
        return self.src_registry_id != LOCAL

    @property
    def remote_id(self) -> int:
        return self.src_registry_id or self.dest_registry_id

    def parsed_filters(self) -> Filters:
        return parse_filters(self.filters)

    def destination(self, repository: str) -> str:
        return destination_repository(repository, self.dest_namespace, self.dest_namespace_replace_count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "src_registry_id": self.src_registry_id,
            "dest_registry_id": self.dest_registry_id, "dest_namespace": self.dest_namespace,
            "dest_namespace_replace_count": self.dest_namespace_replace_count,
            "filters": [f.wire() for f in self.filters], "trigger_type": self.trigger_type, "cron": self.cron,
            "replicate_deletion": self.replicate_deletion, "override": self.override, "enabled": self.enabled,
            "speed": self.speed, "copy_by_chunk": self.copy_by_chunk,
            "single_active_replication": self.single_active_replication, "creator": self.creator,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, policy_id: int, data: dict[str, Any], *, created_at: int = 0, updated_at: int = 0,
                  version: int = 1) -> Policy:  # fmt: skip
        filters = tuple(_filter(f) for f in data.get("filters") or [])
        return cls(
            policy_id=policy_id, name=str(data["name"]), description=str(data.get("description") or ""),
            src_registry_id=int(data.get("src_registry_id") or 0),
            dest_registry_id=int(data.get("dest_registry_id") or 0),
            dest_namespace=str(data.get("dest_namespace") or ""),
            dest_namespace_replace_count=int(data.get("dest_namespace_replace_count", -1)), filters=filters,
            trigger_type=str(data.get("trigger_type") or MANUAL), cron=str(data.get("cron") or ""),
            replicate_deletion=bool(data.get("replicate_deletion")), override=bool(data.get("override")),
            enabled=bool(data.get("enabled", True)), speed=int(data.get("speed") or 0),
            copy_by_chunk=bool(data.get("copy_by_chunk")),
            single_active_replication=bool(data.get("single_active_replication")),
            creator=str(data.get("creator") or ""), created_at=created_at, updated_at=updated_at, version=version,
        )  # fmt: skip


def _filter(data: dict[str, Any]) -> Filter:
    value = data.get("value")
    return Filter(str(data.get("type") or ""), tuple(value) if isinstance(value, list) else str(value or ""),
                  str(data.get("decoration") or ""))  # fmt: skip


def check_filter(data: dict[str, Any]) -> Filter:
    """One of Harbor's filters, validated (its `Filter.Validate`, plus the doublestar syntax)."""
    kind, value, decoration = data.get("type"), data.get("value"), data.get("decoration") or ""
    if kind in (FILTER_NAME, FILTER_TAG, FILTER_RESOURCE):
        if not isinstance(value, str):
            raise InvalidReplicationPolicy("the type of filter value isn't string")
        if kind == FILTER_RESOURCE and value not in (RESOURCE_IMAGE, RESOURCE_ARTIFACT):
            raise InvalidReplicationPolicy(f"invalid resource filter: {value[:64]}")
        if kind in (FILTER_NAME, FILTER_TAG):
            try:
                validate(value)
            except InvalidPattern as exc:
                raise InvalidReplicationPolicy(f"invalid {kind} filter: {exc}") from None
        result = Filter(kind, value, "")
    elif kind == FILTER_LABEL:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidReplicationPolicy("the type of label filter value isn't string slice")
        if len(value) > MAX_LABELS:
            raise InvalidReplicationPolicy(f"a label filter names at most {MAX_LABELS} labels")
        result = Filter(kind, tuple(value), "")
    else:
        raise InvalidReplicationPolicy("invalid filter type")
    if decoration and decoration not in (MATCHES, EXCLUDES):
        raise InvalidReplicationPolicy(f"invalid filter decoration, :{str(decoration)[:32]}")
    if decoration and kind in (FILTER_TAG, FILTER_LABEL):
        result = Filter(result.type, result.value, decoration)
    return result


def parse_filters(filters: tuple[Filter, ...] | list[Filter]) -> Filters:
    """The filters as one selection; the last filter of a type wins, as in Harbor's listing."""
    out: dict[str, Any] = {}
    for f in filters:
        if f.type == FILTER_NAME:
            out["name"] = f.value
        elif f.type == FILTER_TAG:
            out["tag"], out["tag_decoration"] = f.value, f.decoration
        elif f.type == FILTER_LABEL and isinstance(f.value, tuple):
            out["labels"], out["label_decoration"] = f.value, f.decoration
        elif f.type == FILTER_RESOURCE:
            out["resource"] = f.value
    return Filters(**out)


def validate_policy(policy: Policy) -> Policy:  # noqa: PLR0912 (one branch per Harbor rule)
    """Harbor's `Policy.Validate`: a name, exactly one remote side, valid filters, namespace and
    trigger (a scheduled trigger has a 6-field cron). `single_active_replication` is refused with
    an event-based trigger, whose runs are one per event."""
    if not policy.name.strip():
        raise InvalidReplicationPolicy("empty name")
    if len(policy.name) > NAME_MAX:
        raise InvalidReplicationPolicy(f"the name is longer than {NAME_MAX} characters")
    if (policy.src_registry_id == LOCAL) == (policy.dest_registry_id == LOCAL):
        raise InvalidReplicationPolicy(
            "either src_registry or dest_registry should be empty and the other one shouldn't be empty"
        )
    if policy.dest_namespace and (
        len(policy.dest_namespace) > NAME_MAX or not NAME_RE.fullmatch(policy.dest_namespace)
    ):
        raise InvalidReplicationPolicy(f"invalid destination namespace: {policy.dest_namespace[:NAME_MAX]}")
    if not REPLACE_COUNT_MIN <= policy.dest_namespace_replace_count <= REPLACE_COUNT_MAX:
        raise InvalidReplicationPolicy("dest_namespace_replace_count must be between -1 and 127")
    if policy.trigger_type not in TRIGGER_TYPES:
        raise InvalidReplicationPolicy("invalid trigger type")
    if policy.trigger_type == SCHEDULED:
        if not policy.cron:
            raise InvalidReplicationPolicy(f"the cron string cannot be empty when the trigger type is {SCHEDULED}")
        try:
            Cron.parse(policy.cron)
        except CronError:
            raise InvalidReplicationPolicy(f"invalid cron string for scheduled trigger: {policy.cron[:100]}") from None
    if policy.trigger_type == EVENT_BASED and policy.pull_based:
        raise InvalidReplicationPolicy("an event_based trigger only applies to a push-based policy")
    if policy.trigger_type == EVENT_BASED and policy.single_active_replication:
        raise InvalidReplicationPolicy("single_active_replication cannot be used with an event_based trigger")
    if policy.speed < 0:
        raise InvalidReplicationPolicy("speed must not be negative")
    if len(policy.filters) > MAX_FILTERS:
        raise InvalidReplicationPolicy(f"a policy has at most {MAX_FILTERS} filters")
    return policy


class NamespaceTooShort(ValueError):
    """The repository has fewer path components than the flattening drops."""


def destination_repository(repository: str, namespace: str, replace_count: int) -> str:
    """Where `repository` lands (Harbor's `replaceNamespace`): without a namespace, unchanged
    (a positive count still drops that many leading components); with one, the legacy mode (-1)
    keeps only the last path component under it, 0 puts the whole name under it, N drops the first
    N components and puts the rest under it. Dropping the last component is refused."""
    parts = repository.split("/")
    if replace_count < 0:
        return f"{namespace}/{parts[-1]}" if namespace else repository
    if replace_count >= len(parts):
        raise NamespaceTooShort(
            f"the source repository {repository!r} contains only {len(parts) - 1} path components excepting "
            f"the last one, but the destination namespace flattening level is {replace_count}"
        )
    rest = "/".join(parts[replace_count:])
    return f"{namespace}/{rest}" if namespace else rest


def resource_text(repository: str, tags: list[str], digest: str | None) -> str:
    """Harbor's task `src_resource`/`dst_resource`: `repo:[tag1,tag2]`, or `repo@digest` untagged."""
    if tags:
        return f"{repository}:[{','.join(tags)}]"
    return f"{repository}@{digest}" if digest else repository


def execution_status(status: str) -> str:
    """Harbor's replication API names for the job statuses (kept for backward compatibility)."""
    return {"Pending": "InProgress", "Running": "InProgress", "Success": "Succeed", "Error": "Failed"}.get(
        status, status
    )


def job_statuses(wire: str) -> tuple[str, ...]:
    """The job statuses a `status` query names (its reverse)."""
    return {"InProgress": ("Pending", "Running"), "Succeed": ("Success",), "Failed": ("Error",)}.get(wire, (wire,))


TRIGGER_WIRE = {"Manual": MANUAL, "Schedule": SCHEDULED, "Event": EVENT_BASED}
