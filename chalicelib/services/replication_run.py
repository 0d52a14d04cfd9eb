"""A replication execution: the task body of the replication job kind (its policies:
`services/replication.py`).

An execution is a job of the executions service (vendor type `REPLICATION`) run by the
`replication` state machine (`infra/statemachines/replication.asl.json`) in three steps, so that
no copy depends on one Lambda's 15 minutes:

1. `begin` lists the candidates the policy's filters select (pull-based: from the remote registry
   through its adapter; push-based: from the local repositories and artifacts; event-based: the
   artifact the event names), prepares the destination (Harbor's `PrepareForPush`: the projects
   exist) and creates one Pending task per artifact, then hands the Map `workers` lanes (cursors
   over task ids, never artifact documents: Step Functions' 256 KB state stays small);
2. each lane loops one Lambda Task at a time; a Task copies its lane's artifacts until its time
   budget (`REGISTRY_REPLICATION_TASK_BUDGET_SECONDS`) is spent, then returns the same cursor and
   the next Task takes the artifact up again: every manifest and blob is looked up on the
   destination before it is copied, so a resumed artifact copies only what is missing, and a task
   ended (Success or Error) is never run again (conditional status moves);
3. `finish` ends the job Success when every task succeeded, Error otherwise, and publishes
   Harbor's REPLICATION event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.registry.errors import RemoteError
from chalicelib.core.jobs import Job, JobStatus, Task, Trigger
from chalicelib.core.replication import (
    COPY,
    DELETION,
    RESOURCE_ARTIFACT,
    RESOURCE_IMAGE,
    NamespaceTooShort,
    Policy,
    resource_text,
)
from chalicelib.errors import RegistryError
from chalicelib.events import EventBus, EventType
from chalicelib.observability import logger
from chalicelib.services.jobs import JobEnded
from chalicelib.services.replication_copy import Copier, LocalSide, OutOfTime, RemoteSide, Side, local_candidates

if TYPE_CHECKING:
    from chalicelib.adapters.registry.client import Manifest
    from chalicelib.services.blobs import BlobService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.registries import RegistryService
    from chalicelib.services.uploads import UploadService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.replication import ReplicationStore
    from chalicelib.stores.repositories import RepositoryStore

VENDOR = "REPLICATION"
# The most artifact Tasks one execution's lanes run before each Task takes several (history limit).
_MAX_TASK_CALLS = 3000
_LOG_LINES = 200
# The most artifacts one REPLICATION event lists (each list; well under EventBridge's 256 KB).
_ANNOUNCED_MAX = 500
_TRIGGER_TYPES = {"Manual": "MANUAL", "Schedule": "SCHEDULED", "Event": "EVENT_BASED"}


class ReplicationRun:
    def __init__(self, store: ReplicationStore, jobs: JobService, registries: RegistryService, *,
                 manifests: ManifestService, uploads: UploadService, blobs: BlobService, projects: ProjectService,
                 labels: LabelService, artifacts: ArtifactStore, manifest_store: ManifestStore,
                 repositories: RepositoryStore, events: EventBus, workers: int = 4, budget_seconds: float = 600,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._store = store
        self._jobs = jobs
        self._registries = registries
        self._manifests = manifests
        self._uploads = uploads
        self._blobs = blobs
        self._projects = projects
        self._labels = labels
        self._artifacts = artifacts
        self._manifest_store = manifest_store
        self._repositories = repositories
        self._events = events
        self._workers = workers
        self.budget_seconds = budget_seconds
        self._monotonic = monotonic

    def launch(self, policy: Policy, trigger: Trigger, resources: list[dict[str, Any]] | None) -> Job:
        parameters: dict[str, Any] = {"policy_id": policy.policy_id}
        if resources is not None:
            parameters["resources"] = resources
        job = self._jobs.record(VENDOR, trigger, parameters)
        payload = {"job_id": job.job_id}
        try:
            self._jobs.launch(job, payload, {**parameters, "payload": payload})
        except Exception as exc:
            self._jobs.finish(job.job_id, JobStatus.ERROR, f"could not start: {exc}")
            raise
        self._jobs.log(job.job_id, f"replication of policy {policy.policy_id} ({policy.name}) submitted ({trigger})")
        return self._jobs.get(job.job_id, VENDOR)

    # Sides.

    def sides(self, policy: Policy) -> tuple[Side, Side]:
        """(source, destination): the remote registry through its adapter, and this registry."""
        registry = self._registries.get(policy.remote_id)
        adapter = self._registries.client_for(registry)
        if policy.speed:
            adapter.client.options = _with_speed(adapter.client.options, policy.speed)
        remote = RemoteSide(adapter, registry.name)
        local = LocalSide(self._manifests, self._uploads, self._blobs, projects=self._projects,
                          artifacts=self._artifacts, manifest_store=self._manifest_store,
                          operator=policy.creator)  # fmt: skip
        return (remote, local) if policy.pull_based else (local, remote)

    # The execution (the state machine's Task handlers call these).

    def begin(self, job_id: int) -> dict[str, Any]:
        nothing: dict[str, Any] = {"job_id": job_id, "workers": self._workers, "lanes": []}
        try:
            job = self._jobs.begin(job_id)
        except JobEnded:
            return nothing
        policy = self._store.get(int(job.parameters["policy_id"]))
        if policy is None:
            self._jobs.finish(job_id, JobStatus.ERROR, "the replication policy no longer exists")
            return nothing
        try:
            src, dst = self.sides(policy)
            specs = self._specs(policy, job, src)
            dst.prepare(sorted({str(p["dst"]) for _, p in specs if p["operation"] == COPY}))
        except (RegistryError, RemoteError, NamespaceTooShort) as exc:
            self._jobs.finish(job_id, JobStatus.ERROR, f"{type(exc).__name__}: {exc}")
            return nothing
        tasks = self._jobs.create_tasks(job_id, specs)
        first = tasks[0].task_id if tasks else 0
        step = min(self._workers, len(specs))
        batch = max(1, -(-len(specs) // _MAX_TASK_CALLS))
        self._jobs.log(job_id, f"{len(specs)} artifacts to replicate from {src.label} to {dst.label}, {step} at a time")
        last = first + len(specs) - 1
        lanes = [{"job_id": job_id, "task_id": first + n, "step": step, "last": last, "batch": batch}
                 for n in range(step)]  # fmt: skip
        return {**nothing, "lanes": lanes}

    def _specs(self, policy: Policy, job: Job, src: Side) -> list[tuple[str, dict[str, Any]]]:
        """One task per artifact: (Harbor's `src_resource`, the task's parameters)."""
        selection = policy.parsed_filters()
        resource_type = RESOURCE_ARTIFACT if selection.resource != RESOURCE_IMAGE else RESOURCE_IMAGE
        found: list[tuple[str, str | None, list[str], bool, bool]] = []
        if "resources" in job.parameters:  # event-based: the artifact the event names
            for r in job.parameters["resources"]:
                found.append((str(r["repository"]), r.get("digest"), list(r.get("tags") or []),
                              bool(r.get("deleted")), bool(r.get("delete_tag_only"))))  # fmt: skip
        elif policy.pull_based:
            assert isinstance(src, RemoteSide)
            name, tag = selection.name, selection.tag
            listing = src.adapter.artifacts(name, tag, selection.tag_decoration, selection.labels,
                                            selection.label_decoration)  # fmt: skip
            for repository, tags in listing:
                found += [(repository, None, [t], False, False) for t in tags]
        else:
            for name, artifact, kept in local_candidates(self._repositories, self._artifacts, self._labels,
                                                         selection):  # fmt: skip
                found.append((name, artifact, kept, False, False))
        specs = []
        for repository, digest, tags, deleted, tag_only in found:
            dst = policy.destination(repository)
            operation = DELETION if deleted else COPY
            specs.append((resource_text(repository, tags, digest), {
                "src": repository, "dst": dst, "digest": digest, "tags": tags, "operation": operation,
                "tag_only": tag_only, "resource_type": resource_type,
                "dst_resource": resource_text(dst, tags, digest),
            }))  # fmt: skip
        return specs

    def run_lane(self, job_id: int, task_id: int, step: int, last: int, batch: int) -> int | None:  # noqa: PLR0911
        """Run the lane's tasks until the budget is spent; the id to go on with (the same one when
        its artifact was not finished), or None when the lane is done or the job has ended."""
        deadline = self._monotonic() + self.budget_seconds
        sides: tuple[Side, Side] | None = None
        for _ in range(batch):
            try:
                job = self._jobs.check(job_id)
            except JobEnded:
                return None
            policy = self._store.get(int(job.parameters["policy_id"]))
            if sides is None and policy is not None:
                try:
                    sides = self.sides(policy)
                except (RegistryError, RemoteError) as exc:
                    self._fail_task(job_id, task_id, f"{type(exc).__name__}: {exc}")
                    sides = None
                    task_id += step
                    if task_id > last:
                        return None
                    continue
            done = self.run_task(job_id, task_id, policy, sides, deadline)
            if done is None:
                return None
            if not done:
                return task_id  # out of time: the next Task takes this artifact up again
            task_id += step
            if task_id > last:
                return None
            if self._monotonic() >= deadline:
                return task_id
        return task_id

    def _fail_task(self, job_id: int, task_id: int, reason: str) -> None:
        task = self._jobs.start_task(job_id, task_id)
        if task is not None:
            self._jobs.end_task(task, JobStatus.ERROR, error=reason[:2000], log=[f"error: {reason}"])

    def run_task(self, job_id: int, task_id: int, policy: Policy | None, sides: tuple[Side, Side] | None,
                 deadline: float) -> bool | None:  # fmt: skip
        """Copy (or delete) one task's artifact. True when the task ended, False when the budget
        ran out first (the task stays Running and is taken up again), None once the job has ended."""
        task = self._jobs.start_task(job_id, task_id)
        if task is None:
            return True
        if policy is None or sides is None:
            self._jobs.end_task(task, JobStatus.ERROR, error="the replication policy no longer exists")
            return True
        src, dst = sides
        p = task.parameters

        def check() -> None:
            self._jobs.check(job_id)

        copier = Copier(src, dst, override=policy.override, copy_by_chunk=policy.copy_by_chunk, deadline=deadline,
                        clock=self._monotonic, check=check)  # fmt: skip
        status, error = JobStatus.SUCCESS, None
        try:
            if p["operation"] == DELETION:
                _delete(dst, str(p["dst"]), p.get("digest"), list(p.get("tags") or []), bool(p.get("tag_only")))
                copier.outcome.log.append(f"deleted {p['dst_resource']}")
            else:
                copier.artifact(str(p["src"]), str(p["dst"]), p.get("digest"), list(p.get("tags") or []),
                                keep=_resource_filter(policy))  # fmt: skip
        except OutOfTime:
            lines = [*copier.outcome.log[-_LOG_LINES:], "the invocation's time budget is spent: continued by the next"]
            self._jobs.note_task(task, run_count=task.run_count + 1, log=lines)
            return False
        except JobEnded:
            self._jobs.end_task(task, JobStatus.STOPPED, counts=copier.outcome.counts(),
                                log=[*copier.outcome.log[-_LOG_LINES:], "stopped"])  # fmt: skip
            return None
        except Exception as exc:
            logger.warning("replication task failed", job_id=job_id, task_id=task_id, error=str(exc)[:500])
            status, error = JobStatus.ERROR, f"{type(exc).__name__}: {exc}"[:2000]
        lines = copier.outcome.log[-_LOG_LINES:] + ([f"error: {error}"] if error else ["done"])
        self._jobs.end_task(task, status, counts=copier.outcome.counts(), error=error, log=lines,
                            run_count=task.run_count + 1)  # fmt: skip
        return True

    def abandon(self, job_id: int, task_id: int, step: int, last: int, batch: int, *, error: str) -> int | None:
        """A lane's Task died (a Lambda timeout, out of memory): its artifact's task ends Error
        with the reason and the lane goes on after it."""
        self._fail_task(job_id, task_id, f"the Task died: {error}")
        try:
            self._jobs.check(job_id)
        except JobEnded:
            return None
        following = task_id + step
        return following if following <= last else None

    def finish(self, job_id: int) -> None:
        tasks = self._jobs.tasks(job_id)
        failed = [t for t in tasks if t.status != JobStatus.SUCCESS]
        totals = _totals(tasks)
        if not failed:
            self._jobs.finish(job_id, JobStatus.SUCCESS, None, totals)
        else:
            first = failed[0]
            why = (
                f"{len(failed)} of {len(tasks)} tasks did not succeed "
                f"(first: {first.subject}: {first.error or first.status})"
            )
            self._jobs.finish(job_id, JobStatus.ERROR, why[:2000], totals)
        self._announce(self._jobs.get(job_id, VENDOR), tasks)

    def fail(self, job_id: int, error: str) -> None:
        self._jobs.finish(job_id, JobStatus.ERROR, error)

    def _announce(self, job: Job, tasks: list[Task]) -> None:
        """Harbor's REPLICATION event (its `event_data.replication`), once the execution ended."""
        policy = self._store.get(int(job.parameters["policy_id"]))
        if policy is None:
            return
        try:
            registry = self._registries.get(policy.remote_id)
        except RegistryError:
            return
        succeeded = [t for t in tasks if t.status == JobStatus.SUCCESS]
        failed = [t for t in tasks if t.status != JobStatus.SUCCESS]
        local = {"registry_name": "Local", "registry_type": "harbor", "endpoint": ""}
        remote = {"registry_name": registry.name, "registry_type": registry.type, "endpoint": registry.url}
        (local if policy.pull_based else remote)["namespace"] = policy.dest_namespace
        replication: dict[str, Any] = {
            "job_status": "Success" if not failed else "Failed",
            "artifact_type": "image",
            "override_mode": policy.override,
            "trigger_type": _TRIGGER_TYPES.get(job.trigger, "MANUAL"),
            "policy_creator": policy.creator,
            "execution_timestamp": job.started_at or job.created_at,
            "src_resource": {k: v for k, v in (remote if policy.pull_based else local).items() if v != ""},
            "dest_resource": {k: v for k, v in (local if policy.pull_based else remote).items() if v != ""},
        }
        if registry.credential is not None and registry.credential.type:
            replication["authentication_type"] = registry.credential.type
        if succeeded:
            replication["successful_artifact"] = [_artifact(t) for t in succeeded[:_ANNOUNCED_MAX]]
        if failed:
            replication["failed_artifact"] = [_artifact(t) for t in failed[:_ANNOUNCED_MAX]]
        if not replication["override_mode"]:
            del replication["override_mode"]
        detail = {"replication": replication}
        project = (
            str(tasks[0].parameters.get("dst" if policy.pull_based else "src", "")).split("/", 1)[0] if tasks else None
        )
        self._events.emit(EventType.REPLICATION, project=project or None, resource_type="replication",
                          resource=policy.name, detail=detail)  # fmt: skip


