"""/api/v2.0/scanners and /projects/{project}/scanner: Harbor's scanner registrations, the default
scanner, an adapter's metadata, and which scanner a project uses.

Answers never carry `access_credential` (Harbor stopped returning it); an update without one keeps
the stored credential while the auth type still needs one. Reads ask each adapter on the page for
its metadata (cached briefly) to fill `capabilities`, as Harbor does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import iso
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.core.identity import Project
from chalicelib.core.scanners import (
    CREDENTIAL_MAX,
    DESCRIPTION_MAX,
    NAME_MAX,
    URL_MAX,
    InvalidRegistration,
    ScannerRegistration,
    is_uuid,
    parse_auth,
)
from chalicelib.errors import BadRequest, NotFound, RegistryError
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_ONE = "/scanners/{registration_id}"
_PROJECT = "/projects/{project}/scanner"


class RegistrationReq(BaseModel):
    """Harbor's `ScannerRegistrationReq`; the read-only fields of `ScannerRegistration` may be sent
    back (a client PUTs what it GOT) and are ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True, populate_by_name=True)

    name: str = Field(max_length=NAME_MAX)
    url: str = Field(max_length=URL_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    auth: str | None = Field(default=None, max_length=32)
    access_credential: str | None = Field(default=None, max_length=CREDENTIAL_MAX)
    skip_cert_verify: bool | None = Field(default=None, alias="skip_certVerify")
    use_internal_addr: bool | None = None
    disabled: bool | None = None
    # Read-only, ignored.
    uuid: str | None = Field(default=None, max_length=64)
    is_default: bool | None = None
    health: str | None = Field(default=None, max_length=64)
    adapter: str | None = Field(default=None, max_length=256)
    vendor: str | None = Field(default=None, max_length=256)
    version: str | None = Field(default=None, max_length=256)
    capabilities: dict[str, bool] | None = Field(default=None, max_length=8)
    create_time: str | None = Field(default=None, max_length=64)
    update_time: str | None = Field(default=None, max_length=64)


class SettingsReq(BaseModel):
    """Harbor's `ScannerRegistrationSettings` (POST /scanners/ping)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    name: str = Field(max_length=NAME_MAX)
    url: str = Field(max_length=URL_MAX)
    auth: str | None = Field(default=None, max_length=32)
    access_credential: str | None = Field(default=None, max_length=CREDENTIAL_MAX)


class IsDefaultReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    is_default: bool | None = None


class ProjectScannerReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    uuid: str = Field(max_length=64)


def _change(body: RegistrationReq) -> Any:
    from chalicelib.services.scanners import RegistrationChange  # noqa: PLC0415 (services load with the wiring)

    try:
        auth = parse_auth(body.auth)
    except InvalidRegistration as failure:
        raise BadRequest(str(failure)) from None
    return RegistrationChange(
        name=body.name, url=body.url, auth=auth, credential=body.access_credential,
        description=body.description or "", disabled=bool(body.disabled),
        skip_cert_verify=bool(body.skip_cert_verify), use_internal_addr=bool(body.use_internal_addr),
    )  # fmt: skip


def registration_view(registration: ScannerRegistration) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)
    from chalicelib.api.mgmt.wire import shape  # noqa: PLC0415

    return shape(wire.ScannerRegistration, {
        "uuid": registration.uuid, "name": registration.name, "url": registration.url,
        "description": registration.description, "auth": registration.auth,
        "skip_certVerify": registration.skip_cert_verify, "use_internal_addr": registration.use_internal_addr,
        "is_default": registration.is_default, "disabled": registration.disabled,
        "create_time": iso(registration.create_time), "update_time": iso(registration.update_time),
        "access_credential": "",
    })  # fmt: skip


def _with_capabilities(records: list[dict[str, Any]], registrations: list[ScannerRegistration]) -> list[dict[str, Any]]:
    """Harbor's `RetrieveCap` on every registration of the page: the adapter's capabilities."""
    scanners = services().scanners
    by_uuid = {r.uuid: r for r in registrations}
    out = []
    for record in records:
        registration = by_uuid.get(str(record["uuid"]))
        status = scanners.status(registration) if registration is not None else None
        capabilities: dict[str, bool] = {}
        if status is not None and status.health:
            if status.capabilities.support_vulnerability:
                capabilities["support_vulnerability"] = True
            if status.capabilities.support_sbom:
                capabilities["support_sbom"] = True
        out.append({**record, "capabilities": capabilities} if capabilities else record)
    return out


def _registrations_page(request: HttpRequest) -> Page:
    """Harbor's order (the default first, then newest first), its `q` keys, and the older list
    API's `name`, `description`, `url` (substring) and `ex_name`, `ex_url` (exact) parameters."""
    every = services().scanners.all()
    registrations = sorted(every, key=lambda r: (not r.is_default, -r.create_time, r.name))
    for key in ("name", "description", "url"):
        wanted = request.arg(key)
        if wanted:
            registrations = [r for r in registrations if wanted in str(getattr(r, key))]
    for key in ("ex_name", "ex_url"):
        wanted = request.arg(key)
        if wanted:
            registrations = [r for r in registrations if getattr(r, key.removeprefix("ex_")) == wanted]
    return Page(
        [registration_view(r) for r in registrations],
        q_fields={"name": str, "description": str, "url": str},
        sort_fields=("name", "url", "description", "create_time", "update_time"),
        fill=lambda page: _with_capabilities(page, every),
    )


def _registration(request: HttpRequest) -> ScannerRegistration:
    registration_id = request.params["registration_id"]
    found = services().scanners.get(registration_id) if is_uuid(registration_id) else None
    if found is None:
        raise NotFound(f"scanner {registration_id} not found")
    return found


@routes.get("/scanners")
def list_scanners(request: HttpRequest) -> Page:
    return _registrations_page(request)


@routes.post("/scanners", body=RegistrationReq)
def create_scanner(request: HttpRequest, body: RegistrationReq) -> Created:
    created = services().scanners.create(_change(body))
    return Created(f"/scanners/{created.uuid}")


@routes.post("/scanners/ping", body=SettingsReq)
def ping_scanner(request: HttpRequest, body: SettingsReq) -> None:
    services().scanners.ping(_change(RegistrationReq(name=body.name, url=body.url, auth=body.auth,
                                                     access_credential=body.access_credential)))  # fmt: skip


@routes.get(_ONE)
def get_scanner(request: HttpRequest) -> dict[str, Any]:
    registration = _registration(request)
    return _with_capabilities([registration_view(registration)], [registration])[0]


@routes.put(_ONE, body=RegistrationReq)
def update_scanner(request: HttpRequest, body: RegistrationReq) -> None:
    services().scanners.update(_registration(request).uuid, _change(body))


@routes.patch(_ONE, body=IsDefaultReq)
def set_default_scanner(request: HttpRequest, body: IsDefaultReq) -> None:
    if body.is_default:
        registration_id = request.params["registration_id"]
        if not is_uuid(registration_id):
            raise NotFound(f"registration {registration_id} not found")
        services().scanners.set_default(registration_id)


@routes.delete(_ONE)
def delete_scanner(request: HttpRequest) -> dict[str, Any]:
    return registration_view(services().scanners.delete(_registration(request).uuid))


@routes.get(f"{_ONE}/metadata")
def scanner_metadata(request: HttpRequest) -> dict[str, Any]:
    registration = _registration(request)
    try:
        meta = services().scanners.metadata(registration)
    except BadRequest as failure:
        # The registration is fine; its adapter is not answering as it must (Harbor: a 500).
        raise RegistryError(failure.message, status=502) from None
    capabilities = [
        {"type": c.type, "consumes_mime_types": list(c.consumes), "produces_mime_types": list(c.produces)}
        for c in meta.capabilities
    ]
    return {
        "scanner": {"name": meta.name, "vendor": meta.vendor, "version": meta.version},
        "capabilities": capabilities,
        "properties": dict(meta.properties),
    }


@routes.get(_PROJECT)
def project_scanner(request: HttpRequest, project: Project) -> dict[str, Any] | None:
    """The project's scanner (its choice, else the default); an empty answer when there is none."""
    registration = services().scanners.for_project(project.project_id)
    if registration is None:
        return None
    return _with_capabilities([registration_view(registration)], [registration])[0]


@routes.put(_PROJECT, body=ProjectScannerReq)
def set_project_scanner(request: HttpRequest, body: ProjectScannerReq, project: Project) -> None:
    if not is_uuid(body.uuid):
        raise NotFound(f"scanner {body.uuid} not found")
    services().scanners.set_project(project.project_id, project.name, body.uuid)


@routes.get(f"{_PROJECT}/candidates")
def project_scanner_candidates(request: HttpRequest, project: Project) -> Page:
    return _registrations_page(request)
