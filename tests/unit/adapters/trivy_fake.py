"""A fake scanner adapter that answers the way goharbor/harbor-scanner-trivy does, on 127.0.0.1.

What it copies from the real adapter: it authenticates nothing; its metadata offers only the
generic 1.1 vulnerability report and an SBOM capability; POST /scan decodes JSON whatever the
Content-Type and answers 400/422/202; a report not ready is a 302 whose Location is the same URL
and that has no Refresh-After; the report Accept must match a supported MIME type string for string
(415 otherwise; empty or */* mean the vulnerability report); errors carry its own
`application/vnd.scanner.adapter.error; version=1.0` type; a clean report has neither `severity`
nor `vulnerabilities`; CVSS scores are only in `vendor_attributes`; an id past its TTL is a 404.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

VULN = "application/vnd.security.vulnerability.report; version=1.1"
SBOM = "application/vnd.security.sbom.report+json; version=1.0"
TRIVY_ERROR = "application/vnd.scanner.adapter.error; version=1.0"
MANIFESTS = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]

METADATA: dict[str, Any] = {
    "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.72.0"},
    "capabilities": [
        {"type": "vulnerability", "consumes_mime_types": MANIFESTS, "produces_mime_types": [VULN]},
        {
            "type": "sbom",
            "consumes_mime_types": MANIFESTS,
            "produces_mime_types": [SBOM],
            "additional_attributes": {"sbom_media_types": ["application/spdx+json", "application/vnd.cyclonedx+json"]},
        },
    ],
    "properties": {
        "harbor.scanner-adapter/scanner-type": "os-package-vulnerability",
        "harbor.scanner-adapter/vulnerability-database-updated-at": "2026-11-27T00:00:00Z",
    },
}

FINDING = {
    "id": "CVE-2026-0001",
    "package": "libssl3",
    "version": "3.0.9-1",
    "fix_version": "3.0.11-1~deb12u2",
    "severity": "High",
    "status": "fixed",
    "description": "a flaw",
    "links": ["https://avd.aquasec.com/nvd/cve-2026-0001"],
    "layer": {"digest": "sha256:" + "a" * 64, "diff_id": "sha256:" + "b" * 64},
    "vendor_attributes": {
        "CVSS": {
            "ghsa": {"V3Vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", "V3Score": 5.9},
            "nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N", "V3Score": 7.5},
        }
    },
}


@dataclass
class Job:
    request: dict[str, Any]
    polls_until_ready: int
    created: float
    outcome: str = "done"  # done | failed
    findings: list[dict[str, Any]] = field(default_factory=list)


class TrivyFake:
    """Serve with `start()`; `jobs` and `requests` let a test steer and inspect it."""

    def __init__(self, ttl_seconds: float = 3600.0) -> None:
        self.metadata: dict[str, Any] = json.loads(json.dumps(METADATA))
        self.ttl_seconds = ttl_seconds
        self.jobs: dict[str, Job] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.polls_until_ready = 0
        self.findings: list[dict[str, Any]] = []
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> TrivyFake:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def expire(self, scan_id: str) -> None:
        """Age the job past the TTL (Redis would have dropped it)."""
        self.jobs[scan_id].created -= self.ttl_seconds + 1

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append((request.method, request.full_path.rstrip("?"), dict(request.headers)))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        return self._route(request)(environ, start_response)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/api/v1/metadata" and request.method == "GET":
            return _json(200, self.metadata, "application/vnd.scanner.adapter.metadata+json; version=1.0")
        if path == "/api/v1/scan" and request.method == "POST":
            return self._scan(request)
        parts = path.split("/")
        if len(parts) == 6 and parts[1:4] == ["api", "v1", "scan"] and parts[5] == "report":
            return self._report(request, parts[4])
        return _error(404, "not found")

    def _scan(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return _error(400, "unmarshalling scan request: bad JSON")
        registry, artifact = body.get("registry") or {}, body.get("artifact") or {}
        if not str(registry.get("url", "")).startswith(("http://", "https://")):
            return _error(422, "invalid registry.url")
        if not artifact.get("repository") or not artifact.get("digest"):
            return _error(422, "missing artifact.repository or artifact.digest")
        scan_id = secrets.token_hex(12)
        self.jobs[scan_id] = Job(body, self.polls_until_ready, time.time(), findings=list(self.findings))
        return _json(202, {"id": scan_id}, "application/vnd.scanner.adapter.scan.response+json; version=1.0")

    def _report(self, request: Request, scan_id: str) -> Response:
        accept = request.headers.get("Accept", "")
        if accept in ("", "*/*"):
            accept = VULN
        if accept not in (VULN, SBOM):
            return _error(415, f"unsupported media type {accept!r}")
        if accept == SBOM and not request.args.get("sbom_media_type"):
            return _error(400, "missing sbom_media_type")
        job = self.jobs.get(scan_id)
        if job is None or time.time() - job.created > self.ttl_seconds:
            return _error(404, f"cannot find scan job {scan_id}")
        if job.polls_until_ready > 0:
            job.polls_until_ready -= 1
            return Response(status=302, headers={"Location": request.url})
        if job.outcome == "failed":
            return _error(500, "running trivy wrapper: exit status 1")
        artifact = {k: job.request["artifact"][k] for k in ("repository", "digest", "mime_type")}
        report: dict[str, Any] = {
            "generated_at": "2026-12-01T10:00:00.123456789Z",
            "artifact": artifact,
            "scanner": METADATA["scanner"],
        }
        if accept == SBOM:
            report |= {"media_type": request.args["sbom_media_type"], "sbom": {"spdxVersion": "SPDX-2.3"}}
        elif job.findings:  # a clean report has neither key
            report |= {"severity": "High", "vulnerabilities": job.findings}
        return _json(200, report, accept)


def _json(status: int, document: Any, content_type: str) -> Response:
    return Response(json.dumps(document), status=status, content_type=content_type)


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": {"message": message}}, TRIVY_ERROR)
