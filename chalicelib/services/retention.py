"""Tag retention (Harbor's `pkg/retention`): a project's policy, and executions that apply it.

A policy is validated by `core/retention.py` when saved, so an execution never meets a malformed
rule. An execution is a job of the framework (vendor type `RETENTION`, `services/jobs.py`) run by
the `retention` state machine (`infra/statemachines/retention.asl.json`) in three steps, so no
Lambda has to walk a whole project within its 15 minutes:

1. `begin` creates one Pending task per repository an enabled rule selects (consecutive ids) and
   hands the Map `workers` lanes, each a cursor over every `workers`-th task id (a few numbers,
   never repository documents, so Step Functions' 256 KB state limit is no concern);
2. the Map runs the lanes in parallel (`REGISTRY_RETENTION_WORKERS` at a time); each iteration is
   one Task, `run_task`, that applies the policy to ONE repository and ends its task Success or
   Error with its counts and log. A task is claimed Pending -> Running by a conditional write and
   ended only from Running, so a retried or re-driven iteration never runs an ended task again
   (nothing is deleted or counted twice), and the job is checked before each repository (and
   each delete), so a stop takes effect between two of them;
3. `finish` sums the tasks and ends the job: Success when every task succeeded, Error otherwise.

Each task lists what the rules keep and delete; a dry run records exactly the same lists and
deletes nothing; a real run deletes each doomed artifact through the manifest service's deep
delete (so tags, accessories, quota and DELETE_ARTIFACT events follow the usual rules; GC reclaims
the blobs later). As Harbor does, each task that deleted something gets a TAG_RETENTION event
whose detail is Harbor's `event_data.retention` (`retention_payload`), published by `finish` once
per task (claimed on the task row); a dry run publishes none. An artifact with an immutable tag is
never deleted (it is listed as kept).

One execution per policy (so per project: a project has one policy) is active at a time: the job
holds the lock `RETENTION#<policy id>` (a conditional put, `services/jobs.py`), so a second manual
trigger of the same policy is refused with 409 and a scheduled one is skipped, while the policies
of other projects run in parallel. (Harbor itself does not check: its `TriggerRetentionExec`
starts a second execution beside a running one, and the two race to delete the same artifacts;
refusing it keeps the counts and the TAG_RETENTION payloads of one run true.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import ACTIVE_STATUSES, Cron, CronError, Job, JobStatus, Trigger, VendorType
from chalicelib.core.retention import ALGORITHM, MAX_RULES, Decision, InvalidPolicy, Item, decide, parse_rules
from chalicelib.errors import BadRequest, Conflict, ManifestUnknown, NotFound, Precondition, ReferencedByOthers
from chalicelib.events import Event, EventType
from chalicelib.observability import logger
from chalicelib.services.jobs import JobEnded
from chalicelib.stores import keys
from chalicelib.stores.retention import ERROR, STOPPED, SUCCESS

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.events import EventBus
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.repositories import RepositoryStore
    from chalicelib.stores.retention import PolicyRecord, RetentionStore, TaskRecord

VENDOR = str(VendorType.RETENTION)
RESOURCE = "tag-retention"
RETENTION_ID = "retention_id"  # the project metadata key naming its policy
_HISTORY_MAX = 500
_TAGS_PER_ARTIFACT = 1000
# The most deleted artifacts one TAG_RETENTION event lists: ~100 bytes each keeps the event well
# under EventBridge's 256 KB (its `total` and `retained` still count them all).
_ANNOUNCED_MAX = 1000
# The most repository Tasks one execution runs (~7 history events each, under the 25,000 a
# Standard workflow may have); a bigger project's Tasks take several repositories each.
_MAX_TASK_CALLS = 3000


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


def retention_payload(record: PolicyRecord, deleted: list[str], *, total: int, retained: int) -> dict[str, Any]:
    """Harbor's `event_data.retention` for one task (its `model.Retention`; `harbor_hostname` is
    added by the webhook that sends it). Fields Harbor omits when empty are omitted here too; an
    untagged artifact has an empty `name_tag`, as in Harbor. Unlike Harbor (whose handler keeps
    only the last one), the deleted artifacts (their `name_tag`s) are listed, the first
    `_ANNOUNCED_MAX` of them."""
    rules = [{k: rule[k] for k in ("template", "params", "tag_selectors", "scope_selectors") if rule.get(k)}
             for rule in record.policy.get("rules") or []]  # fmt: skip
    artifacts = [{"type": "image", "status": "SUCCESS", "name_tag": name_tag, "references": None}
                 for name_tag in deleted[:_ANNOUNCED_MAX]]  # fmt: skip
    payload: dict[str, Any] = {"total": total, "retained": retained, "project_name": record.project,
                               "retention_policy_id": record.policy_id, "result": "SUCCESS"}  # fmt: skip
    if rules:
        payload["retention_rule"] = rules
    if artifacts:
        payload["deleted_artifact"] = artifacts
    return payload


class RetentionService:
    def __init__(self, store: RetentionStore, jobs: JobService, projects: ProjectService, *,
                 repositories: RepositoryStore, artifacts: ArtifactStore, labels: LabelService,
                 immutability: ImmutabilityService, manifests: ManifestService, events: EventBus,
                 workers: int = 4, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._store = store
        self._jobs = jobs
        self._projects = projects
        self._repositories = repositories
        self._artifacts = artifacts
        self._labels = labels
        self._immutability = immutability
        self._manifests = manifests
        self._events = events
        self._workers = workers
        self._clock = clock

    # Policies.

    def create(self, caller: Principal, policy: dict[str, Any]) -> int:
        project = self._scope_project(policy)
        self._projects.authorize(caller, project, RESOURCE, "create")
        stored = normalize(policy, project.project_id)
        existing = self._store.policy_of(project.name)
        if existing is not None:
            old = self._store.get(existing)
            if old is None or old.project_id != project.project_id:
                # A delete that stopped halfway, or the policy of a deleted project of the same name.
                self._store.unlink(project.name, existing)
        policy_id = self._store.create(project.name, project.project_id, stored)
        self._store.set_schedule(policy_id, stored["trigger"]["settings"]["cron"])
        # Harbor keeps the id in the project's metadata, where its UI looks for the policy.
        self._projects.set_server_metadata(project.name, RETENTION_ID, str(policy_id))
        return policy_id

    def get(self, caller: Principal, policy_id: int, action: str = "read") -> PolicyRecord:
        record = self._store.get(policy_id)
        project = self._same_project(record) if record is not None else None
        if record is None or project is None:  # never existed, or its project was deleted
            raise NotFound(f"retention policy {policy_id} not found")
        self._projects.authorize(caller, project, RESOURCE, action)
        return record

    def _same_project(self, record: PolicyRecord) -> Project | None:
        """The policy's project, unless it was deleted (a new project of the same name is another)."""
        try:
            project = self._projects.resolve(record.project, True)
        except NotFound:
            return None
        return project if project.project_id == record.project_id else None

    def update(self, caller: Principal, policy_id: int, policy: dict[str, Any]) -> None:
        record = self.get(caller, policy_id, "update")
        stored = normalize(policy, record.project_id)
        self._store.update(record, stored)
        self._store.set_schedule(policy_id, stored["trigger"]["settings"]["cron"])

    def delete(self, caller: Principal, policy_id: int) -> None:
        record = self.get(caller, policy_id, "delete")
        self._store.set_schedule(policy_id, "")  # first: a schedule never names a deleted policy for long
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
        self._store.set_schedule(record.policy_id, "")
        try:
            self._store.delete(record)
        except Conflict:  # changed meanwhile: the policy of a deleted project no longer resolves anyway
            logger.warning("retention policy of a deleted project left behind", policy_id=record.policy_id)

    def _scope_project(self, policy: dict[str, Any]) -> Project:
        ref = (policy.get("scope") or {}).get("ref")
        if not isinstance(ref, int) or isinstance(ref, bool) or ref < 1:
            raise BadRequest("scope.ref must be a project id")
        try:
            return self._projects.resolve(str(ref), False)
        except NotFound:
            raise BadRequest(f"invalid Project id {ref}") from None

    # Executions.

    def execute(self, caller: Principal, policy_id: int, dry_run: bool) -> Job:
        record = self.get(caller, policy_id, "update")  # Harbor asks `update` to run a policy
        return self._submit(record.policy_id, Trigger.MANUAL, dry_run)

    def _submit(self, policy_id: int, trigger: Trigger, dry_run: bool) -> Job:
        """Conflict (409) while an execution of the same policy is active."""
        parameters = {"policy_id": policy_id, "dry_run": dry_run}
        try:
            return self._jobs.submit(VENDOR, trigger, parameters, lock=keys.retention_job_lock(policy_id))
        except Conflict as exc:
            raise Conflict(f"an execution of retention policy {policy_id} is already running", exc.detail) from None

    def executions(self, caller: Principal, policy_id: int) -> list[Job]:
        self.get(caller, policy_id, "list")
        return [j for j in self._jobs.history(VENDOR, _HISTORY_MAX) if j.parameters.get("policy_id") == policy_id]

    def execution(self, caller: Principal, policy_id: int, execution_id: int, action: str = "read") -> Job:
        self.get(caller, policy_id, action)
        job = self._jobs.get(execution_id, VENDOR)
        if job.parameters.get("policy_id") != policy_id:
            raise NotFound(f"retention execution {execution_id} not found")
        return job

    def stop(self, caller: Principal, policy_id: int, execution_id: int) -> None:
        job = self.execution(caller, policy_id, execution_id, "update")
        if job.status not in ACTIVE_STATUSES:
            return  # it has ended: stopping changes nothing
        self._jobs.stop(execution_id, VENDOR)
        # The execution's `finish` will not run: what it does for the tasks that ended is done here.
        self._store.stop_tasks(execution_id)  # a task running now ends Stopped itself
        self._jobs.set_counts(execution_id, self._settle(job, self._store.tasks(execution_id)))

    def tasks(self, caller: Principal, policy_id: int, execution_id: int) -> list[TaskRecord]:
        self.execution(caller, policy_id, execution_id, "list")
        return self._store.tasks(execution_id)

    def task(self, caller: Principal, policy_id: int, execution_id: int, task_id: int) -> TaskRecord:
        self.execution(caller, policy_id, execution_id)
        task = self._store.task(execution_id, task_id)
        if task is None:
            raise NotFound(f"retention task {task_id} not found")
        return task

    def run_due(self, now: float) -> list[Job]:
        """Start every policy whose cron slot passed since its last run (once per slot, even with
        several schedulers: the slot is claimed by a conditional write). The scheduler tick calls it."""
        started = []
        for schedule in self._store.schedules():
            since = max(schedule.last_fired, schedule.updated_at)
            slot = int(Cron.parse(schedule.cron).next_after(datetime.fromtimestamp(since, UTC)).timestamp())
            if slot > now or not self._store.claim_slot(schedule.policy_id, schedule.last_fired, slot):
                continue
            if self._store.get(schedule.policy_id) is None:
                continue
            try:
                started.append(self._submit(schedule.policy_id, Trigger.SCHEDULE, False))
            except Conflict:
                logger.warning("scheduled retention skipped: the policy's last run is still active",
                               policy_id=schedule.policy_id)  # fmt: skip
        return started

    # The execution itself (the state machine's Task handlers call these).

    def begin(self, job_id: int) -> dict[str, Any]:
        """Start the job, create one Pending task per repository a rule selects and return the
        Map's items: `lanes` (at most `workers`), each a constant-size cursor over the task ids
        (`task_id`, `step`, `last`), so the state stays small however many repositories there are.
        A policy or project gone since the trigger ends the job Error; a stopped job runs nothing."""
        nothing: dict[str, Any] = {"job_id": job_id, "workers": self._workers, "lanes": []}
        try:
            job = self._jobs.begin(job_id)
        except JobEnded:
            return nothing
        policy_id, dry_run = int(job.parameters["policy_id"]), bool(job.parameters.get("dry_run"))
        record = self._store.get(policy_id)
        if record is None:
            self._jobs.finish(job_id, JobStatus.ERROR, f"retention policy {policy_id} no longer exists")
            return nothing
        if not self._same_project(record):
            self._jobs.finish(job_id, JobStatus.ERROR, f"project {record.project} of policy {policy_id} was deleted")
            return nothing
        rules = parse_rules(record.policy.get("rules") or [])
        selected = [r.name for r in self._repositories.find(record.project)
                    if any(rule.selects_repository(r.name.partition("/")[2]) for rule in rules)]  # fmt: skip
        first = self._store.create_tasks(job_id, selected)
        step = min(self._workers, len(selected))
        # One repository per Task, unless that many Tasks would pass Step Functions' 25,000 events
        # of history (about 7 a Task): then each Task takes a few of its lane's repositories.
        batch = max(1, -(-len(selected) // _MAX_TASK_CALLS))
        self._jobs.log(job_id, f"retention policy {policy_id} on project {record.project}, dry_run={dry_run}: "
                               f"{len(selected)} repositories, {step} at a time")  # fmt: skip
        last = first + len(selected) - 1
        lanes = [{"job_id": job_id, "task_id": first + n, "step": step, "last": last, "batch": batch}
                 for n in range(step)]  # fmt: skip
        return {**nothing, "lanes": lanes}

    def run_lane(self, job_id: int, task_id: int, step: int, last: int, batch: int) -> int | None:
        """Run up to `batch` tasks of a lane (every `step`-th id from `task_id` to `last`); the id
        the lane goes on with, or None when it is done or the job has ended."""
        for _ in range(batch):
            if not self.run_task(job_id, task_id):
                return None
            task_id += step
            if task_id > last:
                return None
        return task_id

    def abandon(self, job_id: int, task_id: int, step: int, last: int, batch: int, *, error: str) -> int | None:
        """A lane's Task died (a Lambda timeout, out of memory): the first of its tasks that had
        not ended ends Error with the reason, and the lane goes on after it (None: it is done)."""
        following = task_id
        for _ in range(batch):
            if following > last:
                return None
            task = self._store.claim_task(job_id, following)
            following += step
            if task is not None:
                self._store.end_task(task, ERROR, 0, 0, f"error: the Task died: {error}\n")
                break
        try:
            self._jobs.check(job_id)
        except JobEnded:
            return None
        return following if following <= last else None

    def run_task(self, job_id: int, task_id: int) -> bool:
        """Apply the policy to one task's repository and end the task Success or Error (an error
        is the task's, not the execution's: the other repositories go on). False once the job
        has ended or was stopped, so the lane stops; a task that already ended is not run again.
        A task stopped or failed midway keeps the counts and log of what it did."""
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            return False
        task = self._store.claim_task(job_id, task_id)
        if task is None:
            return True
        record = self._store.get(int(job.parameters["policy_id"]))
        dry_run = bool(job.parameters.get("dry_run"))
        items: list[Item] = []
        lines: list[str] = []
        deleted: list[Item] = []
        status, going = SUCCESS, True
        try:
            if record is None:
                raise NotFound("the retention policy was deleted during the run")
            rules = parse_rules(record.policy.get("rules") or [])
            items = self._items(task.repository)
            decision = decide(rules, task.repository.partition("/")[2], items, int(self._clock()),
                              partial(self._immutable, task.repository))  # fmt: skip
            self._apply(job_id, task.repository, decision, dry_run, lines=lines, deleted=deleted)
        except JobEnded:
            status, going = STOPPED, False
            lines.append("stopped")
        except Exception as exc:
            logger.exception("retention task failed", job_id=job_id, task_id=task_id, repository=task.repository)
            status = ERROR
            lines.append(f"error: {type(exc).__name__}: {exc}")
        names = [_name_tag(task.repository, i) for i in deleted[:_ANNOUNCED_MAX]] if not dry_run else None
        self._store.end_task(task, status, len(items), len(items) - len(deleted), _log(lines), deleted=names)
        return going

    def finish(self, job_id: int) -> None:
        """Sum the tasks, publish each real task's TAG_RETENTION (once: claimed on the task row),
        and end the job: Success when every task succeeded, Error otherwise. Nothing is counted
        twice if this runs again (a retry): the job ends once, each event goes once."""
        job = self._jobs.get(job_id, VENDOR)
        tasks = self._store.tasks(job_id)
        totals = self._settle(job, tasks)
        failed = [t for t in tasks if t.status != SUCCESS]
        if not failed:
            self._jobs.finish(job_id, JobStatus.SUCCESS, None, totals)
            return
        first = failed[0]
        error = f"{len(failed)} of {len(tasks)} tasks did not succeed (first: {first.repository}, {first.status})"
        self._jobs.finish(job_id, JobStatus.ERROR, error, totals)

    def _settle(self, job: Job, tasks: list[TaskRecord]) -> dict[str, int]:
        """The execution's counts over its tasks; each task that deleted something gets its
        TAG_RETENTION, once (claimed on the task row, so a retried `finish` or a stop racing
        it does not publish it twice)."""
        record = self._store.get(int(job.parameters["policy_id"]))
        totals = {"total": 0, "retained": 0, "deleted": 0}
        for task in tasks:
            totals["total"] += task.total
            totals["retained"] += task.retained
            totals["deleted"] += task.total - task.retained
            if task.deleted and record is not None and self._store.mark_announced(job.job_id, task.task_id):
                self._announce(job, record, task)
        return totals

    def _announce(self, job: Job, record: PolicyRecord, task: TaskRecord) -> None:
        """Harbor's TAG_RETENTION event for one finished task; its operator is the trigger."""
        detail = {"retention": retention_payload(record, list(task.deleted), total=task.total, retained=task.retained)}
        self._events.publish(Event(type=EventType.TAG_RETENTION, operator=str(job.trigger).upper(),
                                   occurred_at=self._clock(), project=record.project, resource_type="retention",
                                   resource=str(record.policy_id), detail=detail))  # fmt: skip

    def fail(self, job_id: int, error: str) -> None:
        self._jobs.finish(job_id, JobStatus.ERROR, error)

    def _items(self, repository: str) -> list[Item]:
        artifacts = self._artifacts.listed(repository, ascending=False)
        digests = [a.digest for a in artifacts]
        tags = self._artifacts.tags_of(repository, digests, _TAGS_PER_ARTIFACT) if digests else {}
        labels = self._labels.labels_for(repository, digests) if digests else {}
        return [
            Item(a.digest, tuple(t.name for t in tags.get(a.digest, [])),
                 tuple(str(label["name"]) for label in labels.get(a.digest, [])), a.push_time, a.pull_time or 0)
            for a in artifacts
        ]  # fmt: skip

    def _immutable(self, repository: str, item: Item) -> bool:
        return any(self._immutability.protects(repository, tag) for tag in item.tags)

    def _apply(self, job_id: int, repository: str, decision: Decision, dry_run: bool, *, lines: list[str],
               deleted: list[Item]) -> None:  # fmt: skip
        """Delete (unless a dry run) what the decision dooms, logging into `lines` and adding what
        went to `deleted` as it goes (so a task stopped midway knows). The job is checked before
        each delete, so a stop takes effect between two artifacts."""
        lines += [f"{'retained':<10} {repository}@{i.digest} tags={list(i.tags)}" for i in decision.retained]
        lines += [f"{'immutable':<10} {repository}@{i.digest} tags={list(i.tags)}" for i in decision.immutable]
        for item in decision.deleted:
            if not dry_run:
                self._jobs.check(job_id)
                try:
                    self._manifests.delete_artifact(repository, item.digest)
                except ManifestUnknown:
                    continue  # deleted meanwhile (with an index, or by a user)
                except (ReferencedByOthers, Precondition, Conflict) as exc:
                    lines.append(f"{'kept':<10} {repository}@{item.digest}: {exc.message}")
                    continue
            deleted.append(item)
            verb = "would delete" if dry_run else "deleted"
            lines.append(f"{verb:<10} {repository}@{item.digest} tags={list(item.tags)}")


def _log(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _name_tag(repository: str, item: Item) -> str:
    """TAG_RETENTION's `name_tag`: `<repository without project>:<first tag>`, empty when untagged."""
    return f"{repository.partition('/')[2]}:{item.tags[0]}" if item.tags else ""
