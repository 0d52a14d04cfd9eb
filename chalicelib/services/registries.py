"""Remote registries (Harbor's `/registries`): the endpoints replication and proxy-cache projects
talk to, their credentials, their health.

Harbor's rules: a name is required, unique and at most 64 characters; the URL is normalised
(`http://` added when no scheme, trailing `/` dropped); the type must be one an adapter exists for;
a create or update is refused (400, "the registry is unhealthy") unless the registry answers with
the given credentials; a registry referenced by a replication policy or a proxy-cache project cannot
be deleted (412). Every call to a remote goes through the egress policy, so a URL pointing into the
registry's own network is refused like any other unreachable registry.

Secrets are kept by the secret store (`stores/secrets.py`) and only a reference is on the record;
`client_for` is the one place a secret is read back, to hand it to an adapter.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.egress import EgressPolicy
from chalicelib.adapters.registry.base import Endpoint, RegistryAdapter, RegistryInfo
from chalicelib.adapters.registry.catalog import ADAPTERS, adapter_infos, adapter_types, create_adapter, session_for
from chalicelib.adapters.registry.errors import RemoteError
from chalicelib.core import registries as core
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.registries import Credential, Registry
from chalicelib.errors import BadRequest, Conflict, EgressRefused, NotFound, Precondition
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.stores.registries import RegistryStore
    from chalicelib.stores.secrets import SecretStore

# A check that says why registry `id` may not be deleted (a sentence), or None when it may.
InUseCheck = Callable[[int], str | None]
AdapterFactory = Callable[[Endpoint], RegistryAdapter]


@dataclass(frozen=True, slots=True)
class RegistryRequest:
    """What a create, an update or a ping asks for, after the route parsed it. `None` means "not
    given" (an update keeps the stored value; a ping by id keeps the registry's)."""

    name: str | None = None
    type: str | None = None
    url: str | None = None
    credential_type: str | None = None
    access_key: str | None = None
    access_secret: str | None = None
    insecure: bool | None = None
    description: str | None = None


