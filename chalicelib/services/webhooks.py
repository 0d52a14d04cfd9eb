"""Webhook policies (Harbor's notification policies) per project, and the reads of their
executions, tasks and task logs. The delivery is the job kind's task body,
`services/webhook_delivery.py`; both run on the executions service (`services/jobs.py`).

Policies are managed by project administrators (RBAC resource `notification-policy`); Harbor lets
maintainers list policies and executions, and nobody else below project admin see them. Who may do
what is the route's check; the service trusts the caller it is given. A
project's policies are one stored document, cached per project for `cache_seconds` (including
"none"), so an event finds the policies to fire with one GetItem at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import Job, Task, VendorType
from chalicelib.core.webhooks import MAX_POLICIES, Policy, Target, parse_policy
from chalicelib.errors import Conflict, NotFound
from chalicelib.services.project_documents import ProjectCache, change_versioned

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.services.jobs import JobService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.webhook_delivery import Sender
    from chalicelib.stores.webhooks import WebhookStore

RESOURCE = "notification-policy"
# The newest executions (of a policy) or tasks (of an execution) the API lists.
HISTORY_LIMIT = 500


class WebhookService:
    def __init__(self, store: WebhookStore, jobs: JobService, projects: ProjectService, sender: Sender, *,
                 cache_seconds: float, longest_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        """`longest_seconds`: the longest a delivery can take; an execution active for longer lost
        its deliverer and is reconciled when read."""
        self._store = store
        self._jobs = jobs
        self._projects = projects
        self._sender = sender
        self._longest_seconds = longest_seconds
        self._clock = clock
        self._cache: ProjectCache[tuple[Policy, ...]] = ProjectCache(cache_seconds, clock)

    # Policies (/projects/{p}/webhook/policies).

    def policies(self, caller: Principal, project: Project) -> list[Policy]:
        return sorted(self._load(project.name)[0], key=lambda p: p.policy_id)

    def policy(self, caller: Principal, project: Project, policy_id: int) -> Policy:
        return _find(self._load(project.name)[0], policy_id)

    def create(self, caller: Principal, project: Project, data: dict[str, Any]) -> Policy:
        now = int(self._clock())
        policy = parse_policy(data, 0, caller.name, now, now)  # validated before an id is spent
        self._check_targets(policy)
        policy = replace(policy, policy_id=self._store.new_id())

        def change(policies: list[Policy]) -> list[Policy]:
            if len(policies) >= MAX_POLICIES:
                raise Conflict(f"a project has at most {MAX_POLICIES} webhook policies")
            _refuse_duplicate(policies, policy)
            return [*policies, policy]

        self._change(project.name, change)
        return policy

    def update(self, caller: Principal, project: Project, policy_id: int, data: dict[str, Any]) -> None:

        def change(policies: list[Policy]) -> list[Policy]:
            current = _find(policies, policy_id)
            updated = parse_policy(data, policy_id, current.creator, current.created_at, int(self._clock()))
            self._check_targets(updated)
            _refuse_duplicate([p for p in policies if p.policy_id != policy_id], updated)
            return [updated if p.policy_id == policy_id else p for p in policies]

        self._change(project.name, change)

    def _check_targets(self, policy: Policy) -> None:
        """Refuse (400) a target the egress policy would refuse at delivery: it is checked again
        then, since a name may resolve elsewhere later."""
        for target in policy.targets:
            self._sender.check(target.address)

    def delete(self, caller: Principal, project: Project, policy_id: int) -> None:

        def change(policies: list[Policy]) -> list[Policy]:
            _find(policies, policy_id)
            return [p for p in policies if p.policy_id != policy_id]

        self._change(project.name, change)

    def last_triggers(self, caller: Principal, project: Project) -> list[tuple[Policy, str, int | None]]:
        """(policy, event type, last trigger time or None) for every event type of every policy."""
        fired = self._store.last_triggers(project.name)
        policies = sorted(self._load(project.name)[0], key=lambda p: p.policy_id)
        return [(p, t, fired.get((p.policy_id, t))) for p in policies for t in p.event_types]

    def _load(self, project: str) -> tuple[list[Policy], int]:
        records, version = self._store.load(project)
        return [Policy.from_record(r) for r in records], version

    def _change(self, project: str, change: Callable[[list[Policy]], list[Policy]]) -> None:
        def save(policies: list[Policy], version: int) -> None:
            self._store.save(project, [p.record() for p in policies], version)

        what = f"the webhook policies of project {project}"
        change_versioned(lambda: self._load(project), save, change, lambda: self._cache.forget(project), what)

    # Executions, tasks and logs (the executions service's rows, read back here).

    def executions(self, caller: Principal, project: Project, policy_id: int) -> list[Job]:
        self.policy(caller, project, policy_id)
        return self._jobs.history(executions_key(policy_id), HISTORY_LIMIT, self._longest_seconds)

    def tasks(self, caller: Principal, project: Project, policy_id: int, execution_id: int) -> list[Task]:
        self._execution(caller, project, policy_id, execution_id)
        return self._jobs.tasks(execution_id)

    def task_log(self, caller: Principal, project: Project, policy_id: int, execution_id: int, task_id: int) -> str:
        self._execution(caller, project, policy_id, execution_id)
        task = self._jobs.task(execution_id, task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return "".join(f"{line}\n" for line in task.log)

    def _execution(self, caller: Principal, project: Project, policy_id: int, execution_id: int) -> Job:
        """The execution, reconciled: one still active long after any delivery could have ended
        lost its deliverer (a restart, a Lambda timeout) and is marked Error with its tasks."""
        self.policy(caller, project, policy_id)
        job = self._jobs.execution(execution_id, VendorType.WEBHOOK, self._longest_seconds)
        if job is None or job.parameters.get("policy_id") != policy_id or job.parameters.get("project") != project.name:
            raise NotFound(f"execution {execution_id} not found")
        return job

    # What the delivery reads and writes.

    def wanted(self, project: str, event_type: str) -> list[Policy]:
        """The project's enabled policies that want the event type (cached)."""
        return [p for p in self._cached(project) if p.wants(event_type)]

    def listed(self, project: str) -> list[Policy]:
        """Every policy of the project, as stored now."""
        return self._load(project)[0]

    def forget(self, project: str) -> None:
        self._cache.forget(project)

    def triggered(self, project: str, policy_id: int, event_type: str, when: int) -> None:
        self._store.triggered(project, policy_id, event_type, when)

    def target(self, project: str, policy_id: int, index: int, address: str) -> Target | None:
        """The task's target as the policy holds it now (its auth header may have changed), or
        None when the policy is gone or that target is no longer the same address."""
        policy = next((p for p in self._cached(project) if p.policy_id == policy_id), None)
        if policy is None or not 0 <= index < len(policy.targets) or policy.targets[index].address != address:
            return None
        return policy.targets[index]

    def _cached(self, project: str) -> tuple[Policy, ...]:
        return self._cache.get(project, lambda: tuple(self._load(project)[0]))


def executions_key(policy_id: int) -> str:
    """The history a policy's executions are listed under."""
    return f"{VendorType.WEBHOOK}#{policy_id}"


def _find(policies: list[Policy], policy_id: int) -> Policy:
    for policy in policies:
        if policy.policy_id == policy_id:
            return policy
    raise NotFound(f"webhook policy {policy_id} not found")


def _refuse_duplicate(policies: list[Policy], policy: Policy) -> None:
    if any(p.name == policy.name for p in policies):
        raise Conflict(f"webhook policy {policy.name!r} already exists")
