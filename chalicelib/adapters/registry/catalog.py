"""The registry types this registry can talk to, by Harbor's type name: what
`/replication/adapters` lists and `/replication/adapterinfos` describes, and the one place that
turns a registry record into its adapter (a new vendor is one module plus one line here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.adapters.egress import EgressPolicy, EgressSession
from chalicelib.adapters.registry.base import Endpoint, RegistryAdapter
from chalicelib.adapters.registry.client import ClientOptions
from chalicelib.adapters.registry.dockerhub import DockerHubAdapter
from chalicelib.adapters.registry.ecr import AwsEcrAdapter
from chalicelib.adapters.registry.errors import RemoteError
from chalicelib.adapters.registry.harbor import HarborAdapter
from chalicelib.adapters.registry.native import DockerRegistryAdapter, GithubGhcrAdapter, GitlabAdapter, QuayAdapter

ADAPTERS: dict[str, type[RegistryAdapter]] = {
    adapter.type: adapter
    for adapter in (
        HarborAdapter,
        DockerHubAdapter,
        DockerRegistryAdapter,
        AwsEcrAdapter,
        GithubGhcrAdapter,
        QuayAdapter,
        GitlabAdapter,
    )
}


def adapter_types() -> list[str]:
    """`GET /replication/adapters`: the type names, sorted."""
    return sorted(ADAPTERS)


def adapter_infos() -> dict[str, dict[str, Any]]:
    """`GET /replication/adapterinfos`: per type, its endpoint and credential patterns."""
    return {name: ADAPTERS[name].pattern.wire() for name in adapter_types()}


def session_for(endpoint: Endpoint, policy: EgressPolicy, timeout_seconds: float) -> EgressSession:
    """The egress session for one registry: certificate checks off only when it is marked `insecure`."""
    return EgressSession(policy, timeout_seconds, verify=not endpoint.insecure)


def create_adapter(
    endpoint: Endpoint,
    session: EgressSession,
    *,
    options: ClientOptions | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> RegistryAdapter:
    """The adapter for a registry record; RemoteError for a type this registry does not support."""
    adapter = ADAPTERS.get(endpoint.type)
    if adapter is None:
        raise RemoteError(f"unsupported registry type {endpoint.type!r}; supported: {', '.join(adapter_types())}")
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if clock is not None:
        extra["clock"] = clock
    return adapter(endpoint, session, options=options, **extra)
