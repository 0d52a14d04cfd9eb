"""Types that are the generic distribution client with nothing but their own credentials:
`docker-registry` (any distribution-API registry), and `github-ghcr`, `quay` and `gitlab`, whose
registries hand out tokens through the standard challenge flow for a user name and a personal
access token (or robot token, or deploy token). Listing uses `_catalog`, which ghcr.io, quay.io and
GitLab restrict or refuse: with them a policy names its repositories (a literal name filter)."""

from __future__ import annotations

from typing import ClassVar

from chalicelib.adapters.registry.base import AdapterPattern, RegistryAdapter


class DockerRegistryAdapter(RegistryAdapter):
    type: ClassVar[str] = "docker-registry"


class GithubGhcrAdapter(RegistryAdapter):
    type: ClassVar[str] = "github-ghcr"
    description: ClassVar[str] = "GitHub Container Registry (user name and personal access token)"
    pattern: ClassVar[AdapterPattern] = AdapterPattern(
        endpoint_type="EndpointPatternTypeFix", endpoints=(("ghcr.io", "https://ghcr.io"),)
    )
    copy_by_chunk: ClassVar[bool] = False


class QuayAdapter(RegistryAdapter):
    type: ClassVar[str] = "quay"
    description: ClassVar[str] = "Quay (user or robot account and its token)"
    copy_by_chunk: ClassVar[bool] = False


class GitlabAdapter(RegistryAdapter):
    type: ClassVar[str] = "gitlab"
    description: ClassVar[str] = "GitLab container registry (user name and personal or deploy token)"
    copy_by_chunk: ClassVar[bool] = False
