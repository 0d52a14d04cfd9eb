"""`docker-hub`: content from the Hub's registry (`registry-1.docker.io`, token auth through the
challenge flow), listing, namespace creation and tag deletion through the Hub's own API
(`hub.docker.com`), which the distribution API does not offer there (no `_catalog`, no DELETE).

Both base URLs can be changed in the endpoint's settings (`registry_url`, `hub_url`), so tests run
against a local double and operators against a mirror. Hub names have exactly two components:
a one-component name is an official image under `library/`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from chalicelib.adapters.registry.api import JsonApi
from chalicelib.adapters.registry.base import ONLY_TWO, AdapterPattern, RegistryAdapter
from chalicelib.adapters.registry.errors import RemoteError

HUB_URL = "https://hub.docker.com"
REGISTRY_URL = "https://registry-1.docker.io"
# Hub API tokens live about ten minutes; one is renewed after this many seconds.
HUB_TOKEN_SECONDS = 300


def hub_name(name: str) -> str:
    """`alpine` -> `library/alpine`; names with a namespace are unchanged."""
    return name if "/" in name else f"library/{name}"


class DockerHubAdapter(RegistryAdapter):
    type: ClassVar[str] = "docker-hub"
    description: ClassVar[str] = "Docker Hub"
    pattern: ClassVar[AdapterPattern] = AdapterPattern(
        endpoint_type="EndpointPatternTypeFix", endpoints=(("hub.docker.com", HUB_URL),)
    )
    path_components: ClassVar[str] = ONLY_TWO
    copy_by_chunk: ClassVar[bool] = False

    _hub_token: tuple[str, float] | None = None

    def registry_url(self) -> str:
        return self.endpoint.settings.get("registry_url", REGISTRY_URL).rstrip("/")

    def hub_url(self) -> str:
        return self.endpoint.settings.get("hub_url", HUB_URL).rstrip("/")

    def remote_repository(self, name: str) -> str:
        return hub_name(name)

    @property
    def hub(self) -> JsonApi:
        return JsonApi(self.hub_url(), self.session, self._hub_authorization, self.options.retry, self.sleep)

    def _hub_authorization(self) -> str | None:
        """A Hub API token from `POST /v2/auth/token` (anonymous calls when there are no credentials)."""
        basic = self.endpoint.basic()
        if basic is None:
            return None
        now = self.clock()
        if self._hub_token is None or self._hub_token[1] <= now:
            login = JsonApi(self.hub_url(), self.session, lambda: None, self.options.retry, self.sleep)
            _, answer = login.call("POST", "/v2/auth/token", {"identifier": basic.username, "secret": basic.password})
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not isinstance(token, str) or not token:
                raise RemoteError("Docker Hub's login answered without a token")
            self._hub_token = (token, now + HUB_TOKEN_SECONDS)
        return "Bearer " + self._hub_token[0]

    def repositories(self) -> Iterator[str]:
        hub = self.hub
        namespaces = hub.get("/v2/repositories/namespaces") or {}
        for namespace in namespaces.get("namespaces") or []:
            for repository in self._paged(hub, f"/v2/repositories/{quote(namespace, safe='')}/?page_size=100"):
                yield f"{repository.get('namespace') or namespace}/{repository['name']}"

    def tags(self, repository: str) -> Iterator[str]:
        namespace, name = hub_name(repository).split("/", 1)
        path = f"/v2/repositories/{quote(namespace, safe='')}/{quote(name, safe='')}/tags/?page_size=100"
        for tag in self._paged(self.hub, path):
            yield str(tag["name"])

    def _paged(self, hub: JsonApi, path: str) -> Iterator[dict[str, Any]]:
        """The Hub's own paging: results, then `next` (an absolute URL) until it is empty."""
        url: str | None = path
        while url:
            page = hub.get(url) or {}
            yield from page.get("results") or []
            url = page.get("next") or None

    def prepare_for_push(self, repositories: Iterable[str]) -> None:
        """The namespaces exist (an organisation is created when missing)."""
        hub = self.hub
        for namespace in sorted({hub_name(name).split("/", 1)[0] for name in repositories}):
            status, _ = hub.call("GET", f"/v2/orgs/{quote(namespace, safe='')}/", expect=(200, 404))
            if status == 404:
                hub.call("POST", "/v2/orgs/", {"orgname": namespace}, expect=(200, 201))

    def delete_tag(self, repository: str, tag: str) -> None:
        """The Hub deletes by tag through its API only (the registry refuses DELETE)."""
        namespace, name = hub_name(repository).split("/", 1)
        path = f"/v2/repositories/{quote(namespace, safe='')}/{quote(name, safe='')}/tags/{quote(tag, safe='')}/"
        self.hub.call("DELETE", path, expect=(200, 202, 204))
