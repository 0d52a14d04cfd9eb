"""A tag retention run: the task body of the retention job kind (its policies:
`services/retention.py`).

An execution is a job of the executions service (vendor type `RETENTION`, `services/jobs.py`) run by
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
holds its policy's lock (`core/jobs.py` `policy_lock`, a conditional put, `services/jobs.py`), so a second manual
trigger of the same policy is refused with 409 and a scheduled one is skipped, while the policies
of other projects run in parallel. (Harbor itself does not check: its `TriggerRetentionExec`
starts a second execution beside a running one, and the two race to delete the same artifacts;
refusing it keeps the counts and the TAG_RETENTION payloads of one run true.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import Job, JobStatus, Task, Trigger, policy_lock
from chalicelib.core.retention import Decision, Item, decide, parse_rules
from chalicelib.errors import Conflict, ManifestUnknown, NotFound, Precondition, ReferencedByOthers
from chalicelib.events import Event, EventType
from chalicelib.observability import logger
from chalicelib.services.jobs import JobEnded
from chalicelib.services.retention import VENDOR, policy_project

if TYPE_CHECKING:
    from chalicelib.events import EventBus
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.repositories import RepositoryStore
    from chalicelib.stores.retention import PolicyRecord, RetentionStore

_TAGS_PER_ARTIFACT = 1000
# The most deleted artifacts one TAG_RETENTION event lists: ~100 bytes each keeps the event well
# under EventBridge's 256 KB (its `total` and `retained` still count them all).
_ANNOUNCED_MAX = 1000
# The most repository Tasks one execution runs (~7 history events each, under the 25,000 a
# Standard workflow may have); a bigger project's Tasks take several repositories each.
_MAX_TASK_CALLS = 3000


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


class RetentionRun:
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

    def submit(self, policy_id: int, trigger: Trigger, dry_run: bool) -> Job:
        """Start a run of the policy; Conflict (409) while an execution of it is active."""
        parameters = {"policy_id": policy_id, "dry_run": dry_run}
        try:
            return self._jobs.submit(VENDOR, trigger, parameters, lock=policy_lock(VENDOR, policy_id))
        except Conflict as exc:
            raise Conflict(f"an execution of retention policy {policy_id} is already running", exc.detail) from None

    def run_due(self, now: float) -> list[Job]:
        """Start every policy whose cron slot passed since its last run (once per slot, even with
        several schedulers: the slot is claimed by a conditional write). The scheduler tick calls it."""
        started = []
        for schedule in self._jobs.due(VENDOR, now):
            if self._store.get(schedule.policy_id) is None:
                continue
            try:
                started.append(self.submit(schedule.policy_id, Trigger.SCHEDULE, False))
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
        if not policy_project(self._projects, record):
            self._jobs.finish(job_id, JobStatus.ERROR, f"project {record.project} of policy {policy_id} was deleted")
            return nothing
        rules = parse_rules(record.policy.get("rules") or [])
        selected = [r.name for r in self._repositories.find(record.project)
                    if any(rule.selects_repository(r.name.partition("/")[2]) for rule in rules)]  # fmt: skip
        tasks = self._jobs.create_tasks(job_id, [(repository, {}) for repository in selected])
        first = tasks[0].task_id if tasks else 0
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
            task = self._jobs.start_task(job_id, following)
            following += step
            if task is not None:
                self._jobs.end_task(task, JobStatus.ERROR, counts={"total": 0, "retained": 0},
                                    log=[f"error: the Task died: {error}"])  # fmt: skip
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
        task = self._jobs.start_task(job_id, task_id)
        if task is None:
            return True
        repository = task.subject
        record = self._store.get(int(job.parameters["policy_id"]))
        dry_run = bool(job.parameters.get("dry_run"))
        items: list[Item] = []
        lines: list[str] = []
        deleted: list[Item] = []
        status, going = JobStatus.SUCCESS, True
        try:
            if record is None:
                raise NotFound("the retention policy was deleted during the run")
            rules = parse_rules(record.policy.get("rules") or [])
            items = self._items(repository)
            decision = decide(rules, repository.partition("/")[2], items, int(self._clock()),
                              partial(self._immutable, repository))  # fmt: skip
            self._apply(job_id, repository, decision, dry_run, lines=lines, deleted=deleted)
        except JobEnded:
            status, going = JobStatus.STOPPED, False
            lines.append("stopped")
        except Exception as exc:
            logger.exception("retention task failed", job_id=job_id, task_id=task_id, repository=repository)
            status = JobStatus.ERROR
            lines.append(f"error: {type(exc).__name__}: {exc}")
        names = [_name_tag(repository, i) for i in deleted[:_ANNOUNCED_MAX]] if not dry_run else []
        self._jobs.end_task(task, status, counts={"total": len(items), "retained": len(items) - len(deleted)},
                            log=lines, result={"deleted": names} if names else None)  # fmt: skip
        return going

    def finish(self, job_id: int) -> None:
        """Sum the tasks, publish each real task's TAG_RETENTION (once: claimed on the task row),
        and end the job: Success when every task succeeded, Error otherwise. Nothing is counted
        twice if this runs again (a retry): the job ends once, each event goes once."""
        job = self._jobs.get(job_id, VENDOR)
        tasks = self._jobs.tasks(job_id)
        totals = self.settle(job, tasks)
        failed = [t for t in tasks if t.status != JobStatus.SUCCESS]
        if not failed:
            self._jobs.finish(job_id, JobStatus.SUCCESS, None, totals)
            return
        first = failed[0]
        error = f"{len(failed)} of {len(tasks)} tasks did not succeed (first: {first.subject}, {first.status})"
        self._jobs.finish(job_id, JobStatus.ERROR, error, totals)

    def settle(self, job: Job, tasks: list[Task]) -> dict[str, int]:
        """The execution's counts over its tasks; each task that deleted something gets its
        TAG_RETENTION, once (claimed on the task row, so a retried `finish` or a stop racing
        it does not publish it twice)."""
        record = self._store.get(int(job.parameters["policy_id"]))
        totals = {"total": 0, "retained": 0, "deleted": 0}
        for task in tasks:
            total, retained = task.counts.get("total", 0), task.counts.get("retained", 0)
            totals["total"] += total
            totals["retained"] += retained
            totals["deleted"] += total - retained
            if task.result.get("deleted") and record is not None and self._jobs.claim_report(job.job_id, task.task_id):
                self._announce(job, record, task)
        return totals

    def _announce(self, job: Job, record: PolicyRecord, task: Task) -> None:
        """Harbor's TAG_RETENTION event for one finished task; its operator is the trigger."""
        total, retained = task.counts.get("total", 0), task.counts.get("retained", 0)
        detail = {"retention": retention_payload(record, list(task.result["deleted"]), total=total, retained=retained)}
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


def _name_tag(repository: str, item: Item) -> str:
    """TAG_RETENTION's `name_tag`: `<repository without project>:<first tag>`, empty when untagged."""
    return f"{repository.partition('/')[2]}:{item.tags[0]}" if item.tags else ""
