"""Webhook delivery: the task body of the webhook job kind (its policies: `services/webhooks.py`).

Delivery is driven by domain events (`events.py`): `on_event` finds the project's enabled
policies that want the event type (`WebhookService.wanted`, cached), and for each records an
execution on the executions service (vendor type `WEBHOOK`, trigger `Event`, created Running)
with one task per target, then POSTs the payload. A target that fails (a
non-2xx answer, a connection error, a timeout) is retried up to `attempts` times, waiting
`backoff`, 2 x `backoff`, ... between attempts; every attempt is a line in the task's log, and the
task ends Success or Error with the last reason. The execution ends Success when every task did.

Where the work runs:
- locally the in-process bus calls `on_event` on its single worker thread; the delivery (rows,
  POSTs, backoff sleeps) runs on this service's own small thread pool, so a slow receiver never
  holds up the audit log or other subscribers;
- durably (`durable`: `webhook_state_machine_arn` is set, as the AWS stack and the local runner
  do): `on_event` only records the execution and its tasks and starts one execution of
  `infra/statemachines/webhook.asl.json` (Step Functions on AWS, moto locally). Its Map runs one
  loop per task: `attempt` makes ONE POST and answers success, retry (with the wait before the
  next attempt) or failed; the Wait state is the backoff, so no Lambda sleeps, a slow target holds
  nothing but its own loop, and an invocation that dies is retried by the state machine instead
  of losing the delivery. `finish` settles the execution from its tasks; `fail` records why a
  Task failed outright. Step Functions waits in whole seconds, so each wait is rounded up.
- in-process, not durable: locally on this service's own small thread pool, on AWS (no
  state machine configured, `asynchronous=False`) in the EventBridge consumer's invocation.
  A Lambda that ends (timeout) mid-retry, or a local process that stops, leaves its task active
  until a read finds it older than any delivery can take (the executions service's `reconcile`),
  which marks it Error with its tasks.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.core.jobs import ACTIVE_STATUSES, Job, JobStatus, Task, Trigger, VendorType
from chalicelib.core.webhooks import Delivery, Policy, Target, payload
from chalicelib.errors import BadRequest, EgressRefused, NotFound
from chalicelib.events import Event, EventType
from chalicelib.observability import logger
from chalicelib.services.webhooks import executions_key

if TYPE_CHECKING:
    from chalicelib.core.identity import Project
    from chalicelib.services.jobs import JobService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.webhooks import WebhookService


class Sender(Protocol):
    """The egress client (`adapters/egress.py`): both raise EgressRefused for a refused address."""

    def check(self, url: str) -> None: ...

    def post(self, url: str, body: bytes, headers: dict[str, str], verify: bool) -> int: ...


class WebhookDelivery:
    def __init__(self, policies: WebhookService, jobs: JobService, projects: ProjectService, sender: Sender, *,
                 registry_host: str, attempts: int, backoff_seconds: float, longest_seconds: float,
                 asynchronous: bool, workers: int = 4, durable: bool = False,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._policies = policies
        self._jobs = jobs
        self._projects = projects
        self._sender = sender
        self._registry_host = registry_host
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._longest_seconds = longest_seconds
        self._durable = durable
        self._clock = clock
        in_process = asynchronous and not durable
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhooks") if in_process else None
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def on_event(self, event: Event) -> None:
        if event.type in (EventType.DELETE_PROJECT, EventType.CREATE_PROJECT) and event.project:
            self._policies.forget(event.project)
            return
        if not event.project:
            return
        for policy in self._policies.wanted(event.project, event.type.value):
            if self._durable:
                self._start(event.project, policy, event)
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

    def _record(self, project: str, policy: Policy, event: Event) -> tuple[Job, list[tuple[Task, Target]]]:
        """One execution for (policy, event), Running, and one Pending task per target."""
        base = {"policy_id": policy.policy_id, "project": project, "event_type": event.type.value}
        specs = [(target.address, {"type": target.type, "address": target.address, "event_type": event.type.value})
                 for target in policy.targets]  # fmt: skip
        execution, tasks = self._jobs.record_with_tasks(VendorType.WEBHOOK, Trigger.EVENT, base, specs,
                                                        listed_under=executions_key(policy.policy_id),
                                                        counts={"tasks": len(policy.targets)})  # fmt: skip
        self._policies.triggered(project, policy.policy_id, event.type.value, execution.created_at)
        return execution, list(zip(tasks, policy.targets, strict=True))

    def _fire(self, project: str, policy: Policy, event: Event) -> None:
        """In-process delivery: record, then deliver to each target in order, retries included."""
        execution, tasks = self._record(project, policy, event)
        found = self._project(project)
        public = found is not None and found.public
        source = _source(found, policy.policy_id)
        succeeded = sum(self._deliver(task, target, event, source, public) for task, target in tasks)
        self._settle_execution(execution.job_id, len(tasks), succeeded)

    def _settle_execution(self, execution_id: int, total: int, succeeded: int) -> None:
        counts = {"tasks": total, "success": succeeded, "error": total - succeeded}
        status = JobStatus.SUCCESS if succeeded == total else JobStatus.ERROR
        error = None if status is JobStatus.SUCCESS else f"{counts['error']} of {total} targets failed"
        self._jobs.finish(execution_id, status, error, counts)

    def _deliver(self, task: Task, target: Target, event: Event, source: str, public: bool) -> bool:
        running = self._jobs.begin_task(task)
        if running is None:
            return False
        delivery = payload(event, target, source, self._registry_host, public)
        reason = ""
        for attempt in range(1, self._attempts + 1):
            ok, reason, line = self._post(target, delivery, attempt)
            if ok:
                return self._jobs.end_task(running, JobStatus.SUCCESS, run_count=attempt, log=[line])
            if attempt < self._attempts:
                self._jobs.note_task(running, run_count=attempt, log=[line])
                time.sleep(self._backoff * 2 ** (attempt - 1))
            else:
                self._give_up(running, reason, line)
        return False

    def _post(self, target: Target, delivery: Delivery, attempt: int) -> tuple[bool, str, str]:
        """One POST: (2xx?, reason, the line the task's log gets)."""
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
        return ok, reason, f"attempt {attempt}/{self._attempts} to {target.address}: {reason}"

    def _give_up(self, task: Task, reason: str, line: str) -> None:
        error = f"gave up after {self._attempts} attempts: {reason}"
        self._jobs.end_task(task, JobStatus.ERROR, error=error, run_count=self._attempts, log=[line, error])

    # Durable delivery: the state machine's Tasks (chalicelib/jobs/webhooks.py).

    def _start(self, project: str, policy: Policy, event: Event) -> None:
        """Record the execution and its tasks, then start the state machine that delivers them.

        The input names each task's target by its index in the policy, never its `auth_header`:
        an execution's input is readable in Step Functions' history, the header is a secret.
        An execution that cannot be started ends Error with the reason (the event is not retried:
        the other subscribers of the same event already ran)."""
        execution, tasks = self._record(project, policy, event)
        found = self._project(project)
        common = {"execution_id": execution.job_id, "project": project, "policy_id": policy.policy_id,
                  "event": event.to_dict(), "public": found is not None and found.public}  # fmt: skip
        items = [{**common, "task_id": task.task_id, "target": policy.targets.index(target),
                  "address": target.address, "delivery_id": str(uuid.uuid4())} for task, target in tasks]  # fmt: skip
        delivery = {"execution_id": execution.job_id, "tasks": items}
        try:
            # The input is kept on the row (one write with the ARN) so that `resume` can start it again.
            self._jobs.launch(execution, delivery, {**execution.parameters, "payload": delivery})
        except Exception as exc:
            logger.exception("could not start a webhook delivery", extra={"execution_id": execution.job_id})
            reason = f"could not start the delivery: {type(exc).__name__}: {str(exc)[:300]}"
            for task, _ in tasks:
                self._jobs.end_task(task, JobStatus.ERROR, error=reason, log=[reason])
            self._settle_execution(execution.job_id, len(tasks), 0)

    def resume(self, projects: Iterable[str], per_policy: int = 50) -> int:
        """Start again the deliveries whose state machine execution is gone; returns how many.

        The local runner calls it at start: moto's executions die with the process, the rows do
        not. Each task goes on from the attempt its row counted (`attempt` skips ended tasks).
        Looks at the newest `per_policy` executions of every policy of `projects` (Queries, no
        Scan); an execution older than any delivery can take is left to `reconcile`."""
        if not self._durable:
            return 0
        resumed = 0
        for project in projects:
            for policy in self._policies.listed(project):
                for job in self._jobs.recorded(executions_key(policy.policy_id), per_policy):
                    if self._clock() - job.created_at > self._longest_seconds:
                        continue
                    if self._jobs.resume(job, before_start=self._note_resumed):
                        logger.info("webhook delivery resumed", execution_id=job.job_id)
                        resumed += 1
        return resumed

    def _note_resumed(self, job: Job) -> None:
        """Written before the new execution starts: once started, it may end the task first."""
        for task in self._jobs.tasks(job.job_id):
            if task.status in ACTIVE_STATUSES:
                self._jobs.note_task(task, log=["delivery resumed: the process that ran it stopped"])

    def attempt(self, item: dict[str, Any]) -> dict[str, Any]:
        """ONE delivery attempt of one task; returns the item with `outcome` (`success`, `retry`,
        `failed`, or `done` for a task that had already ended) and, for a retry, `wait` (whole
        seconds). Idempotent: a task that ended is left alone, the attempt count is on its row."""
        task_id, execution_id, index, address, project, policy_id = _item(item)
        if self._jobs.execution(execution_id, VendorType.WEBHOOK) is None:
            raise NotFound(f"webhook execution {execution_id} not found")
        task = self._jobs.task(execution_id, task_id)
        if task is None:
            raise NotFound(f"webhook task {task_id} of execution {execution_id} not found")
        task = self._jobs.start_task(execution_id, task_id)
        if task is None:
            return {**item, "outcome": "done"}
        attempt = task.run_count + 1
        target = self._policies.target(project, policy_id, index, address)
        if target is None:
            error = "the webhook policy or its target was deleted or changed before delivery"
            self._jobs.end_task(task, JobStatus.ERROR, error=error, run_count=attempt - 1, log=[error])
            return {**item, "outcome": "failed"}
        event = Event.from_dict(item["event"])
        source = _source(self._project(project), policy_id)
        delivery = payload(event, target, source, self._registry_host, bool(item.get("public")),
                           event_id=str(item.get("delivery_id") or "") or None)  # fmt: skip
        ok, reason, line = self._post(target, delivery, attempt)
        if ok:
            self._jobs.end_task(task, JobStatus.SUCCESS, run_count=attempt, log=[line])
            return {**item, "outcome": "success"}
        if attempt < self._attempts:
            self._jobs.note_task(task, run_count=attempt, log=[line])
            return {**item, "outcome": "retry", "wait": math.ceil(self._backoff * 2 ** (attempt - 1))}
        self._give_up(task, reason, line)
        return {**item, "outcome": "failed"}

    def finish(self, execution_id: int) -> dict[str, Any]:
        """Settle the execution from its tasks (any not successful counts as failed)."""
        tasks = self._jobs.tasks(execution_id)
        succeeded = sum(1 for t in tasks if t.status == JobStatus.SUCCESS)
        self._settle_execution(execution_id, len(tasks), succeeded)
        return {"execution_id": execution_id, "tasks": len(tasks), "success": succeeded}

    def fail(self, execution_id: int, task_id: int | None, reason: str) -> None:
        """A Task failed outright (the Catch): record why on the task, or on the execution, which
        ends every task it left unfinished (none may stay Running once its state machine ended)."""
        if self._jobs.execution(execution_id, VendorType.WEBHOOK) is None:
            raise NotFound(f"webhook execution {execution_id} not found")
        if task_id is None:
            self._jobs.finish(execution_id, JobStatus.ERROR, reason)
            return
        task = self._jobs.task(execution_id, task_id)
        if task is None:
            raise NotFound(f"webhook task {task_id} not found")
        self._jobs.end_task(task, JobStatus.ERROR, error=reason, log=[reason])

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
