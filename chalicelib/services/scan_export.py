"""Harbor's scan data export (`/export/cve`): a SCAN_DATA_EXPORT execution on the shared
executions/tasks model that writes a CSV of a project's vulnerability findings to the object store,
run by its state machine (`infra/statemachines/scan_export.asl.json`).

Policy-free: the request is the run. `begin` starts the execution; each `step` walks on through the
project's repositories (name order) and their artifact lists (push order), at most `batch`
artifacts a call, reads the stored report of each selected artifact that has a successful
vulnerability summary (an index: its children, carrying the index's tags and labels, as Harbor
does) and writes its rows as one part; `finish` joins the parts behind the header. Only the user
who asked for an export sees it and downloads it (Harbor's rule; system administrators too see only
their own), and the project's `export-cve` read permission is needed as well.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from chalicelib.auth.rbac import Action, Permission, Resource
from chalicelib.core import scanexport, scans
from chalicelib.core.jobs import Job, JobStatus, Trigger, VendorType
from chalicelib.errors import Forbidden, NotFound, ProjectNotFound
from chalicelib.services.jobs import JobEnded

if TYPE_CHECKING:
    from chalicelib.core.artifacts import Artifact
    from chalicelib.core.identity import Principal
    from chalicelib.services.access import AccessService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.labels import LabelStore
    from chalicelib.stores.repositories import RepositoryStore
    from chalicelib.stores.scanexport import ScanExportFiles
    from chalicelib.stores.scans import ScanStore

VENDOR = VendorType.SCAN_DATA_EXPORT
CREATE = Permission(Resource.EXPORT_CVE, Action.CREATE)
READ = Permission(Resource.EXPORT_CVE, Action.READ)
# Executions `/export/cve/executions` looks through (the newest of the kind).
HISTORY = 100
# Harbor's status text of a failed export that recorded no reason.
ERROR_TEXT = "Please contact the system administrator to check the logs of jobservice."
# Tags read per artifact for the `tags` pattern.
TAGS_PER_ARTIFACT = 100


class ScanExportService:
    def __init__(self, jobs: JobService, files: ScanExportFiles, *, projects: ProjectService,
                 repositories: RepositoryStore, artifacts: ArtifactStore, labels: LabelStore, reports: ScanStore,
                 access: AccessService, download_ttl: int, batch: int) -> None:  # fmt: skip
        self._jobs = jobs
        self._files = files
        self._projects = projects
        self._repositories = repositories
        self._artifacts = artifacts
        self._labels = labels
        self._reports = reports
        self._access = access
        self._ttl = download_ttl
        self._batch = batch

    # The API.

    def start(self, principal: Principal, wanted: scanexport.Criteria) -> Job:
        """Start an export of one project's findings; 404 for an unknown project, 403 without the
        project's `export-cve` create or for a caller that is not a user (a robot)."""
        if principal.user_id is None:
            raise Forbidden(f"User : {principal.name} not found")
        try:
            project = self._projects.resolve(str(wanted.project_id), force_name=False)
        except ProjectNotFound:
            raise NotFound(f"project {wanted.project_id} not found") from None
        self._access.require_project(principal, project, CREATE)
        parameters = {"criteria": wanted.record(), "project": project.name, "user_id": principal.user_id,
                      "user_name": principal.name}  # fmt: skip
        return self._jobs.submit(VENDOR, Trigger.MANUAL, parameters, lock=f"{VENDOR}#{uuid.uuid4()}")

    def execution(self, principal: Principal, execution_id: int) -> Job:
        """The caller's own export; 404 when there is none with this id, 403 when it is another's."""
        job = self._jobs.execution(execution_id, str(VENDOR))
        if job is None:
            raise NotFound(f"execution with id: {execution_id} not found")
        self._require_read(principal, job)
        if job.parameters.get("user_name") != principal.name:
            raise Forbidden("the export belongs to another user")
        return job

    def executions(self, principal: Principal) -> list[Job]:
        """The caller's exports among the newest `HISTORY`, newest first."""
        mine = [j for j in self._jobs.history(str(VENDOR), HISTORY) if j.parameters.get("user_name") == principal.name]
        for job in mine:
            self._require_read(principal, job)
        return mine

    def download_url(self, principal: Principal, execution_id: int) -> str:
        job = self.execution(principal, execution_id)
        if not file_present(job):
            raise NotFound(f"the export {execution_id} has no file")
        return self._files.download_url(execution_id, self._ttl)

    def _require_read(self, principal: Principal, job: Job) -> None:
        try:
            project = self._projects.resolve(str(job.parameters.get("project") or ""), force_name=True)
        except ProjectNotFound:
            return  # the project is gone: only the owner check remains
        self._access.require_project(principal, project, READ)

    # The state machine's steps (`jobs/scan_export.py`).

    def begin(self, job_id: int) -> dict[str, Any]:
        try:
            job = self._jobs.begin(job_id)
        except JobEnded:
            return {"job_id": job_id, "cursor": None, "parts": 0, "done": True}
        self._jobs.set_counts(job_id, {"rows": 0, "artifacts": 0})
        self._jobs.log(job_id, f"scan data export of project {job.parameters.get('project')} started")
        return {"job_id": job_id, "cursor": None, "parts": 0, "done": False}

    def step(self, job_id: int, cursor: dict[str, Any] | None, parts: int) -> dict[str, Any]:
        """Export up to `batch` more artifacts as one part; `done` once every repository was seen."""
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            return {"job_id": job_id, "cursor": None, "parts": parts, "done": True}
        wanted = scanexport.Criteria.from_record(job.parameters["criteria"])
        project = str(job.parameters["project"])
        first = (cursor or {}).get("repository")
        page_cursor = (cursor or {}).get("page")
        names = sorted(r.name for r in self._repositories.find(project)
                       if scanexport.repository_selected(wanted, r.name))  # fmt: skip
        lines: list[list[str]] = []
        seen = 0
        next_cursor: dict[str, Any] | None = None
        for name in names:
            if first and name < first:
                continue
            if name != first:
                page_cursor = None
            while True:
                if seen >= self._batch:
                    next_cursor = {"repository": name, "page": page_cursor}
                    break
                page = self._artifacts.listed_page(name, self._batch - seen, True, page_cursor, 0)
                digests = [entry.digest for entry in page.items]
                seen += len(digests)
                lines += self._rows(wanted, name, digests)
                page_cursor = page.next_cursor
                if page_cursor is None:
                    break
            if next_cursor is not None:
                break
        if lines:
            self._files.put_part(job_id, parts, scanexport.encode(lines))
            parts += 1
        current = self._jobs.check(job_id).counts
        self._jobs.set_counts(job_id, {"rows": int(current.get("rows", 0)) + len(lines),
                                       "artifacts": int(current.get("artifacts", 0)) + seen})  # fmt: skip
        return {"job_id": job_id, "cursor": next_cursor, "parts": parts, "done": next_cursor is None}

    def finish(self, job_id: int, parts: int) -> dict[str, Any]:
        try:
            job = self._jobs.check(job_id)
        except JobEnded:
            return {"job_id": job_id}
        size = self._files.join(job_id, scanexport.encode([], header=True), parts)
        self._jobs.set_counts(job_id, {**job.counts, "file_present": 1, "bytes": size})
        self._jobs.log(job_id, f"exported {job.counts.get('rows', 0)} rows of {job.counts.get('artifacts', 0)} "
                               f"artifacts ({size} bytes)")  # fmt: skip
        self._jobs.finish(job_id, JobStatus.SUCCESS, None)
        return {"job_id": job_id}

    def fail(self, job_id: int, error: str) -> None:
        self._jobs.finish(job_id, JobStatus.ERROR, error)

    # Helpers.

    def _rows(self, wanted: scanexport.Criteria, repository: str, digests: list[str]) -> list[list[str]]:
        if not digests:
            return []
        found = self._artifacts.get_many(repository, digests)
        tags = self._artifacts.tags_of(repository, digests, TAGS_PER_ARTIFACT) if wanted.tags else {}
        labels = self._labels.label_sets(repository, digests) if wanted.labels else {}
        lines: list[list[str]] = []
        for digest in digests:
            artifact = found.get(digest)
            if artifact is None:
                continue
            names = [t.name for t in tags.get(digest, [])]
            if not scanexport.artifact_selected(wanted, names, labels.get(digest, [])):
                continue
            targets: list[Artifact] = [artifact]
            if artifact.children:
                children = self._artifacts.get_many(repository, artifact.children)
                targets += [children[d] for d in artifact.children if d in children]
            for target in targets:
                lines += self._report_rows(wanted, repository, target)
        return lines

    def _report_rows(self, wanted: scanexport.Criteria, repository: str, target: Artifact) -> list[list[str]]:
        for mime in scans.VULNERABILITY_REPORTS:
            summary = target.scans.get(mime)
            if summary is None or summary.status != scans.ScanStatus.SUCCESS:
                continue
            body = self._reports.report(target.digest, summary.registration, mime)
            if body is None:
                continue
            document = json.loads(body)
            scanner = summary.scanner.name if summary.scanner is not None else ""
            return scanexport.rows(repository, target.digest, scanner, document, wanted.cve_ids)
        return []


def file_present(job: Job) -> bool:
    return job.status == JobStatus.SUCCESS and bool(job.counts.get("file_present"))


def status_text(job: Job) -> str:
    if job.status == JobStatus.ERROR:
        return job.error or ERROR_TEXT
    return job.error or ""
