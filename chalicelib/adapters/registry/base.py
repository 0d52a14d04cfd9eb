"""The interface every remote-registry type implements, and the plain distribution behaviour the
types share (`docker-registry` is exactly this).

An adapter is the generic `RegistryClient` plus what differs per vendor: where the credentials come
from, how repositories are listed, what must exist before a push, how a tag is deleted, and what the
type declares to Harbor's UI (`info()` is `/registries/{id}/info`, `pattern` is one entry of
`/replication/adapterinfos`). Replication and the proxy cache use the client for content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chalicelib.adapters.egress import EgressSession
from chalicelib.adapters.registry.auth import BasicCredentials, CredentialSource, StaticCredentials
from chalicelib.adapters.registry.client import ClientOptions, RegistryClient
from chalicelib.adapters.registry.errors import RemoteError, RemoteNotFound, RemoteUnauthorized
from chalicelib.core.selectors import EXCLUDES, matches

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

# Harbor's filter styles, trigger types and path-component rules (its registry model's constants).
STYLE_INPUT, STYLE_RADIO, STYLE_LIST = "input", "radio", "list"
MANUAL, SCHEDULED, EVENT_BASED = "manual", "scheduled", "event_based"
ONLY_TWO, AT_LEAST_TWO = "ONLY_TWO", "AT_LEAST_TWO"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a registry record gives its adapter. The secret never appears in a repr."""

    type: str
    url: str
    access_key: str = ""
    access_secret: str = field(default="", repr=False)
    insecure: bool = False
    # Overrides for what a type otherwise fixes (Docker Hub's registry host, ECR's region and API
    # endpoint): tests point them at local doubles; operators at mirrors or VPC endpoints.
    settings: dict[str, str] = field(default_factory=dict)

    def basic(self) -> BasicCredentials | None:
        return BasicCredentials(self.access_key, self.access_secret) if self.access_key else None


@dataclass(frozen=True, slots=True)
class FilterStyle:
    type: str
    style: str
    values: tuple[str, ...] = ()

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "style": self.style}
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class RegistryInfo:
    """`GET /registries/{id}/info`: what a policy on this registry may use."""

    type: str
    filters: tuple[FilterStyle, ...]
    triggers: tuple[str, ...]
    path_components: str = ""
    copy_by_chunk: bool = False
    description: str = ""

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "description": self.description,
            "supported_resource_filters": [f.wire() for f in self.filters],
            "supported_triggers": list(self.triggers),
            "supported_repository_path_component_type": self.path_components,
        }
        if self.copy_by_chunk:  # Harbor omits it when false
            out["supported_copy_by_chunk"] = True
        return out


@dataclass(frozen=True, slots=True)
class AdapterPattern:
    """One entry of `/replication/adapterinfos`: how the UI asks for the endpoint and credentials."""

    endpoint_type: str = "EndpointPatternTypeStandard"
    endpoints: tuple[tuple[str, str], ...] = ()
    access_key_type: str = "AccessKeyTypeStandard"
    access_key_data: str = ""
    access_secret_type: str = "AccessSecretTypePass"  # noqa: S105 (a Harbor enum value, not a secret)
    access_secret_data: str = ""

    def wire(self) -> dict[str, Any]:
        return {
            "endpoint_pattern": {
                "endpoint_type": self.endpoint_type,
                "endpoints": [{"key": key, "value": value} for key, value in self.endpoints],
            },
            "credential_pattern": {
                "access_key_type": self.access_key_type,
                "access_key_data": self.access_key_data,
                "access_secret_type": self.access_secret_type,
                "access_secret_data": self.access_secret_data,
            },
        }


NAME_AND_TAG = (FilterStyle("name", STYLE_INPUT), FilterStyle("tag", STYLE_INPUT))


