"""Tag retention (Harbor's `pkg/retention`): a project's policy (CRUD, its schedule) and the API
reads and actions on its executions. Who may do what is the route's check (against `project_of`
or `scope_project`); the service trusts the caller it is given. What an execution does is the job kind's task body,
`services/retention_run.py`; both run on the executions service (`services/jobs.py`).

A policy is validated by `core/retention.py` when saved, so an execution never meets a malformed
rule. A policy with a cron has a policy schedule on the executions service; the scheduler tick
starts a run for each slot that passed (`RetentionRun.run_due`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import ACTIVE_STATUSES, Cron, CronError, Job, Task, Trigger, VendorType
from chalicelib.core.retention import ALGORITHM, MAX_RULES, InvalidPolicy, parse_rules
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.services.jobs import JobService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.retention_run import RetentionRun
    from chalicelib.stores.retention import PolicyRecord, RetentionStore

VENDOR = str(VendorType.RETENTION)
RESOURCE = "tag-retention"
RETENTION_ID = "retention_id"  # the project metadata key naming its policy
_HISTORY_MAX = 500
# A proxy-cache project's default policy keeps artifacts pulled within this many days (Harbor's).
PROXY_CACHE_RETAIN_DAYS = 7


def normalize(policy: dict[str, Any], project_id: int) -> dict[str, Any]:
    """Validate Harbor's policy JSON (already type-checked by the API model) and return what is
    stored. BadRequest on anything wrong."""
    if (policy.get("algorithm") or ALGORITHM) != ALGORITHM:
        raise BadRequest(f"algorithm must be {ALGORITHM!r}")
    scope = policy.get("scope") or {}
    if scope.get("level") != "project" or scope.get("ref") != project_id:
        raise BadRequest("scope must be {level: project, ref: <the project id>}")
    rules = policy.get("rules") or []
    if len(rules) > MAX_RULES:
        raise BadRequest(f"only {MAX_RULES} rules are allowed at most")
    try:
        parse_rules(rules)
    except InvalidPolicy as exc:
        raise BadRequest(str(exc)) from None
    seen: dict[str, int] = {}
    for n, rule in enumerate(rules):
        key = json.dumps({k: v for k, v in rule.items() if k != "id"}, sort_keys=True)
        if key in seen:
            raise Conflict(f"rule {n} is conflict with rule {seen[key]}")
        seen[key] = n
    trigger = policy.get("trigger") or {"kind": "Schedule", "settings": {}}
    if trigger.get("kind") != "Schedule":
        raise BadRequest("trigger.kind must be 'Schedule'")
    cron = str((trigger.get("settings") or {}).get("cron") or "")
    if cron:
        try:
            Cron.parse(cron)
        except CronError as exc:
            raise BadRequest(f"invalid cron: {exc}", {"cron": cron[:100]}) from None
    return {
        "algorithm": ALGORITHM,
        "rules": [{**r, "id": n + 1, "priority": r.get("priority") or 0, "action": "retain",
                   "params": r.get("params") or {}, "disabled": bool(r.get("disabled"))}
                  for n, r in enumerate(rules)],
        "trigger": {"kind": "Schedule", "settings": {"cron": cron}, "references": {}},
        "scope": {"level": "project", "ref": project_id},
    }  # fmt: skip


def policy_project(projects: ProjectService, record: PolicyRecord) -> Project | None:
    """The policy's project, unless it was deleted (a new project of the same name is another)."""
    try:
        project = projects.resolve(record.project, True)
    except NotFound:
        return None
    return project if project.project_id == record.project_id else None


