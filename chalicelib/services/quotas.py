"""Per-project storage quotas with Harbor's semantics.

A blob counts once per project: it is charged when it first enters the project (blob upload,
cross-project mount, manifest push) and released when no manifest of the project references it any
more (manifest delete). Blobs uploaded but never referenced keep counting until garbage collection,
as in Harbor. Exceeding the limit is 403 DENIED with Harbor's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.core.identity import UNLIMITED, Principal, Project
from chalicelib.errors import BadRequest, Forbidden, QuotaExceeded, Unauthorized
from chalicelib.events import Event, EventBus, EventType
from chalicelib.stores.projects import QuotaExceededError

if TYPE_CHECKING:
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.projects import ProjectStore


def quota_view(project: Project) -> dict[str, Any]:
    return {
        "id": project.project_id,
        "ref": {"id": project.project_id, "name": project.name, "owner_name": project.owner_name},
        "hard": {"storage": project.storage_limit},
        "used": {"storage": project.storage_used},
        "creation_time": project.created_at,
        "update_time": project.updated_at,
    }


class QuotaService:
    def __init__(self, store: ProjectStore, projects: ProjectService, events: EventBus) -> None:
        self._store = store
        self._projects = projects
        self._events = events

    def charge(self, project: str, digest: str, size: int, repository: str) -> bool:
        """Count a blob in its project once; QuotaExceeded (403) if that passes the limit (and a
        QUOTA_EXCEED event naming the repository the push was for)."""
        try:
            return self._store.associate_blob(project, digest, size)
        except QuotaExceededError as exc:
            p = exc.project
            message = (
                f"Quota exceeded when processing the request of adding {size} of storage resource, which when "
                f"updated to current usage of {p.storage_used} will exceed the configured upper limit of "
                f"{p.storage_limit}."
            )
            # Webhook policies hear of it (QUOTA_EXCEED); nothing was written.
            self._events.publish(
                Event.now(
                    EventType.QUOTA_EXCEED,
                    project=p.name,
                    repository=repository,
                    digest=digest,
                    size=size,
                    detail={"details": message},
                )
            )
            raise QuotaExceeded(message, {"project": p.name}) from None

    def count_all(self, project: str, repository: str, sizes: dict[str, int]) -> list[str]:
        """Make sure the project counts every digest (a manifest push, after `track_manifest`):
        charge those it does not count yet, and stop any release in progress of those it does.
        Returns the digests charged here (the caller releases them if the push fails)."""
        charged: list[str] = []
        try:
            counted = self._store.counted(project, list(sizes))
            for digest, size in sizes.items():
                if digest in counted and (not counted[digest] or self._store.keep_blob(project, digest)):
                    continue
                if self.charge(project, digest, size, repository):
                    charged.append(digest)
        except BaseException:
            for digest in charged:
                self.release(project, digest)
            raise
        return charged

    def release(self, project: str, digest: str) -> None:
        """Uncount a blob unless a manifest of the project still references it."""
        self._store.release_blob(project, digest)

    def track_manifest(self, project: str, repository: str, manifest: str, blobs: list[str]) -> None:
        self._store.add_references(project, repository, manifest, blobs)

    def untrack_manifest(self, project: str, repository: str, manifest: str, blobs: list[str]) -> None:
        """After a manifest delete: release what no manifest of the project references any more
        (`release_blob` checks again, safely against a push that references it meanwhile)."""
        for digest in self._store.remove_references(project, repository, manifest, blobs):
            self._store.release_blob(project, digest)

    def forget_manifest(self, project: str, repository: str, manifest: str, blobs: list[str]) -> None:
        """A manifest that was not stored after all: remove its references, release nothing."""
        self._store.remove_references(project, repository, manifest, blobs)

    def list(self, caller: Principal, reference_id: int | None) -> list[Project]:
        if not caller.authenticated:
            raise Unauthorized("log in to read quotas")
        if reference_id is not None:
            project = self._projects.resolve(str(reference_id), force_name=False)
            self._projects.authorize(caller, project, "quota", "read")
            return [project]
        return self._projects.visible(caller, "quota", "read")

    def get(self, caller: Principal, quota_id: int) -> Project:
        project = self._projects.resolve(str(quota_id), force_name=False)
        self._projects.authorize(caller, project, "quota", "read")
        return project

    def set_limit(self, caller: Principal, quota_id: int, storage: Any) -> None:
        if not caller.authenticated:
            raise Unauthorized("log in first")
        if not caller.sysadmin:
            raise Forbidden("only system administrators change quotas")
        if isinstance(storage, bool) or not isinstance(storage, int) or (storage < 1 and storage != UNLIMITED):
            raise BadRequest("hard.storage must be -1 (unlimited) or a positive number of bytes")
        project = self._projects.resolve(str(quota_id), force_name=False)
        self._store.set_storage_limit(project.name, storage)
