"""The built-in scanner adapter's HTTP API: the Pluggable Scanner API v1 (spec 1.2), as a WSGI app.

Routes: `GET /api/v1/metadata`, `POST /api/v1/scan` (202 + id; the scan runs on a worker thread),
`GET /api/v1/scan/{id}/report` (302 with `Refresh-After: 2` while queued or running, 200 with the
report, 404 for an unknown or expired id, 500 with the failure), and unauthenticated probes
`GET /probe/healthy` and `/probe/ready`.

Unlike the Trivy adapter, every /api/v1 call is authenticated: the shared secret as
`Authorization: Bearer <key>` or Harbor's `X-ScannerAdapter-API-Key: <key>` (constant-time
compare). The Accept of a report GET is compared by media type and `version` parameter, not
byte for byte, so `a;version=1.1` and `a; version=1.1` are the same; an empty Accept or `*/*`
means the generic vulnerability report, as in Trivy.

Scans are kept in memory for `scanner_job_ttl_seconds` after they were requested (a restart
forgets them: the registry then gets 404 and fails the task, as with Trivy after its TTL).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import EgressClient
from chalicelib.adapters.scanner_api import as_object
from chalicelib.errors import EgressRefused
from chalicelib.scanner_adapter import report, sbom
from chalicelib.scanner_adapter.scan import Analysis, OsvDatabase, ScanFailed, Target, analyse
from chalicelib.scanner_adapter.settings import AdapterSettings

logger = logging.getLogger(__name__)

SCANNER = {"name": "osv-lite", "vendor": "Built-in", "version": "1.0.0"}
REFRESH_AFTER_SECONDS = 2
MAX_REQUEST_BYTES = 64 * 1024
MAX_JOBS = 10_000
CONSUMES = [api.OCI_IMAGE_MANIFEST, api.DOCKER_IMAGE_MANIFEST]
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


@dataclass
class Job:
    target: Target
    reports: frozenset[str]  # the report MIME types the request asked for
    sbom_types: frozenset[str]
    created: float
    state: str = "queued"  # queued | running | done | failed
    error: str = ""
    analysis: Analysis | None = None
    generated_at: str = ""


@dataclass
class _Jobs:
    ttl: float
    clock: Callable[[], float]
    items: dict[str, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job: Job) -> str | None:
        with self.lock:
            self._expire()
            if len(self.items) >= MAX_JOBS:
                return None
            scan_id = secrets.token_hex(12)
            self.items[scan_id] = job
            return scan_id

    def get(self, scan_id: str) -> Job | None:
        with self.lock:
            self._expire()
            return self.items.get(scan_id)

    def _expire(self) -> None:
        now = self.clock()
        for scan_id in [k for k, job in self.items.items() if now - job.created > self.ttl]:
            del self.items[scan_id]


class AdapterApp:
    """The WSGI application. `close()` stops the workers (queued scans are dropped)."""

    def __init__(
        self,
        settings: AdapterSettings,
        database: OsvDatabase,
        http: EgressClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.scanner_api_key is None or not settings.scanner_api_key.get_secret_value():
            raise ValueError("the scanner adapter needs an API key (REGISTRY_SCANNER_API_KEY)")
        self._key = settings.scanner_api_key.get_secret_value().encode()
        self._settings = settings
        self._database = database
        self._http = http
        self._jobs = _Jobs(settings.scanner_job_ttl_seconds, clock)
        self._workers = ThreadPoolExecutor(settings.scanner_workers, thread_name_prefix="scan")

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._route(request)
        except _Refused as refused:
            response = _error(refused.status, refused.message)
            if refused.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="scanner-adapter"'
        except Exception:
            logger.exception("scanner adapter: %s %s", request.method, request.path)
            response = _error(500, "internal error")
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if path in ("/probe/healthy", "/probe/ready") and method == "GET":
            return Response(status=200)
        if not path.startswith("/api/v1/"):
            raise _Refused(404, "not found")
        if not self._authenticated(request):
            raise _Refused(401, "missing or wrong credentials")
        parts = path.split("/")
        if path == "/api/v1/metadata":
            _allow(method, "GET")
            return self._metadata()
        if path == "/api/v1/scan":
            _allow(method, "POST")
            return self._submit(request)
        if len(parts) == 6 and parts[3] == "scan" and parts[5] == "report":
            _allow(method, "GET")
            return self._report(request, parts[4])
        raise _Refused(404, "not found")

    def _authenticated(self, request: Request) -> bool:
        given = request.headers.get("X-ScannerAdapter-API-Key")
        if given is None:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(given.encode(), self._key)

    # Metadata.

    def _metadata(self) -> Response:
        index = self._database.current()
        document = {
            "scanner": SCANNER,
            "capabilities": [
                {
                    "type": api.VULNERABILITY,
                    "consumes_mime_types": CONSUMES,
                    "produces_mime_types": [api.VULNERABILITY_REPORT_GENERIC, api.VULNERABILITY_REPORT_NATIVE],
                },
                {
                    "type": api.SBOM,
                    "consumes_mime_types": CONSUMES,
                    "produces_mime_types": [api.SBOM_REPORT],
                    "additional_attributes": {"sbom_media_types": list(sbom.MEDIA_TYPES)},
                },
            ],
            "properties": {
                api.SCANNER_TYPE: "os-package-vulnerability",
                api.DATABASE_UPDATED_AT: index.updated_at,
                api.REGISTRY_AUTHORIZATION_TYPE: "Basic",
                "osv-lite/database-records": str(index.records),
                "osv-lite/analyses": "dpkg, apk, python (dist-info, egg-info), npm (package.json)",
                "osv-lite/not-analysed": "rpm",
            },
        }
        return _json(200, document, api.METADATA_MIME)

    # Scan requests.

    def _submit(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            raise _Refused(413, "the scan request is too large")
        try:
            body = json.loads(request.get_data(cache=False)[: MAX_REQUEST_BYTES + 1])
        except ValueError:
            raise _Refused(400, "the scan request is not JSON") from None
        if not isinstance(body, dict):
            raise _Refused(400, "the scan request is not a JSON object")
        job = self._job(body)
        try:
            self._http.check(job.target.registry_url)
        except EgressRefused as refused:
            raise _Refused(422, f"registry.url: {refused.message}") from None
        scan_id = self._jobs.add(job)
        if scan_id is None:
            raise _Refused(503, "too many scans are kept; try again later")
        self._workers.submit(self._run, job)
        return _json(202, {"id": scan_id}, api.SCAN_RESPONSE_MIME)

    def _job(self, body: dict[str, Any]) -> Job:
        registry, artifact = as_object(body.get("registry")), as_object(body.get("artifact"))
        url = registry.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise _Unprocessable("registry.url must be an absolute http(s) URL")
        authorization = registry.get("authorization") or ""
        if not isinstance(authorization, str) or authorization.split(" ", 1)[0] not in ("", "Basic", "Bearer"):
            raise _Unprocessable("registry.authorization must be empty, Basic or Bearer")
        repository, digest = artifact.get("repository"), artifact.get("digest")
        if not isinstance(repository, str) or not _REPOSITORY.match(repository) or len(repository) > 255:
            raise _Unprocessable("artifact.repository is missing or not a repository name")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise _Unprocessable("artifact.digest is missing or not a digest")
        mime_type = artifact.get("mime_type") or api.OCI_IMAGE_MANIFEST
        if mime_type not in CONSUMES:
            raise _Unprocessable(f"artifact.mime_type {mime_type!r} is not scanned by this adapter")
        reports, sbom_types = _capabilities(body.get("enabled_capabilities"))
        target = Target(url, authorization, bool(registry.get("insecure")), repository, digest, str(mime_type))
        return Job(target, reports, sbom_types, self._jobs.clock())

    def _run(self, job: Job) -> None:
        job.state = "running"
        try:
            job.analysis = analyse(job.target, self._http, self._settings.limits, self._database.current())
            job.generated_at = _now()
            job.state = "done"
        except ScanFailed as failure:
            job.error, job.state = str(failure), "failed"
        except Exception as failure:  # a scan must end: the registry would poll until its cap otherwise
            logger.exception("scan of %s@%s", job.target.repository, job.target.digest)
            job.error, job.state = f"internal error: {type(failure).__name__}", "failed"
        finally:
            job.target = replace(job.target, authorization="")  # the pull credential is not kept

    # Reports.

    def _report(self, request: Request, scan_id: str) -> Response:
        wanted = _accepted(request.headers.get("Accept", ""))
        if wanted is None:
            raise _Refused(415, f"unsupported report type {request.headers.get('Accept', '')[:200]!r}")
        sbom_type = request.args.get("sbom_media_type")
        if wanted == api.SBOM_REPORT and sbom_type not in sbom.MEDIA_TYPES:
            raise _Refused(400, f"sbom_media_type must be one of {', '.join(sbom.MEDIA_TYPES)}")
        job = self._jobs.get(scan_id)
        if job is None:
            raise _Refused(404, f"unknown scan {scan_id[:64]!r}")
        if wanted not in job.reports or (wanted == api.SBOM_REPORT and sbom_type not in job.sbom_types):
            raise _Refused(404, "this scan was not asked for that report")
        if job.state in ("queued", "running"):
            return Response(status=302, headers={"Location": request.url, "Refresh-After": str(REFRESH_AFTER_SECONDS)})
        if job.state == "failed" or job.analysis is None:
            return _error(500, job.error or "the scan failed")
        artifact = {"repository": job.target.repository, "digest": job.target.digest, "mime_type": job.target.mime_type}
        if wanted == api.SBOM_REPORT:
            assert sbom_type is not None
            created = datetime.strptime(job.generated_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            document = {
                "generated_at": job.generated_at,
                "artifact": artifact,
                "scanner": SCANNER,
                "media_type": sbom_type,
                "sbom": sbom.build(sbom_type, job.analysis.inventory, artifact, "osv-lite-1.0.0", created),
            }
        else:
            document = report.vulnerability_report(
                artifact, SCANNER, job.analysis.findings, job.analysis.inventory, job.generated_at
            )
        return _json(200, document, wanted)


class _Refused(Exception):
    """A request answered with an error status and the protocol's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Unprocessable(_Refused):
    def __init__(self, message: str) -> None:
        super().__init__(422, message)


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Refused(405, "method not allowed")


