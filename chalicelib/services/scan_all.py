"""Scan all (Harbor's `/system/scanAll`): one SCAN_ALL execution that starts a vulnerability scan
of every artifact, on the shared executions/tasks model, run by its state machine
(`infra/statemachines/scan_all.asl.json`).

The execution walks every repository's artifact list (repositories in name order, artifacts in
push order; index children and accessories are not listed: an index's scan covers its children) in
budgeted steps: each `step` first brings the tasks of the scans it started up to date, then starts
scans until `batch` were started or `max_active` of them are still running, and hands back a cursor
(repository, list position) that the state machine passes to the next step after a Wait. Each scan
started is one task of the execution (its subject `repository@digest`, its parameters the scan's
execution id), so the execution's `metrics` (tasks by status, kept in the same transaction as each
task's move) give Harbor's counters, `/scans/all/metrics`, with one read. What could not be
started is counted in the execution's `counts`, Harbor's `extra_attrs.summary`: `submit_count`,
`conflict_count` (already being scanned), `precondition_count` (no usable scanner),
`unsupport_count` (not scannable), `unknow_count` (anything else), `total_count` (all of them).

Stop (`/system/scanAll/stop`): the execution is stopped (its unfinished tasks become Stopped) and
so are the scans it started that are still running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.core.jobs import ACTIVE_STATUSES, FINAL_STATUSES, Job, JobStatus, Task, Trigger, VendorType
from chalicelib.core.scans import VULNERABILITY
from chalicelib.errors import BadRequest, Conflict, NotFound, Precondition
from chalicelib.observability import logger
from chalicelib.services.jobs import JobEnded

if TYPE_CHECKING:
    from chalicelib.core.identity import Project
    from chalicelib.services.jobs import JobService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.scanners import ScannerService
    from chalicelib.services.scans import ScanService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.repositories import RepositoryStore

VENDOR = VendorType.SCAN_ALL
COUNTERS = ("total_count", "submit_count", "conflict_count", "precondition_count", "unsupport_count",
            "unknow_count")  # fmt: skip
STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.STOPPED)


@dataclass(frozen=True)
class Stats:
    """Harbor's `Stats` of the latest scan all execution (of a trigger, or any)."""

    total: int
    completed: int
    metrics: dict[str, int]
    ongoing: bool
    trigger: str


