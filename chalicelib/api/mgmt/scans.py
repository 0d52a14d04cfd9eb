"""/api/v2.0/projects/{p}/repositories/{r}/artifacts/{ref}/scan: Harbor's scan of one artifact.

`POST .../scan` (body `{"scan_type": "vulnerability"|"sbom"}`, vulnerability when absent) starts
a scan execution and answers 202; `POST .../scan/stop` stops the running one (202); `GET
.../scan/{report_id}/log` is the log of the task that produced a report (text). The results are
read through the artifact's `scan_overview`, `sbom_overview` and `additions/vulnerabilities`
(`artifacts.py`).
"""

from __future__ import annotations

from typing import Literal

from chalice.app import Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.artifacts import _reference, _repository
from chalicelib.core.identity import Project
from chalicelib.errors import BadRequest
from chalicelib.events import current_operator
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint

_ART = "/projects/{project}/repositories/{repository}/artifacts/{reference}"


class ScanTypeReq(BaseModel):
    """Harbor's `ScanType`; absent means a vulnerability scan."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    scan_type: Literal["vulnerability", "sbom"] = "vulnerability"


@routes.post(f"{_ART}/scan", body=ScanTypeReq)
def scan_artifact(request: HttpRequest, body: ScanTypeReq, project: Project) -> Response:
    repository = _repository(request, project)
    artifact = services().artifacts.resolve(repository.name, _reference(request))
    services().scans.start(current_operator(), project, repository.name, artifact.digest, body.scan_type)
    return Response(body="", status_code=202)


@routes.post(f"{_ART}/scan/stop", body=ScanTypeReq)
def stop_scan(request: HttpRequest, body: ScanTypeReq, project: Project) -> Response:
    repository = _repository(request, project)
    artifact = services().artifacts.resolve(repository.name, _reference(request))
    services().scans.stop(project, repository.name, artifact.digest, body.scan_type)
    return Response(body="", status_code=202)


@routes.get(f"{_ART}/scan/{{report_id}}/log")
def scan_log(request: HttpRequest, project: Project) -> Response:
    report_id = request.params["report_id"]
    if not report_id or len(report_id) > 512 or not report_id.isascii():
        raise BadRequest("report_id is not valid")
    repository = _repository(request, project)
    artifact = services().artifacts.resolve(repository.name, _reference(request))
    text = services().scans.log(project, repository.name, artifact.digest, report_id)
    return Response(body=text.encode(), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})