def _artifact(task: Task) -> dict[str, Any]:
    """Harbor's `ArtifactInfo`: type, status, `name_tag`, and why it failed."""
    tags, source = task.parameters.get("tags") or [], str(task.parameters.get("src"))
    status = "Success" if task.status == JobStatus.SUCCESS else "Failed"
    out = {"type": "image", "status": status, "name_tag": f"{source}:{tags[0]}" if tags else source}
    if task.error and status == "Failed":
        out["fail_reason"] = task.error[:500]
    return out


def _totals(tasks: list[Task]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for task in tasks:
        for key, value in task.counts.items():
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def _delete(dst: Side, repository: str, digest: str | None, tags: list[str], tag_only: bool) -> None:
    if tag_only and isinstance(dst, RemoteSide):
        for tag in tags:
            dst.adapter.delete_tag(repository, tag)
        return
    dst.delete(repository, digest if not tag_only else None, tags)


def _with_speed(options: Any, speed_kb: int) -> Any:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(options, speed_kb=speed_kb)


def _resource_filter(policy: Policy) -> Callable[[Manifest], bool] | None:
    """A pull-based policy's `resource: image` filter, applied to the manifest the task reads (a
    remote listing names tags, not what they point at); a push-based policy's candidates were
    already filtered from the local artifact records."""
    selection = policy.parsed_filters()
    if not policy.pull_based or selection.resource != RESOURCE_IMAGE:
        return None

    def kept(manifest: Manifest) -> bool:
        config = manifest.document.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        return selection.resource_kept(manifest.media_type, config_type)

    return kept