class ScanAllService:
    def __init__(self, jobs: JobService, scans: ScanService, *, scanners: ScannerService, projects: ProjectService,
                 repositories: RepositoryStore, artifacts: ArtifactStore, batch: int, max_active: int,
                 wait_seconds: int, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._jobs = jobs
        self._scans = scans
        self._scanners = scanners
        self._projects = projects
        self._repositories = repositories
        self._artifacts = artifacts
        self._batch = batch
        self._max_active = max_active
        self._wait = wait_seconds
        self._clock = clock

    # The API.

    def require_scanner(self) -> None:
        """Harbor answers every scan all route 412 while no default scanner is registered."""
        if self._scanners.default() is None:
            raise Precondition("no scanner is configured, it's not possible to scan")

    def start(self, trigger: Trigger = Trigger.MANUAL) -> Job:
        """Start a run now; 409 while the previous one is still going (Harbor's message)."""
        try:
            return self._jobs.submit(VENDOR, trigger, {"scan_type": VULNERABILITY})
        except Conflict:
            latest = self.latest()
            status = latest.status if latest is not None else JobStatus.RUNNING
            raise Conflict(f"a previous scan all job aleady exits, its status is {status}") from None

    def latest(self, trigger: Trigger | None = None) -> Job | None:
        for job in self._jobs.history(VENDOR, 50):
            if trigger is None or job.trigger == trigger:
                return job
        return None

    def stats(self, trigger: Trigger | None = None) -> Stats | None:
        job = self.latest(trigger)
        if job is None:
            return None
        metrics = {str(s): int(job.metrics.get(str(s), 0)) for s in STATUSES}
        total = sum(metrics.values())
        completed = sum(metrics[str(s)] for s in FINAL_STATUSES)
        ongoing = job.status not in FINAL_STATUSES or total != completed
        return Stats(total, completed, metrics, ongoing, str(job.trigger))

    def stop(self) -> Job:
        """Stop the latest execution and the scans it started that still run; 400 when there is none."""
        job = self.latest()
        if job is None:
            raise BadRequest("no scan all job is found currently")
        active = [t for t in self._jobs.tasks(job.job_id) if t.status in ACTIVE_STATUSES]
        stopped = self._jobs.stop(job.job_id, VENDOR)
        for task in active:
            self._stop_scan(task)
        return stopped

    # The state machine's steps (`jobs/scan_all.py`).

    def begin(self, job_id: int) -> dict[str, Any]:
        job = self._jobs.begin(job_id)
        if not job.counts:
            self._jobs.set_counts(job_id, dict.fromkeys(COUNTERS, 0))
        self._jobs.log(job_id, f"scan all started ({job.trigger})")
        return {"job_id": job_id, "cursor": None, "exhausted": False, "done": False, "wait": self._wait}

    def step(self, job_id: int, cursor: dict[str, Any] | None, exhausted: bool = False) -> dict[str, Any]:
        """Update the tasks of running scans, then start more; `done` once every artifact was
        seen and no scan it started is still running."""
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            return {"job_id": job_id, "cursor": None, "done": True, "exhausted": True, "wait": 0}
        active = self._refresh(job)
        if not exhausted:
            cursor, exhausted = self._submit(job, cursor, max(0, min(self._batch, self._max_active - active)))
        done = exhausted and self._refresh(self._jobs.check(job_id)) == 0
        return {"job_id": job_id, "cursor": cursor, "exhausted": exhausted, "done": done, "wait": self._wait}

    def finish(self, job_id: int) -> dict[str, Any]:
        """End the execution from its tasks, as Harbor computes an execution's status."""
        job = self._jobs.get(job_id, VENDOR)
        if job.metrics.get(str(JobStatus.ERROR)):
            status = JobStatus.ERROR
        elif job.metrics.get(str(JobStatus.STOPPED)):
            status = JobStatus.STOPPED
        else:
            status = JobStatus.SUCCESS
        self._jobs.finish(job_id, status, None)
        return {"job_id": job_id}

    def fail(self, job_id: int, error: str) -> None:
        self._jobs.finish(job_id, JobStatus.ERROR, error)

    # Helpers.

    def _refresh(self, job: Job) -> int:
        """Move each active task to its scan's status; how many are still active."""
        if not (job.metrics.get(str(JobStatus.PENDING)) or job.metrics.get(str(JobStatus.RUNNING))):
            return 0
        active = 0
        for task in self._jobs.tasks(job.job_id):
            if task.status not in ACTIVE_STATUSES:
                continue
            scan = self._jobs.execution(int(task.parameters["execution"]), str(task.parameters["vendor"]))
            status = scan.status if scan is not None else JobStatus.ERROR
            if status in FINAL_STATUSES:
                self._jobs.end_task(task, status, error=scan.error if scan is not None else "the scan is gone")
                continue
            if status == JobStatus.RUNNING and task.status == JobStatus.PENDING:
                self._jobs.begin_task(task)
            active += 1
        return active

    def _submit(self, job: Job, cursor: dict[str, Any] | None, room: int) -> tuple[dict[str, Any] | None, bool]:
        """Look at up to `room` artifacts from `cursor`, starting a scan of each; the next cursor
        and whether the walk is over."""
        if room == 0:
            return cursor, False
        first = (cursor or {}).get("repository")
        page_cursor = (cursor or {}).get("page")
        started: list[tuple[str, dict[str, Any]]] = []
        counts = dict.fromkeys(COUNTERS, 0)
        projects: dict[str, Project | None] = {}
        try:
            trigger = Trigger(job.trigger)
        except ValueError:
            trigger = Trigger.MANUAL
        for name in sorted(r.name for r in self._repositories.find()):
            if first and name < first:
                continue
            if name != first:
                page_cursor = None
            while True:
                if counts["total_count"] >= room:
                    self._record(job, started, counts)
                    return {"repository": name, "page": page_cursor}, False
                page = self._artifacts.listed_page(name, room - counts["total_count"], True, page_cursor, 0)
                for entry in page.items:
                    self._start_one(trigger, projects, entry.repository, entry.digest, started=started, counts=counts)
                page_cursor = page.next_cursor
                if page_cursor is None:
                    break
        self._record(job, started, counts)
        return None, True

    def _start_one(self, trigger: Trigger, projects: dict[str, Project | None], repository: str, digest: str, *,
                   started: list[tuple[str, dict[str, Any]]], counts: dict[str, int]) -> None:  # fmt: skip
        counts["total_count"] += 1
        project_name = repository.split("/", 1)[0]
        if project_name not in projects:
            try:
                projects[project_name] = self._projects.resolve(project_name, force_name=True)
            except NotFound:
                projects[project_name] = None
        project = projects[project_name]
        try:
            if project is None:
                raise NotFound(f"project {project_name} not found")
            scan = self._scans.start(trigger, project, repository, digest, VULNERABILITY)
        except Conflict:
            counts["conflict_count"] += 1
        except Precondition:
            counts["precondition_count"] += 1
        except BadRequest:
            counts["unsupport_count"] += 1
        except Exception:
            logger.exception("scan all could not start a scan", repository=repository, digest=digest)
            counts["unknow_count"] += 1
        else:
            counts["submit_count"] += 1
            started.append((f"{repository}@{digest}", {"execution": scan.job_id, "vendor": str(scan.vendor_type)}))

    def _record(self, job: Job, started: list[tuple[str, dict[str, Any]]], counts: dict[str, int]) -> None:
        if started:
            self._jobs.append_tasks(job.job_id, started)
        current = self._jobs.check(job.job_id).counts
        self._jobs.set_counts(job.job_id, {k: int(current.get(k, 0)) + counts[k] for k in COUNTERS})
        self._jobs.log(job.job_id, f"started {counts['submit_count']} scans of {counts['total_count']} artifacts")

    def _stop_scan(self, task: Task) -> None:
        repository, _, digest = task.subject.partition("@")
        try:
            project = self._projects.resolve(repository.split("/", 1)[0], force_name=True)
            self._scans.stop(project, repository, digest, VULNERABILITY)
        except (BadRequest, NotFound):
            pass  # it ended meanwhile, or the artifact is gone