class RegistryService:
    def __init__(
        self,
        store: RegistryStore,
        secrets: SecretStore,
        policy: EgressPolicy,
        *,
        timeout_seconds: float = 10.0,
        adapter_settings: dict[str, dict[str, str]] | None = None,
        adapter_factory: AdapterFactory | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._policy = policy
        self._timeout = timeout_seconds
        # Per type: overrides an operator sets for every registry of that type (Docker Hub's hosts,
        # ECR's API endpoint), so tests and air-gapped sites point them at their own doubles.
        self._adapter_settings = adapter_settings or {}
        self._adapter_factory = adapter_factory
        self._clock = clock
        self._in_use: list[InUseCheck] = []

    # Reading.

    def get(self, registry_id: int) -> Registry:
        registry = self._store.get(registry_id) if registry_id > 0 else None
        if registry is None:
            raise NotFound(f"registry {registry_id} not found")
        return registry

    def find(self, registry_id: int) -> Registry | None:
        return self._store.get(registry_id) if registry_id > 0 else None

    def get_by_name(self, name: str) -> Registry | None:
        return self._store.get_by_name(name)

    def list(self) -> list[Registry]:
        """Every registry, sorted by name."""
        return self._store.list()

    # Other services' hold on a registry.

    def register_in_use(self, check: InUseCheck) -> None:
        """`check(id)` returns why the registry may not be deleted (Harbor's sentence), or None.
        Replication policies and proxy-cache projects register one each."""
        self._in_use.append(check)

    def in_use(self, registry_id: int) -> str | None:
        for check in self._in_use:
            reason = check(registry_id)
            if reason:
                return reason
        return None

    # Adapters.

    def adapter_types(self) -> builtins.list[str]:
        return adapter_types()

    def adapter_infos(self) -> dict[str, dict[str, Any]]:
        return adapter_infos()

    def client_for(self, registry: Registry) -> RegistryAdapter:
        """The adapter of `registry`, with its secret resolved from the secret store."""
        secret = ""
        if registry.credential is not None and registry.credential.secret_ref:
            found = self._secrets.get(registry.credential.secret_ref)
            if found is None:
                raise BadRequest(f"the credential of registry {registry.name!r} is missing; set it again")
            secret = found
        return self._adapter(registry, secret)

    def _adapter(self, registry: Registry, secret: str) -> RegistryAdapter:
        credential = registry.credential
        endpoint = Endpoint(
            type=registry.type,
            url=registry.url,
            access_key=credential.access_key if credential is not None else "",
            access_secret=secret,
            insecure=registry.insecure,
            settings={**self._adapter_settings.get(registry.type, {}), **registry.settings},
        )
        if self._adapter_factory is not None:
            return self._adapter_factory(endpoint)
        return create_adapter(endpoint, session_for(endpoint, self._policy, self._timeout))

    def health(self, registry: Registry, secret: str | None = None) -> str:
        """`healthy` or `unhealthy` (Harbor's `IsHealthy`); `secret` overrides the stored one."""
        adapter = self._adapter(registry, secret) if secret is not None else self.client_for(registry)
        try:
            return adapter.health()
        finally:
            adapter.session.close()

    def _require_healthy(self, registry: Registry, secret: str | None) -> None:
        try:
            status = self.health(registry, secret)
        except EgressRefused:
            raise
        except RemoteError as exc:
            raise BadRequest(f"the registry is unhealthy: {exc.message}") from None
        if status != core.HEALTHY:
            raise BadRequest("the registry is unhealthy")

    # Writing.

    def create(self, request: RegistryRequest) -> Registry:
        """Validate, check the registry answers, store the secret, store the record (Harbor)."""
        name = core.validate_name(request.name or "")
        registry_type = self._validate_type(request.type or "")
        url = core.normalise_url(request.url or "")
        credential, secret = self._credential(request, None)
        candidate = Registry(0, name, registry_type, url, credential, bool(request.insecure),
                             _description(request.description), core.HEALTHY)  # fmt: skip
        if self._store.id_of(name) is not None:
            raise _conflict(name)
        self._require_healthy(candidate, secret or "")
        stored = self._keep_secret(candidate, secret)
        try:
            return self._store.create(stored)
        except Exception:
            self._forget_secret(stored.credential, None)
            raise

    def update(self, registry_id: int, request: RegistryRequest) -> Registry:
        """Harbor's update: the given fields replace the stored ones, then the whole registry is
        validated and checked again. A new secret replaces the stored one; none keeps it."""
        current = self.get(registry_id)
        name = core.validate_name(request.name if request.name is not None else current.name)
        url = core.normalise_url(request.url if request.url is not None else current.url)
        credential, secret = self._credential(request, current.credential)
        candidate = replace(
            current, name=name, url=url, credential=credential,
            insecure=current.insecure if request.insecure is None else request.insecure,
            description=current.description if request.description is None else _description(request.description),
            status=core.HEALTHY,
        )  # fmt: skip
        if name != current.name and self._store.id_of(name) is not None:
            raise _conflict(name)
        if secret is None and credential is not None and credential.secret_ref:
            self._require_healthy(candidate, None)
        else:
            self._require_healthy(candidate, secret or "")
        stored = self._keep_secret(candidate, secret)
        updated = self._store.update(current, stored)
        self._forget_secret(current.credential, updated.credential)
        return updated

    def delete(self, registry_id: int) -> Registry:
        registry = self.get(registry_id)
        reason = self.in_use(registry_id)
        if reason:
            raise Precondition(reason)
        if not self._store.delete(registry):
            raise NotFound(f"registry {registry_id} not found")
        self._forget_secret(registry.credential, None)
        return registry

    def ping(self, registry_id: int | None, request: RegistryRequest) -> None:
        """Harbor's ping: a stored registry (by id) with any field of the body overriding it, or a
        registry described wholly by the body. 400 "the registry is unhealthy" when it does not
        answer as it should."""
        base = self.get(registry_id) if registry_id is not None else None
        registry_type = request.type if request.type is not None else (base.type if base else "")
        url = core.normalise_url(request.url) if request.url is not None else (base.url if base else "")
        if not registry_type or not url:
            raise BadRequest("type or url cannot be empty")
        self._validate_type(registry_type)
        current = base.credential if base is not None else None
        credential, secret = self._credential(request, current, ping=True)
        insecure = request.insecure if request.insecure is not None else (base.insecure if base else False)
        candidate = Registry(base.id if base else 0, base.name if base else "", registry_type, url, credential,
                             insecure, settings=base.settings if base else {})  # fmt: skip
        if secret is None and credential is not None and credential.secret_ref:
            self._require_healthy(candidate, None)
        else:
            self._require_healthy(candidate, secret or "")

    def info(self, registry_id: int) -> dict[str, Any]:
        """`/registries/{id}/info`: the filters and triggers a policy on this registry may use,
        with Harbor's resource filter (a radio of the resource types) last."""
        registry = self.get(registry_id)
        adapter_type = ADAPTERS.get(registry.type)
        if adapter_type is None:
            raise BadRequest(f"unsupported registry type {registry.type!r}")
        wire = _info_wire(adapter_type)
        return wire

    # Health on a schedule.

    def refresh_health(self) -> dict[str, str]:
        """Check every registry and record a changed status (Harbor's regular health check).
        One registry's failure never stops the others. Returns id -> status for the log."""
        results: dict[str, str] = {}
        for registry in self.list():
            try:
                status = self.health(registry)
            except Exception as exc:  # a registry that cannot even be asked is unhealthy
                logger.info("registry health check failed", extra={"registry_id": registry.id, "error": str(exc)})
                status = core.UNHEALTHY
            results[str(registry.id)] = status
            if status != registry.status:
                self._store.set_status(registry.id, status)
        return results

    # Helpers.

    def _validate_type(self, registry_type: str) -> str:
        types: builtins.list[str] = self.adapter_types()
        if registry_type not in types:
            raise BadRequest(f"invalid registry type {registry_type!r}: must be one of {', '.join(types)}")
        return registry_type

    def _credential(
        self, request: RegistryRequest, current: Credential | None, *, ping: bool = False
    ) -> tuple[Credential | None, str | None]:
        """The credential the request leaves, and the new secret (None: keep the stored one)."""
        given = (request.credential_type, request.access_key, request.access_secret)
        if all(value is None for value in given):
            return current, None
        base = current or Credential()
        credential_type = core.validate_credential_type(
            request.credential_type if request.credential_type is not None else base.type
        )
        access_key = request.access_key if request.access_key is not None else base.access_key
        if len(access_key) > core.MAX_ACCESS_KEY_LENGTH:
            raise BadRequest(f"the access key is longer than {core.MAX_ACCESS_KEY_LENGTH} characters")
        secret = request.access_secret
        if secret == core.MASKED_SECRET:  # the UI sends back what it was shown: keep the stored one
            secret = None
        if secret is not None and len(secret) > core.MAX_SECRET_LENGTH:
            raise BadRequest(f"the access secret is longer than {core.MAX_SECRET_LENGTH} characters")
        if not access_key and not secret:
            return (Credential(credential_type) if not ping else None), ""
        ref = base.secret_ref if secret is None else ""
        return Credential(credential_type, access_key, ref), secret

    def _keep_secret(self, registry: Registry, secret: str | None) -> Registry:
        if registry.credential is None or not secret:
            if registry.credential is not None and secret == "":
                return replace(registry, credential=replace(registry.credential, secret_ref=""))
            return registry
        owner = f"registry/{registry.name}"
        ref = self._secrets.put(_owner(owner), secret)
        return replace(registry, credential=replace(registry.credential, secret_ref=ref))

    def _forget_secret(self, old: Credential | None, new: Credential | None) -> None:
        if old is None or not old.secret_ref:
            return
        if new is not None and new.secret_ref == old.secret_ref:
            return
        try:
            self._secrets.delete(old.secret_ref)
        except Exception as exc:  # a secret left behind is logged, never fails the call
            logger.warning("could not delete a replaced registry secret", extra={"error": str(exc)})

    def iter_health(self) -> Iterator[tuple[Registry, str]]:
        for registry in self.list():
            yield registry, self.health(registry)


def _owner(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "/_+=.@-") else "-" for c in name)[:200]


def _description(value: str | None) -> str:
    text = value or ""
    if len(text) > core.MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"the description is longer than {core.MAX_DESCRIPTION_LENGTH} characters")
    return text


def _conflict(name: str) -> Exception:
    return Conflict(f"registry {name!r} already exists")


def _info_wire(adapter_type: Any) -> dict[str, Any]:
    info = RegistryInfo(adapter_type.type, adapter_type.filters, adapter_type.triggers,
                        adapter_type.path_components, adapter_type.copy_by_chunk, adapter_type.description)  # fmt: skip
    wire = info.wire()
    filters = [f for f in wire["supported_resource_filters"] if f.get("type") != "resource"]
    filters.append({"type": "resource", "style": "radio", "values": ["image"]})
    wire["supported_resource_filters"] = filters
    return wire
