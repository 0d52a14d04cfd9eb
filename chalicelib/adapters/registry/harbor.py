"""`harbor`: a Harbor v2 (or this registry) peer. Content goes through the distribution API like
any registry; Harbor's management API lists projects and repositories (no `_catalog` needed),
creates the projects a push needs, refuses to push into a proxy-cache project, and deletes tags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar
from urllib.parse import quote

from chalicelib.adapters.registry.api import JsonApi
from chalicelib.adapters.registry.base import (
    EVENT_BASED,
    MANUAL,
    SCHEDULED,
    STYLE_INPUT,
    STYLE_RADIO,
    FilterStyle,
    RegistryAdapter,
)
from chalicelib.adapters.registry.errors import RemoteError, RemoteNotFound
from chalicelib.core.selectors import EXCLUDES, matches

API = "/api/v2.0"


class HarborAdapter(RegistryAdapter):
    type: ClassVar[str] = "harbor"
    description: ClassVar[str] = "Harbor v2, or another instance of this registry"
    filters: ClassVar[tuple[FilterStyle, ...]] = (
        FilterStyle("name", STYLE_INPUT),
        FilterStyle("tag", STYLE_INPUT),
        FilterStyle("label", STYLE_INPUT),
        FilterStyle("resource", STYLE_RADIO, ("image", "artifact")),
    )
    triggers: ClassVar[tuple[str, ...]] = (MANUAL, SCHEDULED, EVENT_BASED)

    @property
    def api(self) -> JsonApi:
        basic = self.endpoint.basic()
        return JsonApi(
            self.registry_url(),
            self.session,
            lambda: basic.header() if basic else None,
            self.options.retry,
            self.sleep,
        )

    def health(self) -> str:
        """`/api/v2.0/ping` answers, and `/v2/` accepts the credentials (when there are some)."""
        try:
            self.api.call("GET", f"{API}/ping")
        except RemoteError:
            return "unhealthy"
        return super().health()

    def repositories(self) -> Iterator[str]:
        api = self.api
        for project in api.pages(f"{API}/projects?page_size=100"):
            name = project["name"]
            for repository in api.pages(f"{API}/projects/{quote(name, safe='')}/repositories?page_size=100"):
                yield str(repository["name"])

    def artifacts(
        self, name: str = "", tag: str = "", tag_decoration: str = "", labels: tuple[str, ...] = (),
        label_decoration: str = "",
    ) -> Iterator[tuple[str, list[str]]]:  # fmt: skip
        """As the base listing, but from Harbor's artifact API, so a label filter applies (Harbor's
        `artifactLabelFilter`): an artifact carrying every label named is kept by `matches` and
        left out by `excludes`."""
        if not labels:
            yield from super().artifacts(name, tag, tag_decoration)
            return
        api = self.api
        for repository in self.matching_repositories(name):
            path = _repository_path(repository)
            kept: list[str] = []
            try:
                for artifact in api.pages(f"{path}/artifacts?page_size=100&with_tag=true&with_label=true"):
                    names = {label.get("name") for label in artifact.get("labels") or []}
                    if (set(labels) <= names) != (label_decoration == EXCLUDES):
                        tags = [t["name"] for t in artifact.get("tags") or []]
                        kept += [t for t in tags if matches(tag, t) != (tag_decoration == EXCLUDES)]
            except RemoteNotFound:
                continue
            if kept:
                yield repository, kept

    def prepare_for_push(self, repositories: Iterable[str]) -> None:
        """Each repository's project exists (created private when missing; a concurrent creation,
        409, is fine) and is not a proxy-cache project, which only its upstream may fill."""
        api = self.api
        for project in sorted({name.split("/", 1)[0] for name in repositories}):
            status, _ = api.call("HEAD", f"{API}/projects?project_name={quote(project, safe='')}", expect=(200, 404))
            if status == 404:
                body = {"project_name": project, "metadata": {"public": "false"}}
                api.call("POST", f"{API}/projects", body, expect=(201, 409))
            found = api.get(f"{API}/projects/{quote(project, safe='')}")
            if isinstance(found, dict) and int(found.get("registry_id") or 0) > 0:
                raise RemoteError(
                    f"project {project} on {self.registry_url()} is a proxy cache: it cannot be pushed to"
                )

    def delete_tag(self, repository: str, tag: str) -> None:
        artifact = f"{_repository_path(repository)}/artifacts/{quote(tag)}"
        self.api.call("DELETE", f"{artifact}/tags/{quote(tag)}")


def _repository_path(repository: str) -> str:
    """`/api/v2.0/projects/<p>/repositories/<r>` with Harbor's double-encoded repository name."""
    project, _, rest = repository.partition("/")
    return f"{API}/projects/{quote(project, safe='')}/repositories/{quote(quote(rest, safe=''), safe='')}"
