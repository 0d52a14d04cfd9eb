"""Per-project storage quotas with Harbor's semantics.

A blob counts once per project: it is charged when it first enters the project (blob upload,
cross-project mount, manifest push) and released when no manifest of the project references it any
more (manifest delete). Blobs uploaded but never referenced keep counting until garbage collection,
as in Harbor. Exceeding the limit is 403 DENIED with Harbor's message, and a QUOTA_EXCEED event.

QUOTA_WARNING: Harbor checks after every push that charged the quota whether usage reached
`ResourcesWarningPercent` (85%) of the limit (`used*100 >= limit*percent`) and, if so, publishes
QUOTA_WARNING with "quota usage reach 85%: resource storage used X of Y" (so on every such push).
Here a warning is sent once per crossing: the project row carries `quota_warned`; the charge that
finds usage at or past the share flips it to true with a conditional write and only the request
that wins the flip publishes, so neither later pushes nor concurrent ones repeat it. The flag is
cleared (re-armed) when usage is next seen below the share: by a charge, after a limit change, and
after an artifact delete (its DELETE_ARTIFACT event, published once the delete released its
blobs). GC releasing never-referenced uploads re-arms it at the next charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.core.identity import UNLIMITED, Principal, Project
from chalicelib.errors import BadRequest, QuotaExceeded
from chalicelib.events import Event, EventBus, EventType
from chalicelib.observability import logger
from chalicelib.stores.projects import QuotaExceededError

if TYPE_CHECKING:
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.projects import ProjectStore


def display_size(value: int) -> str:
    """Bytes the way Harbor's quota messages print them: `900 B`, `1.5 KiB`, `10.0 MiB`."""
    if value < 1024:
        return f"{value} B"
    div, exp, n = 1024, 0, value // 1024
    while n >= 1024:
        div, exp, n = div * 1024, exp + 1, n // 1024
    return f"{value / div:.1f} {'KMGTPE'[exp]}iB"


class QuotaService:
    def __init__(self, store: ProjectStore, projects: ProjectService, events: EventBus,
                 warning_percent: int = 85) -> None:  # fmt: skip
        self._store = store
        self._projects = projects
        self._events = events
        self._warning_percent = warning_percent

    def charge(self, project: str, digest: str, size: int, repository: str, *, unlimited: bool = False) -> bool:
        """Count a blob in its project once; QuotaExceeded (403) if that passes the limit (and a
        QUOTA_EXCEED event naming the repository the push was for).

        `unlimited`: a read earlier in this request found the project without a storage limit, so
        the warning check (a read after the charge) is skipped. The charge itself still enforces
        whatever limit the project has when it is written; only a limit set while this push runs
        can go unwarned, until the next charge, as if that limit had been set just after it."""
        try:
            counted = self._store.associate_blob(project, digest, size)
        except QuotaExceededError as exc:
            p = exc.project
            message = (
                f"Quota exceeded when processing the request of adding {size} of storage resource, which when "
                f"updated to current usage of {p.storage_used} will exceed the configured upper limit of "
                f"{p.storage_limit}."
            )
            # Webhook policies hear of it (QUOTA_EXCEED); nothing was written.
            self._events.emit(
                EventType.QUOTA_EXCEED,
                project=p.name,
                repository=repository,
                digest=digest,
                size=size,
                detail={"details": message},
            )
            raise QuotaExceeded(message, {"project": p.name}) from None
        if counted and not unlimited:
            self._warn_once(project, repository, digest, size)
        return counted

    def _warn_once(self, project: str, repository: str | None = None, digest: str | None = None,
                   size: int | None = None) -> None:  # fmt: skip
        """Publish QUOTA_WARNING if usage crossed the warning share (once per crossing), or re-arm
        the warning when usage is below it. Without a repository it only re-arms (the checks
        after a delete or a limit change; Harbor warns only on pushes). Never raises: the charge
        it follows has succeeded."""
        try:
            state = self._store.usage(project)
            if state is None or state[1] == UNLIMITED:
                return
            used, limit, warned = state
            threshold = -(-limit * self._warning_percent // 100)  # the least usage that is past the share
            if used < threshold:
                if warned:
                    self._store.mark_quota_warned(project, False, limit, threshold)
                return
            if warned or repository is None or not self._store.mark_quota_warned(project, True, limit, threshold):
                return
        except Exception:
            logger.exception("quota warning check failed", extra={"project": project})
            return
        message = (f"quota usage reach {self._warning_percent}%: resource storage used {display_size(used)} "
                   f"of {display_size(limit)}")  # fmt: skip
        self._events.emit(
            EventType.QUOTA_WARNING,
            project=project,
            repository=repository,
            digest=digest,
            size=size,
            detail={"details": message},
        )

    def on_event(self, event: Event) -> None:
        """An artifact delete (published after it released the project's blobs) may take usage
        back below the warning share: re-arm the warning then."""
        if event.type is EventType.DELETE_ARTIFACT and event.project:
            self._warn_once(event.project)

    def count_all(self, project: str, repository: str, sizes: dict[str, int]) -> list[str]:
        """Make sure the project counts every digest (a manifest push, after `track_manifest`):
        charge those it does not count yet, and stop any release in progress of those it does.
        Returns the digests charged here (the caller releases them if the push fails)."""
        charged: list[str] = []
        try:
            counted, unlimited = self._store.counted_and_limit(project, list(sizes))
            for digest, size in sizes.items():
                if digest in counted and (not counted[digest] or self._store.keep_blob(project, digest)):
                    continue
                if self.charge(project, digest, size, repository, unlimited=unlimited):
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
        """After a manifest delete: release what no manifest of the project references any more.

        One Query per blob skips those still referenced (shared layers, the common case) without
        a write; `release_blob` checks again, safely against a push that references it meanwhile."""
        self._store.remove_references(project, repository, manifest, blobs)
        for digest in dict.fromkeys([manifest, *blobs]):
            if not self._store.referenced(project, digest):
                self._store.release_blob(project, digest)

    def forget_manifest(self, project: str, repository: str, manifest: str, blobs: list[str]) -> None:
        """A manifest that was not stored after all: remove its references, release nothing
        (its caller gives back what the push itself charged)."""
        self._store.remove_references(project, repository, manifest, blobs)

    def list(self, caller: Principal) -> list[Project]:
        """The quotas (projects) whose quota the caller may read."""
        return self._projects.visible(caller, "quota", "read")

    def get(self, quota_id: int) -> Project:
        """A quota's id is its project's."""
        return self._projects.resolve(str(quota_id), force_name=False)

    def set_limit(self, quota_id: int, storage: Any) -> None:
        if isinstance(storage, bool) or not isinstance(storage, int) or (storage < 1 and storage != UNLIMITED):
            raise BadRequest("hard.storage must be -1 (unlimited) or a positive number of bytes")
        project = self._projects.resolve(str(quota_id), force_name=False)
        self._store.set_storage_limit(project.name, storage)
        self._warn_once(project.name)  # a higher limit re-arms the warning
