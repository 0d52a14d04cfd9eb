"""Scan executions: Harbor's vulnerability scans and SBOM generation, on the executions service.

One execution (a job of vendor type `IMAGE_SCAN` or `SBOM`, `services/jobs.py`) per (artifact,
scanner registration, scan type), run by `infra/statemachines/scan.asl.json`; an image has one
task, an index one task per scannable child (Harbor: an execution per artifact, a task per
child). The execution holds the lock `core/scans.py` `scan_lock` while it runs, so a second scan
of the same digest with the same scanner and type is refused with 409 (Harbor's placeholder
conflict). What the steps do:

1. `start` (the API, scan on push, scan all): checks the artifact can be scanned, takes the lock,
   starts the execution and writes a Pending summary on each target's row;
2. `prepare`: one task per target;
3. per task, `submit`: mints a project robot with `pull` + `scanner-pull` on the project (Harbor's
   scan robot; its id is kept on the task so any end of the task deletes it), asks the adapter's
   metadata, posts the scan request, marks the summary Running;
4. `poll` (after the state machine's Wait of the adapter's `Refresh-After`): not ready -> wait
   again, unless the task has run for `cap_seconds` (Harbor's nominal 30 minutes, enforced here);
   ready -> the robot is deleted, the raw report goes to the object store (once per digest,
   registration and MIME type), the summary (counts, severity, a bounded CVE map) onto the row; an
   SBOM also becomes an accessory of the scanned manifest;
5. `finish`: the execution ends Success when every task did, else Error (a stopped one stays
   Stopped); the SCANNING_COMPLETED / FAILED / STOPPED event (webhooks, audit) goes once.

A stop ends the execution at once (`JobService.stop`), then ends its tasks Stopped, deletes their
robots and marks their summaries Stopped (the engine is stopped, so no later step does it). An
artifact deleted while it is scanned ends its task Error: its row is gone and is not brought back
(every summary write requires the row to exist).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters import scanner_client as sc
from chalicelib.auth import secrets as credentials
from chalicelib.auth.scopes import Scope
from chalicelib.core import mediatypes as mt
from chalicelib.core import scans
from chalicelib.core.artifacts import HARBOR_SBOM, Artifact
from chalicelib.core.identity import Principal, Project, Robot, RobotAccess, RobotPermission
from chalicelib.core.jobs import FINAL_STATUSES, Job, JobStatus, Task, Trigger, VendorType
from chalicelib.errors import BadRequest, Conflict, ManifestUnknown, NotFound, Precondition
from chalicelib.events import Event, EventBus, EventType, current_operator
from chalicelib.observability import logger
from chalicelib.services.jobs import JobEnded

if TYPE_CHECKING:
    from chalicelib.adapters.scanner_client import ScannerClient
    from chalicelib.core.scanners import ScannerRegistration
    from chalicelib.services.access import AccessService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.uploads import UploadService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.robots import RobotStore
    from chalicelib.stores.scans import ScanStore

VENDORS = {scans.VULNERABILITY: VendorType.IMAGE_SCAN, scans.SBOM: VendorType.SBOM}
SCAN_TYPE_OF_VENDOR = {str(v): k for k, v in VENDORS.items()}
# Harbor's scan robots are named `<prefix>-<registration name>-<uuid>`.
ROBOT_NAME_PREFIX = "scanner"
# Harbor's nominal per-report limit; our polls enforce it.
CAP_SECONDS = 30 * 60
# Image manifests a scanner consumes when its metadata cannot be read at start.
_IMAGE_MANIFESTS = (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


class ScannerRegistry(Protocol):
    """The scanner registrations service (`services/scanners.py`): the project's registration
    (its own choice, else the default, else None) and a client with resolved credentials."""

    def for_project(self, project_id: int) -> ScannerRegistration | None: ...

    def get(self, uuid: str) -> ScannerRegistration | None: ...

    def metadata(self, registration: ScannerRegistration) -> api.ScannerMetadata: ...

    def client_for(self, registration: ScannerRegistration) -> ScannerClient: ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a task step hands the state machine: wait `wait` seconds and poll again, or done."""

    job_id: int
    task_id: int
    scan_id: str = ""
    wait: int = 0

    def state(self) -> dict[str, Any]:
        outcome = "wait" if self.wait else "done"
        return {"job_id": self.job_id, "task_id": self.task_id, "scan_id": self.scan_id, "wait": self.wait,
                "outcome": outcome}  # fmt: skip


