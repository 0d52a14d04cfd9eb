"""/api/v2.0/export/cve: Harbor's scan data export. Any signed-in user may ask; the service checks
the project's `export-cve` permission (create to start, read to see) and that an execution is the
caller's own, as Harbor's handler does. The download answers 307 to the file, as a blob GET does."""

from __future__ import annotations

from typing import Any

from chalice.app import Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest, empty_response
from chalicelib.api.mgmt._edge import iso
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.wire import ZERO_TIME
from chalicelib.core import scanexport
from chalicelib.core.jobs import Job
from chalicelib.errors import BadRequest, Forbidden, NotFound
from chalicelib.services.scan_export import file_present, status_text
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_MAX_ID = 2**63 - 1


class ExportReq(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, populate_by_name=True)
    job_name: str | None = None
    projects: list[int] | None = Field(default=None, max_length=100)
    labels: list[int] | None = Field(default=None, max_length=1000)
    repositories: str | None = None
    cve_ids: str | None = Field(default=None, alias="cveIds")
    tags: str | None = None


def _execution_id(request: HttpRequest) -> int:
    raw = request.params["execution_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise BadRequest(f"execution_id must be an integer, got {raw[:32]!r}")
    if int(raw) > _MAX_ID:
        raise NotFound(f"execution with id: {raw} not found")
    return int(raw)


def execution_view(job: Job) -> dict[str, Any]:
    """Harbor's `ScanDataExportExecution`."""
    return {
        "id": job.job_id, "user_id": int(job.parameters.get("user_id") or 0), "status": str(job.status),
        "trigger": str(job.trigger).upper(), "start_time": iso(job.started_at or job.created_at),
        "end_time": iso(job.ended_at) if job.ended_at else ZERO_TIME, "status_text": status_text(job),
        "user_name": str(job.parameters.get("user_name") or ""), "file_present": file_present(job),
    }  # fmt: skip


@routes.post("/export/cve", body=ExportReq)
def export_cve(request: HttpRequest, body: ExportReq) -> dict[str, Any]:
    if request.principal.user_id is None:  # Harbor looks the caller up as a user: robots are refused
        raise Forbidden(f"User : {request.principal.name} not found")
    kind = request.header("x-scan-data-type")
    if kind != scanexport.SCAN_DATA_TYPE:
        raise BadRequest(f"Unsupported MIME type : {(kind or '')[:128]}")
    try:
        wanted = scanexport.criteria(body.job_name, body.projects, labels=body.labels,
                                     repositories=body.repositories, tags=body.tags, cve_ids=body.cve_ids)  # fmt: skip
    except scanexport.CriteriaError as exc:
        raise BadRequest(str(exc)) from None
    job = services().scan_export.start(request.principal, wanted)
    return {"id": job.job_id}


@routes.get("/export/cve/execution/{execution_id}")
def get_export_execution(request: HttpRequest) -> dict[str, Any]:
    return execution_view(services().scan_export.execution(request.principal, _execution_id(request)))


@routes.get("/export/cve/executions")
def list_export_executions(request: HttpRequest) -> dict[str, Any]:
    return {"items": [execution_view(job) for job in services().scan_export.executions(request.principal)]}


@routes.get("/export/cve/download/{execution_id}")
def download_export(request: HttpRequest) -> Response:
    url = services().scan_export.download_url(request.principal, _execution_id(request))
    return empty_response(307, {"Location": url})
