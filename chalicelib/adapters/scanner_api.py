"""The Pluggable Scanner API's documents, as Harbor reads and writes them (no I/O here).

Both sides of the protocol use this module: the registry's client (`scanner_client.py`) and the
built-in adapter (`chalicelib/scanner_adapter`). Harbor sends version 1.0 of the metadata and scan
request types even though the spec defines 1.1, and adapters ignore the version, so 1.0 is what we
send and both are accepted. Validation follows Harbor's rules for adapter metadata; a report is
read leniently, because the reference adapter (Trivy) leaves `severity` and `vulnerabilities` out
of a clean report and puts CVSS scores only in `vendor_attributes`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

METADATA_MIME = "application/vnd.scanner.adapter.metadata+json; version=1.0"
METADATA_MIME_1_1 = "application/vnd.scanner.adapter.metadata+json; version=1.1"
SCAN_REQUEST_MIME = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
SCAN_REQUEST_MIME_1_1 = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
SCAN_RESPONSE_MIME = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
ERROR_MIME = "application/vnd.scanner.adapter.error+json; version=1.0"

VULNERABILITY_REPORT_GENERIC = "application/vnd.security.vulnerability.report; version=1.1"
VULNERABILITY_REPORT_NATIVE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"
VULNERABILITY_REPORTS = (VULNERABILITY_REPORT_GENERIC, VULNERABILITY_REPORT_NATIVE)

SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"

OCI_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_IMAGE_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

VULNERABILITY = "vulnerability"
SBOM = "sbom"

# Adapter properties Harbor reads.
REGISTRY_AUTHORIZATION_TYPE = "harbor.scanner-adapter/registry-authorization-type"
SCANNER_TYPE = "harbor.scanner-adapter/scanner-type"
DATABASE_UPDATED_AT = "harbor.scanner-adapter/vulnerability-database-updated-at"

# An item's severity, lowest first; a report with no item has severity "None" (as Harbor shows it).
SEVERITIES = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")
NO_SEVERITY = "None"


class InvalidScannerDocument(ValueError):
    """An adapter's answer that does not have the shape the protocol requires."""


@dataclass(frozen=True, slots=True)
class Capability:
    type: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    additional_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScannerMetadata:
    name: str
    vendor: str
    version: str
    capabilities: tuple[Capability, ...]
    properties: dict[str, str]

    @property
    def supports_vulnerability(self) -> bool:
        return any(c.type == VULNERABILITY for c in self.capabilities)

    @property
    def supports_sbom(self) -> bool:
        return any(c.type == SBOM for c in self.capabilities)

    @property
    def registry_authorization_type(self) -> str:
        """How the adapter wants to be authorised to the registry: `Basic` (default) or `Bearer`."""
        return "Bearer" if self.properties.get(REGISTRY_AUTHORIZATION_TYPE) == "Bearer" else "Basic"

    def report_types(self, manifest_media_type: str, scan_type: str) -> tuple[str, ...]:
        """The report MIME types to poll for an artifact of this media type and this scan type
        (empty: the adapter cannot scan it)."""
        found: list[str] = []
        for capability in self.capabilities:
            if capability.type == scan_type and manifest_media_type in capability.consumes:
                found.extend(mime for mime in capability.produces if mime not in found)
        return tuple(found)

    def preferred_vulnerability_report(self, manifest_media_type: str) -> str | None:
        """The generic 1.1 report when offered, the native 1.0 one when it is all there is."""
        offered = self.report_types(manifest_media_type, VULNERABILITY)
        return next((mime for mime in VULNERABILITY_REPORTS if mime in offered), None)


