"""Replication policies (Harbor's `controller/replication`): CRUD, triggers (manual, scheduled,
event-based) and the API reads and actions on executions. What an execution does is the job
kind's task body, `services/replication_run.py`; both run on the executions service
(`services/jobs.py`), with Harbor's replication API wording of statuses and triggers applied by
the route.

A policy is validated when saved (`core/replication.py`), and the remote registry it names must
exist; a registry a policy names cannot be deleted (the registries service asks `in_use`). A
scheduled, enabled policy has a policy schedule on the executions service (the scheduler tick
starts a run per cron slot); an event-based policy is started by `on_event` for each push, and,
with `replicate_deletion`, each artifact or tag delete its filters select.
"""

from __future__ import annotations

import builtins
import dataclasses
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import ACTIVE_STATUSES, Job, JobStatus, Task, Trigger, VendorType
from chalicelib.core.replication import (
    EVENT_BASED,
    LOCAL,
    SCHEDULED,
    InvalidReplicationPolicy,
    Policy,
    check_filter,
    job_statuses,
    validate_policy,
)
from chalicelib.errors import BadRequest, Conflict, NotFound, Precondition
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal
    from chalicelib.services.jobs import JobService
    from chalicelib.services.registries import RegistryService
    from chalicelib.services.replication_run import ReplicationRun
    from chalicelib.stores.replication import ReplicationStore

VENDOR = str(VendorType.REPLICATION)
_HISTORY_MAX = 1000
_TRIGGERS = {"manual": Trigger.MANUAL, "scheduled": Trigger.SCHEDULE, "event_based": Trigger.EVENT}