class ScanService:
    def __init__(self, artifacts: ArtifactStore, store: ScanStore, jobs: JobService, *, robots: RobotStore,
                 access: AccessService, scanners: ScannerRegistry | None, events: EventBus,
                 registry_url: str, internal_url: str, accessories: SbomWriter | None = None,
                 cap_seconds: int = CAP_SECONDS, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._artifacts = artifacts
        self._store = store
        self._jobs = jobs
        self._robots = robots
        self._access = access
        self._scanners = scanners
        self._events = events
        self._registry_url = registry_url
        self._internal_url = internal_url
        self._accessories = accessories
        self._cap = cap_seconds
        self._clock = clock
        self._hub: HubRecorder | None = None

    def use_scanners(self, scanners: ScannerRegistry) -> None:
        self._scanners = scanners

    def use_hub(self, hub: HubRecorder) -> None:
        """The security hub, told when a vulnerability summary succeeds or is replaced."""
        self._hub = hub

    # Starting and stopping.

    def start(self, who: Principal | Trigger | str, project: Project, repository: str, digest: str,
              scan_type: str) -> Job:  # fmt: skip
        """Start a scan of the artifact (`scan_type` "vulnerability" or "sbom") with the project's
        scanner; the execution. 400 when the artifact cannot be scanned, 404 when it does not
        exist, 412 when the project has no usable scanner, 409 while the same scan is running."""
        if scan_type not in scans.SCAN_TYPES:
            raise BadRequest(f"scan_type must be one of {', '.join(scans.SCAN_TYPES)}")
        artifact = self._artifacts.get(repository, digest)
        if artifact is None:
            raise NotFound(f"artifact {repository}@{digest} not found")
        registration = self._registration(project)
        targets = self._targets(artifact, registration, scan_type)
        trigger, operator = _trigger(who)
        mime = scans.report_types(scan_type)[0]
        report_ids = {t.digest: str(uuid.uuid4()) for t in targets}
        parameters = {
            "project": project.name, "project_id": project.project_id, "repository": repository, "digest": digest,
            "scan_type": scan_type, "registration": registration.uuid, "mime_type": mime, "operator": operator,
            "targets": [{"digest": t.digest, "media_type": t.manifest_media_type, "size": t.size,
                         "report_id": report_ids[t.digest]} for t in targets],
        }  # fmt: skip
        vendor = VENDORS[scan_type]
        lock = scans.scan_lock(str(vendor), registration.uuid, digest)
        try:
            job = self._jobs.submit(vendor, trigger, parameters, lock=lock)
        except Conflict:
            raise Conflict("a previous scan process is Running") from None
        now = int(self._clock())
        for target in targets:
            if self._hub is not None and scan_type == scans.VULNERABILITY:
                self._hub.report_replaced(repository, target.digest, target.scans)
            placeholder = scans.ReportSummary(
                mime_type=mime, report_id=report_ids[target.digest], digest=target.digest,
                registration=registration.uuid, scan_status=scans.ScanStatus.PENDING, start_time=now,
                execution_id=job.job_id,
            )  # fmt: skip
            self._store.save_summary(repository, target.digest, placeholder, unless_report=placeholder.report_id)
        self._audit(EventType.SCAN_ARTIFACT, operator, project.name, repository, digest, scan_type)
        return job

    def stop(self, project: Project, repository: str, digest: str, scan_type: str) -> Job:
        """Stop the running scan of this type of the artifact; 400 when none is running."""
        if scan_type not in scans.SCAN_TYPES:
            raise BadRequest(f"scan_type must be one of {', '.join(scans.SCAN_TYPES)}")
        artifact = self._artifacts.get(repository, digest)
        if artifact is None:
            raise NotFound(f"artifact {repository}@{digest} not found")
        job = self._running(artifact, scan_type)
        if job is None:
            raise BadRequest(f"no {scan_type} scan of {repository}@{digest} is running")
        active = [t for t in self._jobs.tasks(job.job_id) if t.status not in FINAL_STATUSES]
        stopped = self._jobs.stop(job.job_id, job.vendor_type)
        for task in active:  # a child that had finished keeps its report
            self._end_task(job, task, JobStatus.STOPPED, "stopped by a user")
        self._publish(stopped)
        self._audit(EventType.STOP_SCAN_ARTIFACT, current_operator(), project.name, repository, digest, scan_type)
        return stopped

    def _running(self, artifact: Artifact, scan_type: str) -> Job | None:
        """The active execution scanning this artifact (or, for an index, its children)."""
        candidates = [artifact]
        if artifact.children:
            candidates += list(self._artifacts.get_many(artifact.repository, artifact.children).values())
        for candidate in candidates:
            for mime in scans.report_types(scan_type):
                summary = candidate.scans.get(mime)
                if summary is None or not summary.execution_id:
                    continue
                job = self._jobs.execution(summary.execution_id, str(VENDORS[scan_type]))
                if job is not None and job.status not in FINAL_STATUSES:
                    return job
        return None

    def log(self, project: Project, repository: str, digest: str, report_id: str) -> str:
        """The log of the task that produced a report (Harbor's `scan/{report_id}/log`); for an
        index's merged report id (base64 of `id1|id2|...`), its children's logs one after the other
        under Harbor's `---------- Logs of report <id> ----------` lines."""
        artifact = self._artifacts.get(repository, digest)
        if artifact is None:
            raise NotFound(f"artifact {repository}@{digest} not found")
        candidates = [artifact]
        if artifact.children:
            candidates += list(self._artifacts.get_many(repository, artifact.children).values())
        wanted = scans.report_ids(report_id)
        found = [(rid, text) for rid in wanted if (text := self._task_log(candidates, rid)) is not None]
        if not found:
            raise NotFound(f"report {report_id} not found")
        if len(found) == 1:
            return found[0][1]
        return "\n\n\n\n".join(f"---------- Logs of report {rid} ----------\n{text}" for rid, text in found)

    def _task_log(self, candidates: list[Artifact], report_id: str) -> str | None:
        for candidate in candidates:
            for summary in candidate.scans.values():
                if summary.report_id != report_id or not summary.execution_id:
                    continue
                vendor = VENDORS[scans.scan_type_of(summary.mime_type)]
                job = self._jobs.execution(summary.execution_id, str(vendor))
                if job is None:
                    return None
                for listed in self._jobs.tasks(job.job_id):
                    task = self._jobs.task(job.job_id, listed.task_id) if listed.subject == candidate.digest else None
                    if task is not None:
                        return "".join(f"{line}\n" for line in task.log)
        return None

    # Reads for the API.

    def summaries(self, artifact: Artifact) -> dict[str, scans.ReportSummary]:
        """The artifact's summaries; an index's are its children's merged (Harbor's rules)."""
        if not artifact.children:
            return {mime: self._settled(artifact.repository, s) for mime, s in artifact.scans.items()}
        children = self._artifacts.get_many(artifact.repository, artifact.children)
        merged: dict[str, scans.ReportSummary] = {}
        for mime in (*scans.VULNERABILITY_REPORTS, scans.SBOM_REPORT):
            found = [self._settled(artifact.repository, c.scans[mime])
                     for d in artifact.children if (c := children.get(d)) and mime in c.scans]  # fmt: skip
            if not found:
                continue
            findings: list[scans.Finding] = []
            if mime != scans.SBOM_REPORT and all(f.status == scans.ScanStatus.SUCCESS for f in found):
                findings = [f for summary in found for f in self._findings(summary)]
            merged[mime] = scans.merge(found, findings)
        return merged

    def _settled(self, repository: str, summary: scans.ReportSummary) -> scans.ReportSummary:
        """An active summary whose execution has ended without saying so (its engine died and
        the executions service reconciled it Error, e.g. after a local restart) is settled now:
        its tasks' robots are deleted and it shows the execution's end. One read per active
        summary; a settled one costs nothing."""
        if not summary.active or not summary.execution_id:
            return summary
        vendor = str(VENDORS[scans.scan_type_of(summary.mime_type)])
        job = self._jobs.execution(summary.execution_id, vendor)
        if job is not None and job.status not in FINAL_STATUSES:
            return summary
        for task in self._jobs.tasks(summary.execution_id) if job is not None else []:
            if task.subject == summary.digest:
                try:
                    self._delete_robot(task)
                except Exception:
                    logger.exception("scan robot not deleted", job_id=summary.execution_id, task_id=task.task_id)
        status = (
            scans.ScanStatus.STOPPED if job is not None and job.status == JobStatus.STOPPED else scans.ScanStatus.ERROR
        )
        settled = scans.ended(summary, status, int(job.ended_at or job.updated_at) if job else int(self._clock()))
        self._store.save_summary(repository, summary.digest, settled, replacing=summary.report_id)
        return settled

    def _findings(self, summary: scans.ReportSummary) -> list[scans.Finding]:
        """A stored report's findings (Harbor merges an index's children over their items)."""
        body = self._store.report(summary.digest, summary.registration, summary.mime_type)
        if body is None:
            return []
        items = json.loads(body).get("vulnerabilities") or []
        return [scans.Finding(str(v.get("id")), str(v.get("package") or ""), str(v.get("version") or ""),
                              str(v.get("fix_version") or ""), str(v.get("severity") or "Unknown"))
                for v in items if isinstance(v, dict)]  # fmt: skip

    def vulnerabilities(self, artifact: Artifact, accepted: tuple[str, ...]) -> dict[str, Any]:
        """Harbor's `additions/vulnerabilities`: `{<mime>: report}` for the first accepted MIME type
        with a successful report (an index: its children's reports merged), `{}` when none."""
        targets = [artifact]
        if artifact.children:
            targets = list(self._artifacts.get_many(artifact.repository, artifact.children).values())
        for mime in accepted:
            reports = []
            for target in targets:
                summary = target.scans.get(mime)
                if summary is None or summary.status != scans.ScanStatus.SUCCESS:
                    continue
                body = self._store.report(target.digest, summary.registration, mime)
                if body is not None:
                    reports.append((target.digest, summary, json.loads(body)))
            if reports:
                return {mime: _merged_report(reports)}
        return {}

    # The execution's steps (the state machine's Task handlers call these).

    def prepare(self, job_id: int) -> dict[str, Any]:
        """Start the job and create one task per target; the Map's items."""
        try:
            job = self._jobs.begin(job_id)
        except JobEnded:
            return {"job_id": job_id, "tasks": []}
        specs = [(str(t["digest"]), dict(t)) for t in job.parameters.get("targets", [])]
        tasks = self._jobs.create_tasks(job_id, specs)
        self._jobs.log(job_id, f"scan of {job.parameters['repository']}@{job.parameters['digest']}: "
                               f"{len(tasks)} task(s)")  # fmt: skip
        return {"job_id": job_id, "tasks": [{"job_id": job_id, "task_id": t.task_id} for t in tasks]}

    def submit(self, job_id: int, task_id: int) -> dict[str, Any]:
        """Mint the task's robot and ask the adapter to scan; then wait for the report."""
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            return StepResult(job_id, task_id).state()
        task = self._jobs.start_task(job_id, task_id)
        if task is None:
            return StepResult(job_id, task_id).state()
        params = job.parameters
        repository, digest = str(params["repository"]), task.subject
        try:
            registration = self._scanners_get(str(params["registration"]))
            client = self._require_scanners().client_for(registration)
            metadata = self._require_scanners().metadata(registration)
            media_type = str(task.parameters.get("media_type") or "")
            produced = metadata.report_types(media_type, str(params["scan_type"]))
            if not produced:
                raise BadRequest(f"the scanner {registration.name} does not support scanning {media_type}")
            robot, secret = self._mint_robot(job, task, registration)
            authorization = self._authorization(robot, secret, repository, metadata.registry_authorization_type)
            tags = self._artifacts.tags_of(repository, [digest], 1).get(digest, [])
            target = api.ScanTarget(
                registry_url=self._internal_url if getattr(registration, "use_internal_addr", False)
                else self._registry_url,
                authorization=authorization, repository=repository, digest=digest, mime_type=media_type,
                tag=tags[0].name if tags else "", size=int(task.parameters.get("size") or 0),
            )  # fmt: skip
            mime = str(params["mime_type"])
            scan_id = client.submit(api.scan_request(target, str(params["scan_type"]), mime))
            self._jobs.note_task(task, log=[f"submitted to {registration.name} ({metadata.name} "
                                            f"{metadata.version}) as scan {scan_id}"])  # fmt: skip
            running = self._summary(task, params, scans.ScanStatus.RUNNING)
            if not self._store.save_summary(repository, digest, running):
                raise _ArtifactGone(f"artifact {repository}@{digest} was deleted while it was scanned")
        except Exception as exc:
            self._failed(job, task, exc)
            return StepResult(job_id, task_id).state()
        return StepResult(job_id, task_id, scan_id, 2).state()

    def poll(self, job_id: int, task_id: int, scan_id: str) -> dict[str, Any]:
        """Ask for the report: wait again, or store it and end the task."""
        task = self._jobs.task(job_id, task_id)
        if task is None or task.status in FINAL_STATUSES:
            return StepResult(job_id, task_id).state()
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            current = self._jobs.execution(job_id, _vendor_of(job_id, self._jobs))
            status = JobStatus.STOPPED if current is None or current.status == JobStatus.STOPPED else JobStatus.ERROR
            self._end_task_of(job_id, task, status, "the execution ended")
            return StepResult(job_id, task_id).state()
        params = job.parameters
        mime = str(params["mime_type"])
        try:
            registration = self._scanners_get(str(params["registration"]))
            client = self._require_scanners().client_for(registration)
            sbom_type = "application/spdx+json" if params["scan_type"] == scans.SBOM else None
            answer = client.report(scan_id, mime, sbom_type)
            if isinstance(answer, sc.ReportPending):
                if self._clock() - (task.started_at or job.created_at) > self._cap:
                    raise TimeoutError(f"the report was not ready within {self._cap // 60} minutes")
                return StepResult(job_id, task_id, scan_id, answer.retry_after).state()
            self._store_report(job, task, registration, answer.body)
        except Exception as exc:
            self._failed(job, task, exc)
            return StepResult(job_id, task_id).state()
        return StepResult(job_id, task_id).state()

    def _store_report(self, job: Job, task: Task, registration: ScannerRegistration, body: bytes) -> None:
        # The scanner has pulled what it needed: its credential goes before the result is visible, so
        # a scan shown as finished never leaves a usable robot behind.
        self._delete_robot(task)
        params = job.parameters
        repository, digest, mime = str(params["repository"]), task.subject, str(params["mime_type"])
        document = json.loads(body)
        scanner_doc = api.as_object(document.get("scanner")) if isinstance(document, dict) else {}
        scanner = scans.ScannerInfo(api.as_text(scanner_doc.get("name")), api.as_text(scanner_doc.get("vendor")),
                                    api.as_text(scanner_doc.get("version")))  # fmt: skip
        base = self._summary(task, params, scans.ScanStatus.RUNNING)
        lines = []
        if params["scan_type"] == scans.VULNERABILITY:
            report = api.parse_vulnerability_report(document)
            stored = json.dumps(report.document).encode()
            findings = [scans.Finding(v.id, v.package, v.version, v.fix_version, v.severity)
                        for v in report.vulnerabilities]  # fmt: skip
            summary = scans.completed(base, findings, scanner, int(self._clock()))
            lines.append(f"report received: {summary.total} vulnerabilities, severity {summary.severity}")
        else:
            sbom = api.sbom_document(document)
            stored = body
            summary = scans.completed(base, [], scanner, int(self._clock()))
            if self._accessories is not None:
                sbom_digest = self._accessories.write(repository, digest, str(task.parameters.get("media_type")),
                                                      int(task.parameters.get("size") or 0),
                                                      json.dumps(sbom).encode())  # fmt: skip
                summary = replace(summary, sbom_digest=sbom_digest, sbom_repository=repository)
                lines.append(f"SBOM stored as accessory {sbom_digest}")
        self._store.put_report(digest, registration.uuid, mime, stored)
        if not self._store.save_summary(repository, digest, summary, replacing=summary.report_id):
            raise _ArtifactGone(f"artifact {repository}@{digest} was deleted while it was scanned")
        if self._hub is not None and params["scan_type"] == scans.VULNERABILITY:
            try:
                self._hub.report_stored(registration.uuid, repository, digest,
                                        project_id=int(params.get("project_id") or 0), summary=summary,
                                        document=report.document)  # fmt: skip
            except Exception:  # the report stands; the hub misses it until the next scan
                logger.exception("security hub not updated", repository=repository, digest=digest)
        self._jobs.end_task(task, JobStatus.SUCCESS, counts=dict(task.counts), log=lines)

    def task_failed(self, job_id: int, task_id: int, error: str) -> dict[str, Any]:
        """A task's step died (a Lambda timeout): the task ends Error and its robot is deleted."""
        task = self._jobs.task(job_id, task_id)
        if task is not None and task.status not in FINAL_STATUSES:
            self._end_task_of(job_id, task, JobStatus.ERROR, f"error: {error}")
        return StepResult(job_id, task_id).state()

    def finish(self, job_id: int) -> dict[str, Any]:
        """End the execution from its tasks and announce it once."""
        vendor = _vendor_of(job_id, self._jobs)
        tasks = self._jobs.tasks(job_id)
        for task in tasks:  # a task a stop or a crash left active
            if task.status not in FINAL_STATUSES:
                self._end_task_of(job_id, task, JobStatus.ERROR, "ended with its execution")
        tasks = self._jobs.tasks(job_id)
        failed = [t for t in tasks if t.status != JobStatus.SUCCESS]
        if not failed:
            self._jobs.finish(job_id, JobStatus.SUCCESS, None)
        elif all(t.status == JobStatus.STOPPED for t in failed):
            self._jobs.finish(job_id, JobStatus.STOPPED, None)
        else:
            first = failed[0]
            self._jobs.finish(job_id, JobStatus.ERROR, f"{len(failed)} of {len(tasks)} task(s) did not succeed "
                                                       f"({first.subject}: {first.error or first.status})")  # fmt: skip
        self._publish(self._jobs.get(job_id, vendor))
        return {"job_id": job_id}

    def fail(self, job_id: int, error: str) -> None:
        """The execution failed outside a task: its tasks end Error (robots deleted), then it."""
        for task in self._jobs.tasks(job_id):
            if task.status not in FINAL_STATUSES:
                self._end_task_of(job_id, task, JobStatus.ERROR, f"error: {error}")
        self._jobs.finish(job_id, JobStatus.ERROR, error)
        self._publish(self._jobs.get(job_id, _vendor_of(job_id, self._jobs)))

    # Helpers.

    def _registration(self, project: Project) -> Any:
        scanners = self._require_scanners()
        registration = scanners.for_project(project.project_id)
        if registration is None:
            raise Precondition(f"no available scanner for project: {project.project_id}")
        if getattr(registration, "disabled", False):
            raise Precondition(f"scanner {registration.name} is disabled")
        return registration

    def _require_scanners(self) -> ScannerRegistry:
        if self._scanners is None:
            raise Precondition("no scanner is configured")
        return self._scanners

    def _scanners_get(self, registration_uuid: str) -> ScannerRegistration:
        registration = self._require_scanners().get(registration_uuid)
        if registration is None:
            raise Precondition(f"the scanner registration {registration_uuid} no longer exists")
        return registration

    def _targets(self, artifact: Artifact, registration: ScannerRegistration, scan_type: str) -> list[Artifact]:
        """What is scanned: the image itself, or an index's scannable children (Harbor: IMAGE
        artifacts, not accessories, whose manifest type the scanner consumes)."""
        consumes = self._consumes(registration, scan_type)
        if artifact.children:
            children = self._artifacts.get_many(artifact.repository, artifact.children)
            found = [c for d in artifact.children if (c := children.get(d)) and _scannable(c, consumes)]
            if found and artifact.kind == "IMAGE":
                return found
        elif _scannable(artifact, consumes):
            return [artifact]
        raise BadRequest(f"the configured scanner {registration.name} does not support scanning artifact with mime "
                         f"type {artifact.manifest_media_type}")  # fmt: skip

    def _consumes(self, registration: ScannerRegistration, scan_type: str) -> tuple[str, ...]:
        """The manifest types the scanner consumes for the scan type (its metadata, cached by the
        registrations service; when the adapter cannot be reached, the image manifest types every
        adapter consumes, and the execution then ends Error with the reason in its log)."""
        try:
            metadata = self._require_scanners().metadata(registration)
        except BadRequest:  # unreachable now: the execution records why it fails
            return _IMAGE_MANIFESTS
        return tuple(m for c in metadata.capabilities if c.type == scan_type for m in c.consumes)

    def _summary(self, task: Task, params: dict[str, Any], status: scans.ScanStatus) -> scans.ReportSummary:
        return scans.ReportSummary(
            mime_type=str(params["mime_type"]), report_id=str(task.parameters["report_id"]), digest=task.subject,
            registration=str(params["registration"]), scan_status=status,
            start_time=int(task.started_at or task.created_at), execution_id=task.execution_id,
        )  # fmt: skip

    def _mint_robot(self, job: Job, task: Task, registration: ScannerRegistration) -> tuple[Robot, str]:
        """Harbor's scan robot: project level, `pull` + `scanner-pull` on the project's
        repositories, never expires, deleted when the task ends. Its id is kept on the task."""
        project = str(job.parameters["project"])
        name = _UNSAFE.sub("-", str(registration.name).lower()).strip("-") or "scanner"
        access = (RobotAccess("repository", "pull"), RobotAccess("repository", "scanner-pull"))
        secret = secrets.token_urlsafe(24) + "Aa1"
        robot = self._robots.create(Robot(
            robot_id=0, name=f"{project}+{ROBOT_NAME_PREFIX}-{name}-{uuid.uuid4().hex[:12]}", level="project",
            permissions=(RobotPermission(kind="project", namespace=project, access=access),),
            secret_hash=credentials.hash_secret(secret), description=f"scan execution {job.job_id}",
            duration=-1, expires_at=-1, creator="harbor-scanner",
        ))  # fmt: skip
        self._jobs.note_task(task, counts={"robot_id": robot.robot_id})
        return robot, secret

    def _authorization(self, robot: Robot, secret: str, repository: str, kind: str) -> str:
        login = f"{self._access.robot_prefix()}{robot.name}"
        if kind != "Bearer":
            return api.basic_authorization(login, secret)
        principal = self._access.robot_principal(robot)
        issued, _ = self._access.issue_token(principal, None, [Scope("repository", repository, ("pull",))])
        return api.bearer_authorization(issued.token)

    def _delete_robot(self, task: Task) -> None:
        robot_id = int(task.counts.get("robot_id") or 0)
        if not robot_id:
            current = self._jobs.task(task.execution_id, task.task_id)
            robot_id = int(current.counts.get("robot_id") or 0) if current is not None else 0
        if not robot_id:
            return
        robot = self._robots.get_by_id(robot_id)
        if robot is not None:
            self._robots.delete(robot)

    def _failed(self, job: Job, task: Task, exc: Exception) -> None:
        if isinstance(exc, JobEnded):
            self._end_task(job, task, JobStatus.STOPPED, "stopped")
            return
        logger.warning("scan task failed", job_id=job.job_id, task_id=task.task_id, error=str(exc)[:300])
        self._end_task(job, task, JobStatus.ERROR, f"error: {type(exc).__name__}: {exc}")

    def _end_task_of(self, job_id: int, task: Task, status: JobStatus, line: str) -> None:
        job = self._jobs.execution(job_id, _vendor_of(job_id, self._jobs))
        if job is not None:
            self._end_task(job, task, status, line)

    def _end_task(self, job: Job, task: Task, status: JobStatus, line: str) -> None:
        """End a task (deleting its robot whatever happened) and its summary with it."""
        current = self._jobs.task(task.execution_id, task.task_id) or task
        try:
            self._delete_robot(current)
        except Exception:
            logger.exception("scan robot not deleted", job_id=job.job_id, task_id=task.task_id)
        error = None if status == JobStatus.STOPPED else line
        self._jobs.end_task(current, status, counts=dict(current.counts), error=error, log=[line])
        params = job.parameters
        summary = scans.ended(self._summary(current, params, scans.ScanStatus.RUNNING),
                              scans.ScanStatus(str(status)), int(self._clock()))  # fmt: skip
        self._store.save_summary(str(params["repository"]), current.subject, summary, replacing=summary.report_id)

    def _publish(self, job: Job) -> None:
        """SCANNING_COMPLETED / FAILED / STOPPED with Harbor's payload, once per execution."""
        if job.status not in FINAL_STATUSES:
            return
        tasks = self._jobs.tasks(job.job_id)
        if not tasks or not self._jobs.claim_report(job.job_id, tasks[0].task_id):
            return
        event_type = {JobStatus.SUCCESS: EventType.SCANNING_COMPLETED, JobStatus.STOPPED: EventType.SCANNING_STOPPED}
        params = job.parameters
        repository, digest = str(params["repository"]), str(params["digest"])
        artifact = self._artifacts.get(repository, digest)
        overview: dict[str, Any] = {}
        if artifact is not None:
            for mime, summary in self.summaries(artifact).items():
                if mime == scans.SBOM_REPORT:
                    overview["sbom_overview"] = scans.sbom_overview(summary)
                else:
                    overview.setdefault("scan_overview", {})[mime] = scans.native_summary(summary)
        tags = self._artifacts.tags_of(repository, [digest], 1).get(digest, []) if artifact is not None else []
        self._events.publish(Event(
            type=event_type.get(job.status, EventType.SCANNING_FAILED), operator=str(params.get("operator") or ""),
            occurred_at=self._clock(), project=str(params["project"]), repository=repository, digest=digest,
            tag=tags[0].name if tags else None, media_type=artifact.manifest_media_type if artifact else None,
            resource_type="artifact", detail=overview,
        ))  # fmt: skip

    def _audit(self, event_type: EventType, operator: str, project: str, repository: str, digest: str,  # noqa: PLR0917
               scan_type: str) -> None:  # fmt: skip
        self._events.publish(Event(type=event_type, operator=operator, occurred_at=self._clock(), project=project,
                                   repository=repository, digest=digest, resource_type="artifact",
                                   detail={"scan_type": scan_type}))  # fmt: skip


class HubRecorder(Protocol):
    def report_stored(self, registration: str, repository: str, digest: str, *, project_id: int,
                      summary: scans.ReportSummary, document: dict[str, Any]) -> None: ...  # fmt: skip
    def report_replaced(self, repository: str, digest: str, summaries: dict[str, scans.ReportSummary]) -> None: ...


class SbomWriter(Protocol):
    """Stores an SBOM as an accessory of the scanned manifest; returns the accessory's digest."""

    def write(self, repository: str, subject_digest: str, subject_media_type: str, subject_size: int,
              sbom: bytes) -> str: ...  # fmt: skip


class SbomAccessories:
    """Harbor's SBOM accessory: an OCI image manifest whose config media type is
    `application/vnd.goharbor.harbor.sbom.v1`, whose one layer is the raw SPDX JSON and whose
    `subject` is the scanned manifest, pushed by digest (untagged) through the ordinary push path
    (quota, links, PUSH_ARTIFACT). A previous SBOM accessory of the subject is deleted first."""

    def __init__(self, uploads: UploadService, manifests: ManifestService, artifacts: ArtifactStore,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._uploads = uploads
        self._manifests = manifests
        self._artifacts = artifacts
        self._clock = clock

    def write(self, repository: str, subject_digest: str, subject_media_type: str, subject_size: int,
              sbom: bytes) -> str:  # fmt: skip
        for accessory in self._artifacts.accessories(repository, subject_digest):
            if accessory.type == HARBOR_SBOM:
                with contextlib.suppress(NotFound, ManifestUnknown):
                    self._manifests.delete_artifact(repository, accessory.digest)
        config = b"{}"
        config_digest = self._blob(repository, config)
        layer_digest = self._blob(repository, sbom)
        created = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest = {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": scans.SBOM_ACCESSORY_MEDIA_TYPE, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                        "size": len(sbom)}],
            "subject": {"mediaType": subject_media_type, "digest": subject_digest, "size": subject_size},
            "annotations": {"created": created, "created-by": "Harbor", "org.opencontainers.artifact.created": created,
                            "org.opencontainers.artifact.description": "SPDX JSON SBOM"},
        }  # fmt: skip
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self._manifests.put(repository, digest, body, mt.OCI_MANIFEST)
        return digest

    def _blob(self, repository: str, data: bytes) -> str:
        return self._uploads.put_monolithic(repository, "sha256:" + hashlib.sha256(data).hexdigest(), data)


class _ArtifactGone(Exception):
    """The artifact's row went away while it was scanned."""


def _scannable(artifact: Artifact, consumes: tuple[str, ...]) -> bool:
    return artifact.kind == "IMAGE" and artifact.accessory_type is None and artifact.manifest_media_type in consumes


def _trigger(who: Principal | Trigger | str) -> tuple[Trigger, str]:
    if isinstance(who, Trigger):
        return who, "auto" if who != Trigger.MANUAL else current_operator()
    if isinstance(who, Principal):
        return Trigger.MANUAL, who.name or "anonymous"
    return Trigger.MANUAL, who


def _vendor_of(job_id: int, jobs: JobService) -> str:
    for vendor in VENDORS.values():
        if jobs.execution(job_id, str(vendor)) is not None:
            return str(vendor)
    raise NotFound(f"scan execution {job_id} not found")


def _merged_report(reports: list[tuple[str, scans.ReportSummary, dict[str, Any]]]) -> dict[str, Any]:
    """One report over several (an index's children): items unioned on id-package-version with
    the digests they were found in, severity recomputed."""
    items: dict[tuple[str, str, str], dict[str, Any]] = {}
    for digest, _, document in reports:
        for raw in document.get("vulnerabilities") or []:
            key = (str(raw.get("id")), str(raw.get("package")), str(raw.get("version")))
            item = items.setdefault(key, {**scans.harbor_item(raw), "artifact_digests": []})
            if digest not in item["artifact_digests"]:
                item["artifact_digests"].append(digest)
    findings = [scans.Finding(k[0], k[1], k[2], str(v.get("fix_version") or ""), str(v.get("severity") or ""))
                for k, v in items.items()]  # fmt: skip
    severity = scans.tally(findings)[0]
    latest = max(reports, key=lambda r: r[1].start_time)
    first = reports[0][2]
    return {"generated_at": latest[2].get("generated_at") or first.get("generated_at"),
            "scanner": latest[2].get("scanner"), "severity": severity,
            "vulnerabilities": list(items.values())}  # fmt: skip