class RetentionService:
    def __init__(self, store: RetentionStore, jobs: JobService, projects: ProjectService, runs: RetentionRun) -> None:
        self._store = store
        self._jobs = jobs
        self._projects = projects
        self._runs = runs

    # Policies.

    def create(self, caller: Principal, policy: dict[str, Any]) -> int:
        project = self.scope_project(policy)
        stored = normalize(policy, project.project_id)
        existing = self._store.policy_of(project.name)
        if existing is not None:
            old = self._store.get(existing)
            if old is None or old.project_id != project.project_id:
                # A delete that stopped halfway, or the policy of a deleted project of the same name.
                self._store.unlink(project.name, existing)
        policy_id = self._store.create(project.name, project.project_id, stored)
        self._schedule(policy_id, stored["trigger"]["settings"]["cron"])
        # Harbor keeps the id in the project's metadata, where its UI looks for the policy.
        self._projects.set_server_metadata(project.name, RETENTION_ID, str(policy_id))
        return policy_id

    def create_proxy_default(self, caller: Principal, project: Project) -> int:
        """Harbor's policy for a new proxy-cache project: keep what was pulled in the last 7 days
        (every repository, every tag), evaluated daily at midnight."""
        rule = {"priority": 1, "action": "retain", "template": "nDaysSinceLastPull",
                "params": {"nDaysSinceLastPull": PROXY_CACHE_RETAIN_DAYS},
                "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
                "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                    "pattern": "**"}]}}  # fmt: skip
        trigger = {"kind": "Schedule", "settings": {"cron": "0 0 0 * * *"}}
        scope = {"level": "project", "ref": project.project_id}
        policy = {"algorithm": ALGORITHM, "rules": [rule], "trigger": trigger, "scope": scope}
        return self.create(caller, policy)

    def get(self, caller: Principal, policy_id: int) -> PolicyRecord:
        return self._find(policy_id)[0]

    def project_of(self, policy_id: int) -> Project:
        """The project a policy belongs to (what a route authorises against); NotFound as `get`."""
        return self._find(policy_id)[1]

    def _find(self, policy_id: int) -> tuple[PolicyRecord, Project]:
        record = self._store.get(policy_id)
        project = policy_project(self._projects, record) if record is not None else None
        if record is None or project is None:  # never existed, or its project was deleted
            raise NotFound(f"retention policy {policy_id} not found")
        return record, project

    def update(self, caller: Principal, policy_id: int, policy: dict[str, Any]) -> None:
        record = self.get(caller, policy_id)
        stored = normalize(policy, record.project_id)
        self._store.update(record, stored)
        self._schedule(policy_id, stored["trigger"]["settings"]["cron"])

    def _schedule(self, policy_id: int, cron: str) -> None:
        """The policy's schedule (an empty cron removes it); slots already fired stay fired."""
        if cron:
            self._jobs.set_schedule(VENDOR, "Custom", cron, {}, policy_id=policy_id)
        else:
            self._jobs.remove_schedule(VENDOR, policy_id)

    def delete(self, caller: Principal, policy_id: int) -> None:
        record = self.get(caller, policy_id)
        self._schedule(policy_id, "")  # first: a schedule never names a deleted policy for long
        self._store.delete(record)
        self._projects.set_server_metadata(record.project, RETENTION_ID, None, if_value=str(policy_id))

    def on_event(self, event: Event) -> None:
        """A deleted project's policy goes with it (Harbor's project event handler does the same):
        its project link went with the project's partition; the policy and schedule rows are
        found through the `retention_id` the project's metadata held."""
        if event.type is not EventType.DELETE_PROJECT:
            return
        policy_id, project_id = event.detail.get(RETENTION_ID), event.detail.get("project_id")
        if not isinstance(policy_id, str) or not policy_id.isdigit():
            return
        record = self._store.get(int(policy_id))
        if record is None or record.project_id != project_id:
            return
        self._schedule(record.policy_id, "")
        try:
            self._store.delete(record)
        except Conflict:  # changed meanwhile: the policy of a deleted project no longer resolves anyway
            logger.warning("retention policy of a deleted project left behind", policy_id=record.policy_id)

    def scope_project(self, policy: dict[str, Any]) -> Project:
        """The project a new policy's scope names (BadRequest if it names none)."""
        ref = (policy.get("scope") or {}).get("ref")
        if not isinstance(ref, int) or isinstance(ref, bool) or ref < 1:
            raise BadRequest("scope.ref must be a project id")
        try:
            return self._projects.resolve(str(ref), False)
        except NotFound:
            raise BadRequest(f"invalid Project id {ref}") from None

    # Executions.

    def execute(self, caller: Principal, policy_id: int, dry_run: bool) -> Job:
        record = self.get(caller, policy_id)
        return self._runs.submit(record.policy_id, Trigger.MANUAL, dry_run)

    def executions(self, caller: Principal, policy_id: int) -> list[Job]:
        self.get(caller, policy_id)
        return [j for j in self._jobs.history(VENDOR, _HISTORY_MAX) if j.parameters.get("policy_id") == policy_id]

    def execution(self, caller: Principal, policy_id: int, execution_id: int) -> Job:
        self.get(caller, policy_id)
        job = self._jobs.get(execution_id, VENDOR)
        if job.parameters.get("policy_id") != policy_id:
            raise NotFound(f"retention execution {execution_id} not found")
        return job

    def stop(self, caller: Principal, policy_id: int, execution_id: int) -> None:
        job = self.execution(caller, policy_id, execution_id)
        if job.status not in ACTIVE_STATUSES:
            return  # it has ended: stopping changes nothing
        self._jobs.stop(execution_id, VENDOR)  # its unfinished tasks end Stopped with it
        # The execution's `finish` will not run: what it does for the tasks that ended is done here.
        self._jobs.set_counts(execution_id, self._runs.settle(job, self._jobs.tasks(execution_id)))

    def tasks(self, caller: Principal, policy_id: int, execution_id: int) -> list[Task]:
        self.execution(caller, policy_id, execution_id)
        return self._jobs.tasks(execution_id)

    def task(self, caller: Principal, policy_id: int, execution_id: int, task_id: int) -> Task:
        self.execution(caller, policy_id, execution_id)
        task = self._jobs.task(execution_id, task_id)
        if task is None:
            raise NotFound(f"retention task {task_id} not found")
        return task
