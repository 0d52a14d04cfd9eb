"""Webhooks (Harbor's notification policies): policies per project and their delivery as jobs.

Policies are managed by project administrators (RBAC resource `notification-policy`); Harbor lets
maintainers list policies and executions, and nobody else below project admin see them. Delivery
is driven by domain events (`events.py`): `on_event` finds the project's enabled policies that
want the event type (one GetItem per project, cached for `cache_seconds`, including "none"),
and for each records an execution (job row, vendor type `WEBHOOK`, trigger `Event`) with one
task per target (vendor type `WEBHOOK_TASK`), then POSTs the payload. A target that fails (a
non-2xx answer, a connection error, a timeout) is retried up to `attempts` times, waiting
`backoff`, 2 x `backoff`, ... between attempts; every attempt is a line in the task's log, and the
task ends Success or Error with the last reason. The execution ends Success when every task did.

Where the work runs:
- locally the in-process bus calls `on_event` on its single worker thread; the delivery (rows,
  POSTs, backoff sleeps) runs on this service's own small thread pool, so a slow receiver never
  holds up the audit log or other subscribers;
- durably (a `runner` is given: `webhook_state_machine_arn`, which the AWS stack and the local
  runner set): `on_event` only records the execution and its tasks and starts one execution of
  `infra/statemachines/webhook.asl.json` (Step Functions on AWS, moto locally). Its Map runs one
  loop per task: `attempt` makes ONE POST and answers success, retry (with the wait before the
  next attempt) or failed; the Wait state is the backoff, so no Lambda sleeps, a slow target holds
  nothing but its own loop, and an invocation that dies is retried by the state machine instead
  of losing the delivery. `finish` settles the execution from its tasks; `fail` records why a
  Task failed outright. Step Functions waits in whole seconds, so each wait is rounded up.
- in-process, without a runner: locally on this service's own small thread pool, on AWS (no
  state machine configured, `asynchronous=False`) in the EventBridge consumer's invocation.
  A Lambda that ends (timeout) mid-retry, or a local process that stops, leaves its task active
  until a read finds it older than any delivery can take (`_settled`), which marks it Error.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.jobs import ACTIVE_STATUSES, Job, JobStatus, Trigger, VendorType
from chalicelib.core.webhooks import MAX_POLICIES, MAX_TARGETS, Delivery, Policy, Target, parse_policy, payload
from chalicelib.errors import BadRequest, Conflict, EgressRefused, NotFound
from chalicelib.events import Event, EventType
from chalicelib.observability import logger
from chalicelib.services.project_documents import ProjectCache, change_versioned

if TYPE_CHECKING:
    from chalicelib.core.identity import Principal, Project
    from chalicelib.services.jobs import Runner
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.jobs import JobStore
    from chalicelib.stores.webhooks import WebhookStore

RESOURCE = "notification-policy"
# The newest executions (of a policy) or tasks (of an execution) the API lists.
HISTORY_LIMIT = 500


class Sender(Protocol):
    """The egress client (`adapters/egress.py`): both raise EgressRefused for a refused address."""

    def check(self, url: str) -> None: ...

    def post(self, url: str, body: bytes, headers: dict[str, str], verify: bool) -> int: ...


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        jobs: JobStore,
        projects: ProjectService,
        sender: Sender,
        *,
        registry_host: str,
        attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
        cache_seconds: float,
        asynchronous: bool,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
        runner: Runner | None = None,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._projects = projects
        self._sender = sender
        self._registry_host = registry_host
        self._attempts = attempts
        self._backoff = backoff_seconds
        # The longest one execution can take: every target, every attempt timing out (connect and
        # read), every backoff; plus a minute for the rows. Active for longer means abandoned.
        per_target = attempts * 2 * timeout_seconds + backoff_seconds * (2**attempts - 1)
        self._longest_seconds = MAX_TARGETS * per_target + 60
        self._runner = runner
        in_process = asynchronous and runner is None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhooks") if in_process else None
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._cache: ProjectCache[tuple[Policy, ...]] = ProjectCache(cache_seconds, clock)

    # Policies (/projects/{p}/webhook/policies).

    def policies(self, caller: Principal, project: Project) -> list[Policy]:
        self._projects.authorize(caller, project, RESOURCE, "list")
        return sorted(self._load(project.name)[0], key=lambda p: p.policy_id)

    def policy(self, caller: Principal, project: Project, policy_id: int, action: str = "read") -> Policy:
        self._projects.authorize(caller, project, RESOURCE, action)
        return _find(self._load(project.name)[0], policy_id)

    def create(self, caller: Principal, project: Project, data: dict[str, Any]) -> Policy:
        self._projects.authorize(caller, project, RESOURCE, "create")
        now = int(time.time())
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
        self._projects.authorize(caller, project, RESOURCE, "update")

        def change(policies: list[Policy]) -> list[Policy]:
            current = _find(policies, policy_id)
            updated = parse_policy(data, policy_id, current.creator, current.created_at, int(time.time()))
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
        self._projects.authorize(caller, project, RESOURCE, "delete")

        def change(policies: list[Policy]) -> list[Policy]:
            _find(policies, policy_id)
            return [p for p in policies if p.policy_id != policy_id]

        self._change(project.name, change)

    def authorize_read(self, caller: Principal, project: Project) -> None:
        """For `/webhook/events` (the supported types), as Harbor checks it."""
        self._projects.authorize(caller, project, RESOURCE, "read")

    def last_triggers(self, caller: Principal, project: Project) -> list[tuple[Policy, str, int | None]]:
        """(policy, event type, last trigger time or None) for every event type of every policy."""
        self._projects.authorize(caller, project, RESOURCE, "read")
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

    # Executions, tasks and logs.

    def executions(self, caller: Principal, project: Project, policy_id: int) -> list[Job]:
        self.policy(caller, project, policy_id, "list")
        return [self._settled(j) for j in self._jobs.history(_executions_key(policy_id), HISTORY_LIMIT)]

    def tasks(self, caller: Principal, project: Project, policy_id: int, execution_id: int) -> list[Job]:
        self._execution(caller, project, policy_id, execution_id, "list")
        return [self._settled(j) for j in self._jobs.history(_tasks_key(execution_id), HISTORY_LIMIT)]

    def task_log(self, caller: Principal, project: Project, policy_id: int, execution_id: int, task_id: int) -> str:
        self._execution(caller, project, policy_id, execution_id, "read")
        task = self._jobs.get(task_id)
        if task is None or task.parameters.get("execution_id") != execution_id:
            raise NotFound(f"task {task_id} not found")
        return "".join(f"{line}\n" for line in self._jobs.log_lines(task_id))

    def _settled(self, job: Job) -> Job:
        """An execution or task still active long after any delivery could have ended lost its
        deliverer (a restart, a Lambda timeout): it is marked Error when read, never left Running."""
        if job.status not in ACTIVE_STATUSES or time.time() - job.created_at <= self._longest_seconds:
            return job
        error = "interrupted: the process delivering it stopped before it ended"
        if self._jobs.transition(job.job_id, JobStatus.ERROR, allowed=ACTIVE_STATUSES, error=error):
            self._jobs.log(job.job_id, error)
        return self._jobs.get(job.job_id) or job

    def _execution(self, caller: Principal, project: Project, policy_id: int, execution_id: int, action: str) -> Job:
        self.policy(caller, project, policy_id, action)
        job = self._jobs.get(execution_id)
        if (job is None or job.vendor_type != VendorType.WEBHOOK or job.parameters.get("policy_id") != policy_id
                or job.parameters.get("project") != project.name):  # fmt: skip
            raise NotFound(f"execution {execution_id} not found")
        return job

    # Delivery.

    def on_event(self, event: Event) -> None:
        if event.type in (EventType.DELETE_PROJECT, EventType.CREATE_PROJECT) and event.project:
            self._cache.forget(event.project)
            return
        if not event.project:
            return
        project = event.project
        wanted = [
            p for p in self._cache.get(project, lambda: tuple(self._load(project)[0])) if p.wants(event.type.value)
        ]
        for policy in wanted:
            if self._runner is not None:
                self._start(self._runner, event.project, policy, event)
            elif self._pool is None:
                self._fire(event.project, policy, event)
            else:
                with self._lock:
                    self._pending += 1
                self._pool.submit(self._run, event.project, policy, event)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every delivery started so far has ended (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self, project: str, policy: Policy, event: Event) -> None:
        try:
            self._fire(project, policy, event)
        except Exception:
            logger.exception("webhook delivery failed", extra={"policy_id": policy.policy_id})
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _record(self, project: str, policy: Policy, event: Event) -> tuple[Job, list[tuple[Job, Target]]]:
        """One execution for (policy, event), Running, and one Pending task per target."""
        now = int(time.time())
        base = {"policy_id": policy.policy_id, "project": project, "event_type": event.type.value}
        execution = replace(self._new_job(VendorType.WEBHOOK, base, now), counts={"tasks": len(policy.targets)})
        self._jobs.create(execution, _executions_key(policy.policy_id))
        self._jobs.transition(execution.job_id, JobStatus.RUNNING, allowed=(JobStatus.PENDING,))
        self._store.triggered(project, policy.policy_id, event.type.value, now)
        tasks = []
        for target in policy.targets:
            about = {**base, "execution_id": execution.job_id, "type": target.type, "address": target.address}
            task = self._new_job(VendorType.WEBHOOK_TASK, about, now)
            self._jobs.create(task, _tasks_key(execution.job_id))
            tasks.append((task, target))
        return execution, tasks

    def _fire(self, project: str, policy: Policy, event: Event) -> None:
        """In-process delivery: record, then deliver to each target in order, retries included."""
        execution, tasks = self._record(project, policy, event)
        found = self._project(project)
        public = found is not None and found.public
        source = _source(found, policy.policy_id)
        succeeded = sum(self._deliver(task.job_id, target, event, source, public) for task, target in tasks)
        self._settle_execution(execution.job_id, len(tasks), succeeded)

    def _settle_execution(self, execution_id: int, total: int, succeeded: int) -> None:
        counts = {"tasks": total, "success": succeeded, "error": total - succeeded}
        status = JobStatus.SUCCESS if succeeded == total else JobStatus.ERROR
        error = None if status is JobStatus.SUCCESS else f"{counts['error']} of {total} targets failed"
        self._jobs.transition(execution_id, status, allowed=(JobStatus.RUNNING,), counts=counts, error=error)

    def _deliver(self, task_id: int, target: Target, event: Event, source: str, public: bool) -> bool:
        self._jobs.transition(task_id, JobStatus.RUNNING, allowed=(JobStatus.PENDING,))
        delivery = payload(event, target, source, self._registry_host, public)
        reason = ""
        for attempt in range(1, self._attempts + 1):
            ok, reason = self._post(task_id, target, delivery, attempt)
            if ok:
                self._jobs.transition(task_id, JobStatus.SUCCESS, allowed=(JobStatus.RUNNING,),
                                      counts={"attempts": attempt})  # fmt: skip
                return True
            if attempt < self._attempts:
                time.sleep(self._backoff * 2 ** (attempt - 1))
        self._give_up(task_id, reason)
        return False

    def _post(self, task_id: int, target: Target, delivery: Delivery, attempt: int) -> tuple[bool, str]:
        """One POST, logged on the task: (2xx?, reason)."""
        try:
            code = self._sender.post(target.address, delivery.body, delivery.headers, not target.skip_cert_verify)
            reason = f"HTTP {code}"
            ok = 200 <= code < 300
        except EgressRefused:
            # Nothing was sent; the reason is the same for every refused address (no port scan).
            reason, ok = "refused: the target address is not allowed", False
        except Exception as exc:  # any transport failure is a failed attempt, never a crash
            # The error's kind only: its text can carry addresses and details of the network.
            reason, ok = f"connection failed ({type(exc).__name__})", False
        self._jobs.log(task_id, f"attempt {attempt}/{self._attempts} to {target.address}: {reason}")
        return ok, reason

    def _give_up(self, task_id: int, reason: str) -> None:
        error = f"gave up after {self._attempts} attempts: {reason}"
        self._jobs.log(task_id, error)
        self._jobs.transition(task_id, JobStatus.ERROR, allowed=(JobStatus.RUNNING,), error=error,
                              counts={"attempts": self._attempts})  # fmt: skip

    # Durable delivery: the state machine's Tasks (chalicelib/jobs/webhooks.py).

    def _start(self, runner: Runner, project: str, policy: Policy, event: Event) -> None:
        """Record the execution and its tasks, then start the state machine that delivers them.

        The input names each task's target by its index in the policy, never its `auth_header`:
        an execution's input is readable in Step Functions' history, the header is a secret.
        An execution that cannot be started ends Error with the reason (the event is not retried:
        the other subscribers of the same event already ran)."""
        execution, tasks = self._record(project, policy, event)
        found = self._project(project)
        common = {"execution_id": execution.job_id, "project": project, "policy_id": policy.policy_id,
                  "event": event.to_dict(), "public": found is not None and found.public}  # fmt: skip
        items = [{**common, "task_id": task.job_id, "target": policy.targets.index(target),
                  "address": target.address, "delivery_id": str(uuid.uuid4())} for task, target in tasks]  # fmt: skip
        delivery = {"execution_id": execution.job_id, "tasks": items}
        try:
            arn = runner.start(VendorType.WEBHOOK, execution.job_id, delivery)
        except Exception as exc:
            logger.exception("could not start a webhook delivery", extra={"execution_id": execution.job_id})
            reason = f"could not start the delivery: {type(exc).__name__}: {str(exc)[:300]}"
            for task, _ in tasks:
                self._end_task(task.job_id, JobStatus.ERROR, reason, 0, allowed=ACTIVE_STATUSES)
            self._settle_execution(execution.job_id, len(tasks), 0)
            return
        # The input is kept on the row (one write with the ARN) so that `resume` can start it again.
        self._jobs.set_fields(execution.job_id, execution_arn=arn,
                              parameters={**execution.parameters, "delivery": delivery})  # fmt: skip

    def resume(self, projects: Iterable[str], per_policy: int = 50) -> int:
        """Start again the deliveries whose state machine execution is gone; returns how many.

        The local runner calls it at start: moto's executions die with the process, the rows do
        not. Each task goes on from the attempt its row counted (`attempt` skips ended tasks).
        Looks at the newest `per_policy` executions of every policy of `projects` (Queries, no
        Scan); an execution older than any delivery can take is left to `_settled`."""
        if self._runner is None:
            return 0
        resumed = 0
        for project in projects:
            for policy in self._load(project)[0]:
                for job in self._jobs.history(_executions_key(policy.policy_id), per_policy):
                    if job.status in ACTIVE_STATUSES and self._resume(self._runner, job):
                        resumed += 1
        return resumed

    def _resume(self, runner: Runner, job: Job) -> bool:
        delivery = job.parameters.get("delivery")
        if not isinstance(delivery, dict) or not job.execution_arn or runner.status(job.execution_arn) == "RUNNING":
            return False
        if time.time() - job.created_at > self._longest_seconds:
            return False
        arn = runner.start(VendorType.WEBHOOK, job.job_id, delivery)
        self._jobs.set_fields(job.job_id, execution_arn=arn)
        for task in self._jobs.history(_tasks_key(job.job_id), HISTORY_LIMIT):
            if task.status in ACTIVE_STATUSES:
                self._jobs.log(task.job_id, "delivery resumed: the process that ran it stopped")
        logger.info("webhook delivery resumed", execution_id=job.job_id)
        return True

    def attempt(self, item: dict[str, Any]) -> dict[str, Any]:
        """ONE delivery attempt of one task; returns the item with `outcome` (`success`, `retry`,
        `failed`, or `done` for a task that had already ended) and, for a retry, `wait` (whole
        seconds). Idempotent: a task that ended is left alone, the attempt count is on its row."""
        task_id, execution_id, index, address, project, policy_id = _item(item)
        task = self._jobs.get(task_id)
        if (task is None or task.vendor_type != VendorType.WEBHOOK_TASK
                or task.parameters.get("execution_id") != execution_id):  # fmt: skip
            raise NotFound(f"webhook task {task_id} of execution {execution_id} not found")
        if task.status not in ACTIVE_STATUSES:
            return {**item, "outcome": "done"}
        if task.status == JobStatus.PENDING:
            self._jobs.transition(task_id, JobStatus.RUNNING, allowed=(JobStatus.PENDING,))
        attempt = task.counts.get("attempts", 0) + 1
        target = self._target(project, policy_id, index, address)
        if target is None:
            error = "the webhook policy or its target was deleted or changed before delivery"
            self._end_task(task_id, JobStatus.ERROR, error, attempt - 1)
            return {**item, "outcome": "failed"}
        event = Event.from_dict(item["event"])
        source = _source(self._project(project), policy_id)
        delivery = payload(event, target, source, self._registry_host, bool(item.get("public")),
                           event_id=str(item.get("delivery_id") or "") or None)  # fmt: skip
        ok, reason = self._post(task_id, target, delivery, attempt)
        if ok:
            self._end_task(task_id, JobStatus.SUCCESS, None, attempt)
            return {**item, "outcome": "success"}
        if attempt < self._attempts:
            self._jobs.set_fields(task_id, counts={"attempts": attempt})
            return {**item, "outcome": "retry", "wait": math.ceil(self._backoff * 2 ** (attempt - 1))}
        self._give_up(task_id, reason)
        return {**item, "outcome": "failed"}

    def finish(self, execution_id: int) -> dict[str, Any]:
        """Settle the execution from its tasks (any not successful counts as failed)."""
        tasks = self._jobs.history(_tasks_key(execution_id), HISTORY_LIMIT)
        succeeded = sum(1 for t in tasks if t.status == JobStatus.SUCCESS)
        self._settle_execution(execution_id, len(tasks), succeeded)
        return {"execution_id": execution_id, "tasks": len(tasks), "success": succeeded}

    def fail(self, execution_id: int, task_id: int | None, reason: str) -> None:
        """A Task failed outright (the Catch): record why on the task, or on the execution and
        every task it left unfinished (none may stay Running once its state machine has ended)."""
        job_id = task_id if task_id is not None else execution_id
        job = self._jobs.get(job_id)
        expected = VendorType.WEBHOOK_TASK if task_id is not None else VendorType.WEBHOOK
        if job is None or job.vendor_type != expected:
            raise NotFound(f"webhook job {job_id} not found")
        if task_id is not None:
            self._end_task(task_id, JobStatus.ERROR, reason, job.counts.get("attempts", 0), allowed=ACTIVE_STATUSES)
            return
        for task in self._jobs.history(_tasks_key(execution_id), HISTORY_LIMIT):
            if task.status in ACTIVE_STATUSES:
                self._end_task(task.job_id, JobStatus.ERROR, reason, task.counts.get("attempts", 0),
                               allowed=ACTIVE_STATUSES)  # fmt: skip
        if self._jobs.transition(execution_id, JobStatus.ERROR, allowed=ACTIVE_STATUSES, error=reason[:2000]):
            self._jobs.log(execution_id, reason)

    def _end_task(self, task_id: int, status: JobStatus, error: str | None, attempts: int,
                  allowed: tuple[JobStatus, ...] = (JobStatus.RUNNING,)) -> None:  # fmt: skip
        if error:
            self._jobs.log(task_id, error)
        self._jobs.transition(task_id, status, allowed=allowed, error=error[:2000] if error else None,
                              counts={"attempts": attempts})  # fmt: skip

    def _target(self, project: str, policy_id: int, index: int, address: str) -> Target | None:
        """The task's target as the policy holds it now (its auth header may have changed), or
        None when the policy is gone or that target is no longer the same address."""
        policies = self._cache.get(project, lambda: tuple(self._load(project)[0]))
        policy = next((p for p in policies if p.policy_id == policy_id), None)
        if policy is None or not 0 <= index < len(policy.targets) or policy.targets[index].address != address:
            return None
        return policy.targets[index]

    def _new_job(self, vendor_type: VendorType, parameters: dict[str, Any], now: int) -> Job:
        return Job(job_id=self._store.new_job_id(), vendor_type=vendor_type, trigger=Trigger.EVENT,
                   status=JobStatus.PENDING, parameters=parameters, created_at=now, updated_at=now)  # fmt: skip

    def _project(self, project: str) -> Project | None:
        try:
            return self._projects.resolve(project, True)
        except NotFound:
            return None


def _item(item: dict[str, Any]) -> tuple[int, int, int, str, str, int]:
    """(task id, execution id, target index, address, project, policy id) of a state machine item;
    BadRequest when it is not one (the Task fails and its Catch records why)."""
    try:
        values = (int(item["task_id"]), int(item["execution_id"]), int(item["target"]), str(item["address"]),
                  str(item["project"]), int(item["policy_id"]))  # fmt: skip
        if not isinstance(item["event"], dict):
            raise TypeError("event must be an object")
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"not a webhook task item: {type(exc).__name__}: {str(exc)[:200]}") from None
    return values


def _source(project: Project | None, policy_id: int) -> str:
    """CloudEvents `source`, as Harbor builds it: the project's id and the policy's."""
    return f"/projects/{project.project_id if project else 0}/webhook/policies/{policy_id}"


def _executions_key(policy_id: int) -> str:
    return f"{VendorType.WEBHOOK}#{policy_id}"


def _tasks_key(execution_id: int) -> str:
    return f"{VendorType.WEBHOOK_TASK}#{execution_id}"


def _find(policies: list[Policy], policy_id: int) -> Policy:
    for policy in policies:
        if policy.policy_id == policy_id:
            return policy
    raise NotFound(f"webhook policy {policy_id} not found")


def _refuse_duplicate(policies: list[Policy], policy: Policy) -> None:
    if any(p.name == policy.name for p in policies):
        raise Conflict(f"webhook policy {policy.name!r} already exists")
