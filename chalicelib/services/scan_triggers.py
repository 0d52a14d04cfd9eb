"""Scan on push (Harbor's `auto_scan` and `auto_sbom_generation` project metadata).

A PUSH_ARTIFACT event (delivered by the event consumer: EventBridge on AWS, the in-process bus
locally, after the push has committed) starts a vulnerability scan and/or an SBOM generation of
the pushed artifact through the scan service, with trigger Event. What cannot be scanned (a chart,
an accessory such as a signature or an SBOM, an index without image children) is skipped, as is an
artifact already being scanned; a project without a usable scanner is logged and skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.core.jobs import Trigger
from chalicelib.core.scans import SBOM, VULNERABILITY
from chalicelib.errors import BadRequest, Conflict, NotFound, Precondition
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.scans import ScanService

# Project metadata key -> the scan type it starts on push.
ON_PUSH = {"auto_scan": VULNERABILITY, "auto_sbom_generation": SBOM}


class ScanTriggers:
    def __init__(self, projects: ProjectService, scans: ScanService) -> None:
        self._projects = projects
        self._scans = scans

    def on_event(self, event: Event) -> None:
        if event.type != EventType.PUSH_ARTIFACT or not (event.project and event.repository and event.digest):
            return
        try:
            project = self._projects.resolve(event.project, force_name=True)
        except NotFound:
            return
        for key, scan_type in ON_PUSH.items():
            if project.metadata.get(key, "").lower() != "true":
                continue
            try:
                self._scans.start(Trigger.EVENT, project, event.repository, event.digest, scan_type)
            except (BadRequest, Conflict, NotFound) as exc:  # unscannable, already running, deleted since
                logger.debug("scan on push skipped", repository=event.repository, digest=event.digest,
                             scan_type=scan_type, reason=str(exc))  # fmt: skip
            except Precondition as exc:  # no usable scanner for the project
                logger.warning("scan on push skipped", repository=event.repository, digest=event.digest,
                               scan_type=scan_type, reason=str(exc))  # fmt: skip