def parse_metadata(document: Any) -> ScannerMetadata:
    """Adapter metadata validated as Harbor validates it: a scanner name, vendor and version; at
    least one capability; each consumes the Docker v2 manifest type and produces a report type
    Harbor knows. A capability without `type` is a vulnerability capability (older adapters)."""
    if not isinstance(document, dict):
        raise InvalidScannerDocument("the metadata is not a JSON object")
    scanner = document.get("scanner")
    if not isinstance(scanner, dict):
        raise InvalidScannerDocument("the metadata names no scanner")
    name, vendor, version = (_text(scanner.get(key)) for key in ("name", "vendor", "version"))
    if not (name and vendor and version):
        raise InvalidScannerDocument("the scanner's name, vendor and version must all be set")
    raw_capabilities = document.get("capabilities")
    if not isinstance(raw_capabilities, list) or not raw_capabilities:
        raise InvalidScannerDocument("the metadata lists no capability")
    capabilities = tuple(_capability(raw) for raw in raw_capabilities)
    raw_properties = document.get("properties") or {}
    if not isinstance(raw_properties, dict):
        raise InvalidScannerDocument("the metadata's properties are not an object")
    properties = {str(k): str(v) for k, v in raw_properties.items() if isinstance(v, str | int | float | bool)}
    return ScannerMetadata(name, vendor, version, capabilities, properties)


def _capability(raw: Any) -> Capability:
    if not isinstance(raw, dict):
        raise InvalidScannerDocument("a capability is not an object")
    kind = _text(raw.get("type")) or VULNERABILITY
    consumes = _strings(raw.get("consumes_mime_types"))
    produces = _strings(raw.get("produces_mime_types"))
    if DOCKER_IMAGE_MANIFEST not in consumes:
        raise InvalidScannerDocument(f"a capability does not consume {DOCKER_IMAGE_MANIFEST}")
    if not any(mime in produces for mime in (*VULNERABILITY_REPORTS, SBOM_REPORT)):
        raise InvalidScannerDocument("a capability produces no report type the registry reads")
    attributes = raw.get("additional_attributes")
    return Capability(kind, consumes, produces, attributes if isinstance(attributes, dict) else {})


def as_object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (for reading untrusted documents)."""
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str:
    """`value` when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


# Scan requests.


def basic_authorization(username: str, secret: str) -> str:
    """The `registry.authorization` value for an adapter that pulls with Basic credentials (Trivy
    decodes it into a user name and password and runs the registry's token flow with them)."""
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")


def bearer_authorization(token: str) -> str:
    """The `registry.authorization` value for an adapter of registry-authorization-type Bearer."""
    return f"Bearer {token}"


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """What to scan: the artifact and where the scanner pulls it from."""

    registry_url: str
    authorization: str
    repository: str
    digest: str
    mime_type: str
    tag: str = ""
    size: int = 0


def scan_request(target: ScanTarget, scan_type: str, produces: str) -> dict[str, Any]:
    """The POST /scan body Harbor sends: exactly one enabled capability (a vulnerability scan and
    an SBOM are separate requests); Harbor only ever asks for SPDX SBOMs."""
    if scan_type == VULNERABILITY:
        capability: dict[str, Any] = {"type": VULNERABILITY, "produces_mime_types": [produces], "parameters": None}
    elif scan_type == SBOM:
        capability = {
            "type": SBOM,
            "produces_mime_types": [produces],
            "parameters": {"sbom_media_types": [SPDX_JSON]},
        }
    else:
        raise ValueError(f"unknown scan type {scan_type!r}")
    return {
        "registry": {"url": target.registry_url.rstrip("/"), "authorization": target.authorization, "insecure": False},
        "artifact": {
            "repository": target.repository,
            "tag": target.tag,
            "digest": target.digest,
            "mime_type": target.mime_type,
            "size": target.size,
        },
        "enabled_capabilities": [capability],
    }


# Reports.


@dataclass(frozen=True, slots=True)
class Vulnerability:
    id: str
    package: str
    version: str
    fix_version: str
    severity: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VulnerabilityReport:
    """A vulnerability report read leniently; `document` is the adapter's JSON with `severity`,
    `vulnerabilities` and each item's `preferred_cvss` filled in where the adapter left them out."""

    severity: str
    vulnerabilities: tuple[Vulnerability, ...]
    document: dict[str, Any]


