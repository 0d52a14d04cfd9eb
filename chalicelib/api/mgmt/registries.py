"""/api/v2.0/registries and /api/v2.0/replication/adapters|adapterinfos: the remote registries
replication and proxy-cache projects use (Harbor's `registry` API group)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.wire import shape
from chalicelib.core import registries as core
from chalicelib.core.registries import LOCAL_ID, Registry
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint

_TEXT = 1024
_URL = core.MAX_URL_LENGTH
_KEY = core.MAX_ACCESS_KEY_LENGTH
_SECRET = core.MAX_SECRET_LENGTH
_CA = core.MAX_CA_CERTIFICATE_LENGTH


class _Strict(BaseModel):
    # Types as the swagger says them: "true" is not a boolean nor "1" an id (Go's decoder refuses them too).
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class CredentialReq(_Strict):
    type: str | None = Field(default=None, max_length=16)
    access_key: str | None = Field(default=None, max_length=_KEY)
    access_secret: str | None = Field(default=None, max_length=_SECRET)


class RegistryReq(_Strict):
    """Harbor's `Registry` as a create body: what GET returned may be sent back (the read-only
    fields are ignored)."""

    name: str | None = Field(default=None, max_length=_TEXT)
    url: str | None = Field(default=None, max_length=_URL)
    type: str | None = Field(default=None, max_length=64)
    credential: CredentialReq | None = None
    insecure: bool | None = None
    ca_certificate: str | None = Field(default=None, max_length=_CA)
    description: str | None = Field(default=None, max_length=_TEXT)
    id: int | None = None
    status: str | None = Field(default=None, max_length=64)
    creation_time: str | None = Field(default=None, max_length=64)
    update_time: str | None = Field(default=None, max_length=64)


class RegistryUpdateReq(_Strict):
    """Harbor's `RegistryUpdate`: every field optional; an absent one keeps the stored value."""

    name: str | None = Field(default=None, max_length=_TEXT)
    description: str | None = Field(default=None, max_length=_TEXT)
    url: str | None = Field(default=None, max_length=_URL)
    credential_type: str | None = Field(default=None, max_length=16)
    access_key: str | None = Field(default=None, max_length=_KEY)
    access_secret: str | None = Field(default=None, max_length=_SECRET)
    insecure: bool | None = None
    ca_certificate: str | None = Field(default=None, max_length=_CA)


class RegistryPingReq(RegistryUpdateReq):
    """Harbor's `RegistryPing`: a stored registry by `id` (its credentials overridable), or a
    whole registry described by the body."""

    id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    type: str | None = Field(default=None, max_length=64)


def registry_view(registry: Registry) -> dict[str, Any]:
    return registry.wire()


def _registry_id(request: HttpRequest) -> int:
    return int_param(request.params["id"], "id")


def _request(body: RegistryUpdateReq | RegistryReq) -> Any:
    from chalicelib.services.registries import RegistryRequest  # noqa: PLC0415 (services load with the first call)

    if isinstance(body, RegistryReq):
        credential = body.credential or CredentialReq()
        return RegistryRequest(
            name=body.name, type=body.type, url=body.url, credential_type=credential.type,
            access_key=credential.access_key, access_secret=credential.access_secret, insecure=body.insecure,
            description=body.description, ca_certificate=body.ca_certificate,
        )  # fmt: skip
    return RegistryRequest(
        name=body.name, type=getattr(body, "type", None), url=body.url, credential_type=body.credential_type,
        access_key=body.access_key, access_secret=body.access_secret, insecure=body.insecure,
        description=body.description, ca_certificate=body.ca_certificate,
    )  # fmt: skip


@routes.get("/registries")
def list_registries(request: HttpRequest) -> Page:
    name = request.arg("name")  # deprecated by Harbor in favour of q=name=~...; a substring match
    records = [registry_view(r) for r in services().registries.list() if not name or name in r.name]
    records.sort(key=lambda r: r["id"])
    return Page(
        records,
        q_fields={"id": int, "name": str, "type": str, "url": str, "description": str, "status": str, "insecure": bool},
        sort_fields=("id", "name", "type", "url", "status", "creation_time", "update_time"),
    )


@routes.post("/registries", body=RegistryReq)
def create_registry(request: HttpRequest, body: RegistryReq) -> Created:
    registry = services().registries.create(_request(body))
    return Created(f"/registries/{registry.id}")


@routes.post("/registries/ping", body=RegistryPingReq)
def ping_registry(request: HttpRequest, body: RegistryPingReq) -> None:
    services().registries.ping(body.id, _request(body))


@routes.get("/registries/{id}")
def get_registry(request: HttpRequest) -> dict[str, Any]:
    registry_id = _registry_id(request)
    built = services()
    if registry_id == LOCAL_ID:  # Harbor's "Local": this registry, at the address it is reached by
        return built.registries.local_registry(request.base_url(built.settings.external_url))
    return registry_view(built.registries.get(registry_id))


@routes.put("/registries/{id}", body=RegistryUpdateReq)
def update_registry(request: HttpRequest, body: RegistryUpdateReq) -> None:
    services().registries.update(_registry_id(request), _request(body))


@routes.delete("/registries/{id}")
def delete_registry(request: HttpRequest) -> None:
    services().registries.delete(_registry_id(request))


@routes.get("/registries/{id}/info")
def registry_info(request: HttpRequest) -> dict[str, Any]:
    registry_id = _registry_id(request)
    built = services()
    if registry_id == LOCAL_ID:  # Harbor's id of the local registry: the source of push-based policies
        return built.registries.local_info(sorted(label.name for label in built.labels.in_scope("g", None)))
    return built.registries.info(registry_id)


@routes.get("/replication/adapters")
def list_adapters(request: HttpRequest) -> list[str]:
    return services().registries.adapter_types()


@routes.get("/replication/adapterinfos")
def list_adapter_infos(request: HttpRequest) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire.models import RegistryProviderInfo  # noqa: PLC0415 (response models load on first use)

    return {name: shape(RegistryProviderInfo, info) for name, info in services().registries.adapter_infos().items()}