class RegistryAdapter:
    """A remote registry of one type. The base behaviour is plain distribution (`docker-registry`):
    health is `GET /v2/`, listing is `_catalog` plus `tags/list`, nothing to prepare before a push."""

    type: ClassVar[str] = "docker-registry"
    description: ClassVar[str] = "a registry speaking the OCI distribution API"
    pattern: ClassVar[AdapterPattern] = AdapterPattern()
    filters: ClassVar[tuple[FilterStyle, ...]] = NAME_AND_TAG
    triggers: ClassVar[tuple[str, ...]] = (MANUAL, SCHEDULED)
    path_components: ClassVar[str] = ""
    copy_by_chunk: ClassVar[bool] = True

    def __init__(
        self,
        endpoint: Endpoint,
        session: EgressSession,
        *,
        options: ClientOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.session = session
        self.clock = clock
        self.sleep = sleep
        self.options = options or ClientOptions()
        self.client = RegistryClient(
            self.registry_url(), self.credentials(), session, options=self.options, sleep=sleep, clock=clock
        )

    # What a type changes.

    def registry_url(self) -> str:
        """Where the distribution API is (the endpoint URL, unless the type says otherwise)."""
        return self.endpoint.url.rstrip("/")

    def credentials(self) -> CredentialSource:
        return StaticCredentials(self.endpoint.basic())

    def info(self) -> RegistryInfo:
        return RegistryInfo(
            self.type, self.filters, self.triggers, self.path_components, self.copy_by_chunk, self.description
        )

    def remote_repository(self, name: str) -> str:
        """The name the remote knows a repository by (Docker Hub adds `library/`)."""
        return name

    def health(self) -> str:
        """`healthy` when `/v2/` answers: with credentials they must be accepted; without, a 401
        still shows a live registry (Harbor's rule)."""
        try:
            self.client.ping()
        except RemoteUnauthorized:
            return UNHEALTHY if self.endpoint.access_key else HEALTHY
        except RemoteError:
            return UNHEALTHY
        return HEALTHY

    def repositories(self) -> Iterator[str]:
        return self.client.catalog()

    def tags(self, repository: str) -> Iterator[str]:
        return self.client.tags(self.remote_repository(repository))

    def artifacts(
        self, name: str = "", tag: str = "", tag_decoration: str = "", labels: tuple[str, ...] = (),
        label_decoration: str = "",
    ) -> Iterator[tuple[str, list[str]]]:  # fmt: skip
        """Each repository matching the `name` filter, with its tags the `tag` filter keeps
        (doublestar patterns, as Harbor's filters; `tag_decoration="excludes"` inverts the tag
        filter; empty patterns keep everything). A name filter naming repositories literally
        (`a/b`, `{a/b,c/d}`) is not matched against a listing: no catalogue is read, which is how
        registries that refuse `_catalog` are replicated. Repositories without a kept tag are left out.
        Only Harbor has labels. Here every artifact has none, and Harbor's label filter treats it so:
        `matches` (carries every label named) selects nothing, `excludes` everything."""
        if labels and label_decoration != EXCLUDES:
            return
        for repository in self.matching_repositories(name):
            try:
                tags = [t for t in self.tags(repository) if matches(tag, t) != (tag_decoration == EXCLUDES)]
            except RemoteNotFound:
                continue
            if tags:
                yield repository, tags

    def matching_repositories(self, name: str) -> Iterator[str]:
        """The repositories a name filter selects: the names it spells out, or the listing matched."""
        named = literal_names(name)
        return iter(named) if named else (r for r in self.repositories() if matches(name, r))

    def prepare_for_push(self, repositories: Iterable[str]) -> None:
        """Create what must exist before these repositories can be pushed to (nothing, here)."""

    def mount_source(self, digest: str) -> str | None:
        """A repository on the remote from which `digest` can be mounted, when the type can tell
        (plain distribution cannot: Harbor's native adapter never mounts either)."""
        return None

    def delete_tag(self, repository: str, tag: str) -> None:
        self.client.delete_tag(self.remote_repository(repository), tag)


_GLOB = frozenset("*?[]\\")


def literal_names(pattern: str) -> list[str]:
    """The repository names a name filter spells out (`a/b`, or `{a/b,c/d}`), or [] when it is a
    pattern that needs a listing to match against."""
    if not pattern or any(char in _GLOB for char in pattern):
        return []
    if pattern.startswith("{") and pattern.endswith("}") and pattern.count("{") == 1 and pattern.count("}") == 1:
        return [part for part in pattern[1:-1].split(",") if part]
    return [] if any(char in "{}," for char in pattern) else [pattern]