def parse_vulnerability_report(document: Any) -> VulnerabilityReport:
    """Read a report of either vulnerability MIME type (one schema for both). A missing `severity`
    is the highest item severity (`None` when there is no item), missing `vulnerabilities` are
    none, and an item without `preferred_cvss` gets the scores from `vendor_attributes.CVSS`
    (the `nvd` source first, as Trivy fills only that map)."""
    if not isinstance(document, dict):
        raise InvalidScannerDocument("the report is not a JSON object")
    raw_items = document.get("vulnerabilities") or []
    if not isinstance(raw_items, list):
        raise InvalidScannerDocument("the report's vulnerabilities are not a list")
    items: list[Vulnerability] = []
    shaped: list[dict[str, Any]] = []
    for raw in raw_items:
        if not isinstance(raw, dict) or not _text(raw.get("id")):
            raise InvalidScannerDocument("a vulnerability has no id")
        item = dict(raw)
        item["severity"] = _severity(raw.get("severity"))
        if not isinstance(item.get("preferred_cvss"), dict) or not item["preferred_cvss"]:
            cvss = _vendor_cvss(raw.get("vendor_attributes"))
            if cvss:
                item["preferred_cvss"] = cvss
        shaped.append(item)
        items.append(
            Vulnerability(
                id=_text(raw.get("id")),
                package=_text(raw.get("package")),
                version=_text(raw.get("version")),
                fix_version=_text(raw.get("fix_version")),
                severity=item["severity"],
                raw=item,
            )
        )
    stated = document.get("severity")
    highest = max((v.severity for v in items), key=SEVERITIES.index, default=NO_SEVERITY)
    severity = _severity(stated) if items and isinstance(stated, str) and stated else highest
    return VulnerabilityReport(severity, tuple(items), {**document, "severity": severity, "vulnerabilities": shaped})


def _severity(value: Any) -> str:
    text = value.strip().title() if isinstance(value, str) else ""
    return text if text in SEVERITIES else "Unknown"


def _vendor_cvss(attributes: Any) -> dict[str, Any]:
    """`preferred_cvss` from Trivy's `vendor_attributes.CVSS{source:{V3Score,V3Vector,...}}`."""
    sources = attributes.get("CVSS") if isinstance(attributes, dict) else None
    if not isinstance(sources, dict) or not sources:
        return {}
    ordered = sorted(sources, key=lambda name: (name != "nvd", name))
    for name in ordered:
        scores = sources[name]
        if not isinstance(scores, dict):
            continue
        cvss = {
            "score_v3": scores.get("V3Score"),
            "score_v2": scores.get("V2Score"),
            "vector_v3": scores.get("V3Vector") or "",
            "vector_v2": scores.get("V2Vector") or "",
        }
        if any(cvss.values()):
            return cvss
    return {}


def sbom_document(document: Any) -> dict[str, Any]:
    """The SBOM inside an SBOM report (`sbom`: the raw SPDX or CycloneDX JSON)."""
    if not isinstance(document, dict) or not isinstance(document.get("sbom"), dict):
        raise InvalidScannerDocument("the SBOM report carries no SBOM document")
    sbom: dict[str, Any] = document["sbom"]
    return sbom


def error_message(body: bytes) -> str:
    """The message of an adapter's error answer `{error:{message}}`, whatever its Content-Type
    says (Trivy's differs from the spec's); when the body is not that shape, the parse failure is
    the message, as in Harbor."""
    try:
        document = json.loads(body)
        message = document["error"]["message"]
        if not isinstance(message, str):
            raise TypeError("error.message is not a string")
        return message
    except (ValueError, KeyError, TypeError) as failure:
        return f"unreadable error answer: {failure}"