def _capabilities(value: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(report MIME types, SBOM media types) asked for; none given means the generic vulnerability report."""
    if value is None or value == []:
        return frozenset({api.VULNERABILITY_REPORT_GENERIC}), frozenset()
    if not isinstance(value, list):
        raise _Unprocessable("enabled_capabilities must be a list")
    reports: set[str] = set()
    sbom_types: set[str] = set()
    for capability in value:
        if not isinstance(capability, dict):
            raise _Unprocessable("a capability must be an object")
        kind, produces = capability.get("type"), capability.get("produces_mime_types")
        if not isinstance(produces, list) or not produces:
            raise _Unprocessable("a capability must list produces_mime_types")
        if kind == api.VULNERABILITY:
            allowed: tuple[str, ...] = api.VULNERABILITY_REPORTS
        elif kind == api.SBOM:
            allowed = (api.SBOM_REPORT,)
            types = as_object(capability.get("parameters")).get("sbom_media_types")
            if not isinstance(types, list) or not types or any(t not in sbom.MEDIA_TYPES for t in types):
                raise _Unprocessable(f"an sbom capability needs sbom_media_types from {', '.join(sbom.MEDIA_TYPES)}")
            sbom_types.update(types)
        else:
            raise _Unprocessable(f"unsupported capability type {kind!r}")
        unknown = [mime for mime in produces if mime not in allowed]
        if unknown:
            raise _Unprocessable(f"unsupported report type {unknown[0]!r}")
        reports.update(produces)
    return frozenset(reports), frozenset(sbom_types)


def _accepted(accept: str) -> str | None:
    """The report type an Accept names (by media type and version), or None."""
    if accept.strip() in ("", "*/*"):
        return api.VULNERABILITY_REPORT_GENERIC
    wanted = _media_key(accept)
    return next((mime for mime in (*api.VULNERABILITY_REPORTS, api.SBOM_REPORT) if _media_key(mime) == wanted), None)


def _media_key(value: str) -> tuple[str, str]:
    kind, _, parameters = value.partition(";")
    version = ""
    for parameter in parameters.split(";"):
        name, _, text = parameter.partition("=")
        if name.strip().lower() == "version":
            version = text.strip().strip('"')
    return kind.strip().lower(), version


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(status: int, document: Any, content_type: str) -> Response:
    return Response(json.dumps(document), status=status, content_type=content_type)


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": {"message": message}}, api.ERROR_MIME)
