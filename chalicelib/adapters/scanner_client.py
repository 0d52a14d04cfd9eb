"""The registry's client for Pluggable Scanner API adapters (Trivy in production, the built-in
adapter locally), with Harbor's HTTP behaviour.

- Every call has a 5 s timeout and goes through the egress policy; redirects are never followed
  (a report not yet ready is a 302, and Trivy's points at the same URL, so a client that follows
  redirects loops).
- A 302 on a report means "not ready": wait `Refresh-After` seconds, read as Harbor reads it (an
  integer 1..127; absent, malformed or out of range: 5 s).
- 404 on a report means the adapter does not know the scan (unknown id, or past its TTL): the
  task fails. Every other unexpected status is an error whose message comes from the adapter's
  `{error:{message}}` body, whatever its Content-Type.
- The registration's credential goes in the header its auth type names (`Basic`, `Bearer`, or
  Harbor's `X-ScannerAdapter-API-Key` for `APIKey`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import urllib3.exceptions

from chalicelib.adapters import scanner_api as api
from chalicelib.adapters.egress import AnswerTooLarge, EgressClient, EgressPolicy, EgressResponse

TIMEOUT_SECONDS = 5.0
DEFAULT_REFRESH_SECONDS = 5
# A report can be large (every vulnerability of a big image, or a full SBOM); metadata is small.
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_ANSWER_BYTES = 1024 * 1024

AuthType = Literal["", "Basic", "Bearer", "APIKey"]
AUTH_TYPES: tuple[AuthType, ...] = ("", "Basic", "Bearer", "APIKey")


class ScannerError(Exception):
    """An adapter that cannot be reached or answered outside the protocol."""


class ScanUnknown(ScannerError):
    """The adapter does not know this scan (404: never submitted, or expired)."""


@dataclass(frozen=True, slots=True)
class ScannerEndpoint:
    """A registration's address and credential. `credential` is the secret itself (resolved from
    its Secrets Manager/SSM reference by the caller); `Basic` takes `user:password`."""

    url: str
    auth: AuthType = ""
    credential: str = ""
    skip_cert_verify: bool = False

    def __post_init__(self) -> None:
        if self.auth not in AUTH_TYPES:
            raise ValueError(f"auth must be one of {AUTH_TYPES}")

    @property
    def base(self) -> str:
        return self.url.rstrip("/") + "/api/v1"

    def auth_headers(self) -> dict[str, str]:
        if self.auth == "Basic":
            return {"Authorization": "Basic " + base64.b64encode(self.credential.encode()).decode("ascii")}
        if self.auth == "Bearer":
            return {"Authorization": f"Bearer {self.credential}"}
        if self.auth == "APIKey":
            return {"X-ScannerAdapter-API-Key": self.credential}
        return {}


@dataclass(frozen=True, slots=True)
class ReportReady:
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as failure:
            raise ScannerError(f"the report is not JSON: {failure}") from None


@dataclass(frozen=True, slots=True)
class ReportPending:
    """Not ready: ask again after this many seconds."""

    retry_after: int


class ScannerClient:
    """One adapter's API. Construct per registration; holds no connection between calls."""

    def __init__(self, policy: EgressPolicy, endpoint: ScannerEndpoint) -> None:
        self._http = EgressClient(policy, TIMEOUT_SECONDS)
        self._endpoint = endpoint

    def metadata(self) -> api.ScannerMetadata:
        """GET /metadata, validated (ScannerError when it is not what Harbor accepts)."""
        answer = self._call("GET", "/metadata", {"Accept": api.METADATA_MIME}, max_bytes=MAX_ANSWER_BYTES)
        if answer.status != 200:
            raise ScannerError(f"metadata: {answer.status} {api.error_message(answer.body)}")
        try:
            return api.parse_metadata(json.loads(answer.body))
        except ValueError as failure:  # InvalidScannerDocument is a ValueError, and so is bad JSON
            raise ScannerError(f"metadata: {failure}") from None

    def submit(self, request: dict[str, Any]) -> str:
        """POST /scan; the adapter's scan id (it must answer 202 {"id"})."""
        headers = {"Content-Type": api.SCAN_REQUEST_MIME, "Accept": api.SCAN_RESPONSE_MIME}
        body = json.dumps(request).encode()
        answer = self._call("POST", "/scan", headers, body=body, max_bytes=MAX_ANSWER_BYTES)
        if answer.status != 202:
            raise ScannerError(f"scan request: {answer.status} {api.error_message(answer.body)}")
        try:
            scan_id = json.loads(answer.body)["id"]
        except (ValueError, KeyError, TypeError):
            raise ScannerError("scan request: the answer carries no scan id") from None
        if not isinstance(scan_id, str) or not scan_id:
            raise ScannerError("scan request: the answer carries no scan id")
        return scan_id

    def report(self, scan_id: str, mime_type: str, sbom_media_type: str | None = None) -> ReportReady | ReportPending:
        """GET /scan/{id}/report for one report MIME type (an SBOM names its document type too)."""
        path = f"/scan/{quote(scan_id, safe='')}/report"
        if sbom_media_type is not None:
            path += "?sbom_media_type=" + quote(sbom_media_type, safe="")
        answer = self._call("GET", path, {"Accept": mime_type}, max_bytes=MAX_REPORT_BYTES)
        if answer.status == 302:
            return ReportPending(refresh_after(answer.header("Refresh-After")))
        if answer.status == 200:
            return ReportReady(answer.body, answer.header("Content-Type") or mime_type)
        if answer.status == 404:
            raise ScanUnknown(f"scan {scan_id}: {api.error_message(answer.body)}")
        raise ScannerError(f"report: {answer.status} {api.error_message(answer.body)}")

    def _call(
        self, method: str, path: str, headers: dict[str, str], *, body: bytes | None = None, max_bytes: int
    ) -> EgressResponse:
        endpoint = self._endpoint
        try:
            return self._http.request(
                method,
                endpoint.base + path,
                {**headers, **endpoint.auth_headers()},
                not endpoint.skip_cert_verify,
                body=body,
                max_bytes=max_bytes,
            )
        except AnswerTooLarge as failure:
            raise ScannerError(str(failure)) from None
        except (urllib3.exceptions.HTTPError, OSError) as failure:
            raise ScannerError(f"the scanner cannot be reached: {type(failure).__name__}") from None


def refresh_after(value: str | None) -> int:
    """Seconds to wait from a `Refresh-After` header, as Harbor reads it (an int8; anything
    missing, malformed, below 1 or above 127 means the 5 s default)."""
    try:
        seconds = int((value or "").strip())
    except ValueError:
        return DEFAULT_REFRESH_SECONDS
    return seconds if 1 <= seconds <= 127 else DEFAULT_REFRESH_SECONDS
