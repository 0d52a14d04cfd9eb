"""Repositories: the /v2 discovery endpoints (tags, catalog, referrers) and Harbor's repository
catalogue (list, get, describe, delete, search, pull counts).

Costs, since nothing here may Scan:
- a project's repositories are one Query on the `REPOS` partition (`begins_with("<project>/")`);
  all repositories the caller sees are one Query on the whole partition (a sysadmin, or a caller
  who sees many projects) or one Query per visible project;
- `artifact_count` is a `Select=COUNT` Query per repository, made only for the page being returned
  (at most `page_size`, 8 at a time). DynamoDB charges it for the manifest rows it reads (inline
  bodies included): 1,000 manifests of ~1.7 KB rows are ~1.7 MB, about 210 RCU per count with
  eventual consistency (moto: 1.7 ms for 10, 10 ms for 100, 50-110 ms for 1,000 manifests).
  The alternative, a counter on the repository row moved in the manifest PUT/DELETE
  transactions, is cheaper to read but needs those writes (stores/manifests.py) to know whether
  the manifest is new: the PUT is an upsert that cannot tell, and the delete is a lone
  conditional DeleteItem. Both would become conditional on a prior read (retried when a racing
  push or delete changes it), and rows older than the counter would need a backfill.
- pull counts are coalesced in memory: at most one write per repository per flush window.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.core import mediatypes as mt
from chalicelib.core.catalog import Repository
from chalicelib.core.digest import Digest
from chalicelib.core.manifest import index_descriptors, parse_manifest
from chalicelib.core.reference import validate_name
from chalicelib.errors import Conflict, ManifestUnknown, NameUnknown, NotFound

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.repositories import RepositoryStore

Located = tuple[Repository, "Project"]
"""A repository with the project it belongs to."""

# Visible projects up to this many are listed with one Query each; more, with one partition Query.
_PER_PROJECT_QUERIES_MAX = 10
# Count Queries run side by side for one page of repositories.
_COUNT_WORKERS = 8
# Delete rounds: an index goes before its children, so nesting depth bounds the rounds needed.
_DELETE_ROUNDS_MAX = 8


class RepositoryService:
    def __init__(
        self,
        manifests: ManifestStore,
        repositories: RepositoryStore,
        projects: ProjectService,
        manifest_service: ManifestService,
    ) -> None:
        self._manifests = manifests
        self._repositories = repositories
        self._projects = projects
        self._manifest_service = manifest_service

    def tags(self, repository: str, limit: int, last: str | None) -> tuple[list[str], bool]:
        if not self._manifests.repository_exists(repository):
            raise NameUnknown(detail={"name": repository})
        if limit == 0:
            return [], False
        return self._manifests.list_tags(repository, limit, last)

    def catalog(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        if limit == 0:
            return [], False
        return self._manifests.list_repositories(limit, last)

    def referrers(self, repository: str, subject_text: str, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose `subject` is the digest, plus those a client listed
        in a referrers fallback tag (`<alg>-<hex>`) before the API existed for it."""
        subject = Digest.parse(subject_text)
        found: dict[str, dict[str, Any]] = {
            r.digest: r.descriptor() for r in self._manifests.referrers(repository, str(subject))
        }
        for descriptor in self._fallback_descriptors(repository, subject):
            found.setdefault(descriptor["digest"], descriptor)
        descriptors = list(found.values())
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        return descriptors

    def _fallback_descriptors(self, repository: str, subject: Digest) -> list[dict[str, Any]]:
        tag_digest = self._manifests.resolve_tag(repository, f"{subject.algorithm}-{subject.hex}"[:128])
        if tag_digest is None:
            return []
        index = self._manifests.get(repository, tag_digest)
        if index is None or index.media_type not in mt.INDEXES:
            return []
        keep = ("mediaType", "digest", "size", "artifactType", "annotations")
        return [{k: d[k] for k in keep if k in d} for d in index_descriptors(index.body)]

    # The management API's repository catalogue.

    def visible(self, caller: Principal) -> list[Located]:
        """Every repository in a project the caller may read (Harbor: member or public; all for a
        system administrator), with its project."""
        return self._in_projects(caller, self._projects.visible(caller))

    def _in_projects(self, caller: Principal, visible: list[Project]) -> list[Located]:
        projects = {p.name: p for p in visible}
        if caller.sysadmin or len(projects) > _PER_PROJECT_QUERIES_MAX:
            found = self._repositories.find()
        else:
            found = [r for name in sorted(projects) for r in self._repositories.find(name)]
        return [(r, projects[r.project]) for r in found if r.project in projects]

    def in_project(self, project: Project) -> list[Repository]:
        return self._repositories.find(project.name)

    def get(self, project: Project, name: str) -> Repository:
        """One repository, with its id."""
        return self._repositories.ensure_id(self._existing(project, name))

    def with_ids(self, repositories: list[Repository]) -> list[Repository]:
        """The repositories with their integer ids (assigned now to any that has none)."""
        return [self._repositories.ensure_id(r) for r in repositories]

    def artifact_count(self, name: str) -> int:
        return self._repositories.artifact_count(name)

    def artifact_counts(self, names: list[str]) -> dict[str, int]:
        """Counts of several repositories, queried side by side (a page holds up to 100): the
        latency of a few count Queries instead of the sum of all of them."""
        if len(names) <= 1:
            return {name: self.artifact_count(name) for name in names}
        with ThreadPoolExecutor(max_workers=min(_COUNT_WORKERS, len(names))) as pool:
            return dict(zip(names, pool.map(self.artifact_count, names), strict=True))

    def describe(self, project: Project, name: str, description: str) -> None:
        repository = self._existing(project, name)
        if not self._repositories.set_description(repository.name, description):
            raise NotFound(f"repository {repository.name} not found")

    def delete(self, project: Project, name: str) -> None:
        """Delete every artifact (indexes before their children, as Harbor does) through the
        manifest service, so tags, quota and events follow the same rules as a single delete;
        then the repository row. Blobs are left to garbage collection."""
        repository = self._existing(project, name)
        token = self._repositories.mark_deleting(repository.name)
        if token is None:
            raise NotFound(f"repository {repository.name} not found")
        try:
            self._delete_artifacts(repository.name)
            if not self._repositories.delete(repository, token):
                raise Conflict(f"repository {repository.name} was pushed to while it was being deleted; retry")
        except BaseException:
            self._repositories.unmark(repository.name, token, repository.updated_at)
            raise

    def _delete_artifacts(self, name: str) -> None:
        for _round in range(_DELETE_ROUNDS_MAX):
            artifacts = self._repositories.artifacts(name)
            if not artifacts:
                return
            referenced = {
                child
                for digest, children, in_body in artifacts
                for child in self._children(name, digest, children, in_body)
            }
            for digest, _children, _in_body in artifacts:
                if digest not in referenced:
                    with contextlib.suppress(ManifestUnknown):  # deleted concurrently: fine
                        self._manifest_service.delete(name, digest)

    def search(self, caller: Principal, text: str, limit: int) -> tuple[list[Project], list[Located]]:
        """Projects and repositories whose name contains `text`, among those the caller may read.

        Two Queries (the project list and the repository partition) filtered in memory; each
        result list is cut at `limit` so the per-result counts that follow stay bounded."""
        visible = self._projects.visible(caller)
        projects = [p for p in visible if text in p.name][:limit]
        # Harbor matches repository names case-insensitively (SQL ILIKE); they are lower case.
        repositories = [(r, p) for r, p in self._in_projects(caller, visible) if text.lower() in r.name][:limit]
        return projects, repositories

    def _existing(self, project: Project, name: str) -> Repository:
        full = validate_name(f"{project.name}/{name}")
        repository = self._repositories.get(full)
        if repository is None:
            raise NotFound(f"repository {full} not found")
        return repository

    def _children(self, repository: str, digest: str, children: list[str], in_body: bool) -> list[str]:
        if not in_body:
            return children
        stored = self._manifests.get(repository, digest)
        if stored is None:
            return []
        return list(parse_manifest(stored.body, stored.media_type, digest).children)


def referrer_index(descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