class ReplicationService:
    def __init__(self, store: ReplicationStore, jobs: JobService, registries: RegistryService,
                 runs: ReplicationRun) -> None:  # fmt: skip
        self._store = store
        self._jobs = jobs
        self._registries = registries
        self._runs = runs

    # Policies.

    def build(self, body: dict[str, Any], creator: str, policy_id: int = 0) -> Policy:
        """A policy from Harbor's `ReplicationPolicy` body, validated; BadRequest when wrong."""
        try:
            filters = tuple(check_filter(f) for f in body.get("filters") or [])
            trigger = body.get("trigger") or {}
            settings = trigger.get("trigger_settings") or {}
            replace_count = body.get("dest_namespace_replace_count")
            policy = Policy(
                policy_id=policy_id, name=str(body.get("name") or ""), description=str(body.get("description") or ""),
                src_registry_id=_registry_id(body.get("src_registry")),
                dest_registry_id=_registry_id(body.get("dest_registry")),
                dest_namespace=str(body.get("dest_namespace") or ""),
                dest_namespace_replace_count=-1 if replace_count is None else int(replace_count), filters=filters,
                trigger_type=str(trigger.get("type") or "manual"), cron=str(settings.get("cron") or ""),
                replicate_deletion=bool(body.get("replicate_deletion") or body.get("deletion")),
                override=bool(body.get("override")), enabled=bool(body.get("enabled")),
                speed=max(0, int(body.get("speed") or 0)), copy_by_chunk=bool(body.get("copy_by_chunk")),
                single_active_replication=bool(body.get("single_active_replication")), creator=creator,
            )  # fmt: skip
            validate_policy(policy)
        except InvalidReplicationPolicy as exc:
            raise BadRequest(str(exc)) from None
        if self._registries.find(policy.remote_id) is None:
            raise BadRequest(f"registry {policy.remote_id} not found")
        return policy

    def create(self, caller: Principal, body: dict[str, Any]) -> Policy:
        policy = self._store.create(self.build(body, caller.name))
        self._schedule(policy)
        return policy

    def get(self, policy_id: int) -> Policy:
        policy = self._store.get(policy_id) if policy_id > 0 else None
        if policy is None:
            raise NotFound(f"policy {policy_id} not found")
        return policy

    def list(self, name: str | None = None) -> builtins.list[Policy]:
        """Every policy (fuzzy `name` match, as Harbor's `name` query), by id."""
        policies = sorted(self._store.list(), key=lambda p: p.policy_id)
        return [p for p in policies if not name or name in p.name]

    def update(self, caller: Principal, policy_id: int, body: dict[str, Any]) -> Policy:
        current = self.get(policy_id)
        built = self.build(body, current.creator, policy_id)
        updated = dataclasses.replace(built, created_at=current.created_at)
        self._store.update(current, updated)
        self._schedule(updated)
        return self.get(policy_id)

    def delete(self, caller: Principal, policy_id: int) -> None:
        """Harbor refuses to delete a policy while an execution of it runs (412)."""
        policy = self.get(policy_id)
        if self._active(policy_id):
            raise Precondition("the policy has running executions, stop them first")
        self._jobs.remove_schedule(VENDOR, policy_id)
        self._store.delete(policy)

    def in_use(self, registry_id: int) -> str | None:
        """Why a registry may not be deleted (the registries service asks), or None."""
        for policy in self._store.list():
            if registry_id in (policy.src_registry_id, policy.dest_registry_id):
                return f"the registry is referenced by replication policy {policy.name!r}"
        return None

    def _schedule(self, policy: Policy) -> None:
        if policy.trigger_type == SCHEDULED and policy.enabled and policy.cron:
            self._jobs.set_schedule(VENDOR, "Custom", policy.cron, {}, policy_id=policy.policy_id)
        else:
            self._jobs.remove_schedule(VENDOR, policy.policy_id)

    # Executions.

    def start(self, policy_id: int, trigger: Trigger = Trigger.MANUAL,
              resources: builtins.list[dict[str, Any]] | None = None) -> Job:  # fmt: skip
        """Start an execution of the policy: 412 when it is disabled (Harbor), 409 while another
        execution runs and the policy asks for a single active one."""
        policy = self.get(policy_id)
        if not policy.enabled:
            raise Precondition(f"the policy {policy_id} is disabled")
        if policy.single_active_replication and self._active(policy_id):
            raise Conflict(f"replication policy {policy_id} has an execution running already")
        return self._runs.launch(policy, trigger, resources)

    def _active(self, policy_id: int) -> bool:
        return any(j.parameters.get("policy_id") == policy_id and j.status in ACTIVE_STATUSES
                   for j in self._jobs.history(VENDOR, _HISTORY_MAX))  # fmt: skip

    def executions(self, policy_id: int | None = None, status: str | None = None,
                   trigger: str | None = None) -> builtins.list[Job]:  # fmt: skip
        """Newest first, filtered as Harbor's list (status and trigger in the API's words)."""
        statuses = job_statuses(status) if status else None
        wanted = _TRIGGERS.get(trigger, trigger) if trigger else None
        return [
            j for j in self._jobs.history(VENDOR, _HISTORY_MAX)
            if (policy_id is None or j.parameters.get("policy_id") == policy_id)
            and (statuses is None or str(j.status) in statuses)
            and (wanted is None or j.trigger == wanted)
        ]  # fmt: skip

    def execution(self, execution_id: int) -> Job:
        if execution_id < 1:
            raise NotFound(f"execution {execution_id} not found")
        try:
            return self._jobs.get(execution_id, VENDOR)
        except NotFound:
            raise NotFound(f"execution {execution_id} not found") from None

    def stop(self, execution_id: int) -> Job:
        job = self.execution(execution_id)
        if job.status not in ACTIVE_STATUSES:
            return job
        return self._jobs.stop(execution_id, VENDOR)

    def tasks(
        self, execution_id: int, status: str | None = None, resource_type: str | None = None
    ) -> builtins.list[Task]:
        self.execution(execution_id)
        statuses = job_statuses(status) if status else None
        return [
            t for t in self._jobs.tasks(execution_id)
            if (statuses is None or str(t.status) in statuses)
            and (resource_type is None or t.parameters.get("resource_type") == resource_type)
        ]  # fmt: skip

    def task(self, execution_id: int, task_id: int) -> Task:
        self.execution(execution_id)
        task = self._jobs.task(execution_id, task_id) if task_id > 0 else None
        if task is None:
            raise NotFound(f"execution {execution_id} contains no task with ID {task_id}")
        return task

    # Triggers.

    def run_due(self, now: float) -> builtins.list[Job]:
        """Start every scheduled policy whose cron slot passed (once per slot, claimed)."""
        started = []
        for schedule in self._jobs.due(VENDOR, now):
            try:
                started.append(self.start(schedule.policy_id, Trigger.SCHEDULE))
            except (NotFound, Precondition, Conflict) as exc:
                logger.warning("scheduled replication skipped", policy_id=schedule.policy_id, reason=str(exc))
        return started

    def on_event(self, event: Event) -> None:
        """Event-based policies: a push starts a copy of the pushed artifact; an artifact or tag
        delete starts a deletion on the destination when the policy replicates deletions."""
        if event.type not in (EventType.PUSH_ARTIFACT, EventType.DELETE_ARTIFACT, EventType.DELETE_TAG):
            return
        if not event.repository or not event.digest:
            return
        deleted = event.type is not EventType.PUSH_ARTIFACT
        for policy in self._store.list():
            if not (policy.enabled and policy.trigger_type == EVENT_BASED and policy.src_registry_id == LOCAL):
                continue
            if deleted and not policy.replicate_deletion:
                continue
            selection = policy.parsed_filters()
            if not selection.repository(event.repository):
                continue
            tags = [event.tag] if event.tag else [str(t) for t in event.detail.get("tags") or []]
            if tags and not selection.tags(tags):
                continue
            if not tags and not selection.untagged_kept():
                continue
            resource = {"repository": event.repository, "digest": event.digest, "tags": tags, "deleted": deleted,
                        "delete_tag_only": event.type is EventType.DELETE_TAG}  # fmt: skip
            try:
                self.start(policy.policy_id, Trigger.EVENT, [resource])
            except Exception:
                logger.exception("event-based replication failed to start", policy_id=policy.policy_id)


def _registry_id(value: Any) -> int:
    if not isinstance(value, dict):
        return LOCAL
    registry_id = value.get("id")
    return int(registry_id) if isinstance(registry_id, int) and not isinstance(registry_id, bool) else LOCAL


def status_counts(job: Job) -> dict[str, int]:
    """Harbor's execution counters from the execution's task metrics."""
    metrics = job.metrics
    succeed, failed = metrics.get(JobStatus.SUCCESS, 0), metrics.get(JobStatus.ERROR, 0)
    in_progress = metrics.get(JobStatus.PENDING, 0) + metrics.get(JobStatus.RUNNING, 0)
    stopped = metrics.get(JobStatus.STOPPED, 0)
    return {"total": succeed + failed + in_progress + stopped, "succeed": succeed, "failed": failed,
            "in_progress": in_progress, "stopped": stopped}  # fmt: skip
