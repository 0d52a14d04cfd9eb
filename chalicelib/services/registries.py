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
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.egress import EgressPolicy, EgressSession
from chalicelib.adapters.registry.base import (
    EVENT_BASED,
    MANUAL,
    SCHEDULED,
    STYLE_INPUT,
    STYLE_LIST,
    STYLE_RADIO,
    Endpoint,
    FilterStyle,
    RegistryAdapter,
)
from chalicelib.adapters.registry.catalog import ADAPTERS, adapter_infos, adapter_types, create_adapter
from chalicelib.adapters.registry.client import ClientOptions
from chalicelib.adapters.registry.errors import RemoteError
from chalicelib.adapters.registry.transport import RetryPolicy
from chalicelib.core import registries as core
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.registries import Credential, Registry
from chalicelib.errors import BadRequest, Conflict, EgressRefused, NotFound
from chalicelib.events import EventBus, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.stores.registries import RegistryStore
    from chalicelib.stores.secrets import SecretStore

# A health check (a ping, the check before a save, the scheduled one) is one attempt that waits out
# no 429: it answers an API call, and Harbor's check is one attempt too.
HEALTH_OPTIONS = ClientOptions(retry=RetryPolicy(attempts=1, max_retry_after_seconds=0, rate_limit_waits=0))

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
    ca_certificate: str | None = None


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
        events: EventBus | None = None,
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
        self._events = events  # audit entries of creates, updates and deletes
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

    def require_proxyable(self, registry_id: int) -> Registry:
        """The registry a proxy-cache project may pull through: it exists (400 otherwise, the
        project body names it) and its type is one Harbor lets a project proxy."""
        if registry_id <= 0:
            raise BadRequest(f"{registry_id} is invalid value of registry_id, it should be greater than 0")
        registry = self.find(registry_id)
        if registry is None:
            raise BadRequest(f"registry {registry_id} not found")
        if registry.type not in core.PROXY_CACHE_TYPES:
            raise BadRequest(f"unsupported registry type {registry.type}")
        return registry

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

    def client_for(self, registry: Registry, options: ClientOptions | None = None) -> RegistryAdapter:
        """The adapter of `registry`, with its secret resolved from the secret store (the one
        place a stored secret is read back). The caller closes `adapter.session` when done."""
        return self._adapter(registry, self._stored_secret(registry), options)

    def _stored_secret(self, registry: Registry) -> str:
        if registry.credential is None or not registry.credential.secret_ref:
            return ""
        return self._read(registry.credential.secret_ref, f"the stored credential of registry {registry.name!r}")

    def _adapter(self, registry: Registry, secret: str, options: ClientOptions | None = None) -> RegistryAdapter:
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
        session = EgressSession(self._policy, self._timeout, verify=not registry.insecure,
                                ca_certificates=registry.ca_certificate or None)  # fmt: skip
        return create_adapter(endpoint, session, options=options)

    def health(self, registry: Registry, secret: str | None = None) -> str:
        """`healthy` or `unhealthy` (Harbor's `IsHealthy`); `secret` overrides the stored one."""
        adapter = self._adapter(registry, self._stored_secret(registry) if secret is None else secret, HEALTH_OPTIONS)
        try:
            return adapter.health()
        finally:
            adapter.session.close()

    def _require_healthy(self, registry: Registry, secret: str) -> None:
        """Harbor's check before a registry is stored or a ping answers: 400 "the registry is
        unhealthy" (with what went wrong, when the adapter could tell) unless it answers with the
        credentials. A URL the egress policy refuses is a 400 of its own."""
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
        """Harbor's create: validate, check the registry answers with the credentials, keep the
        secret, store the record."""
        name = core.validate_name(request.name or "")
        registry_type = self._validate_type(request.type or "")
        url = core.normalise_url(request.url or "")
        ca = core.validate_ca_certificate(request.ca_certificate or "")
        working = _Working.given(request)
        candidate = Registry(0, name, registry_type, url, working.credential(), bool(request.insecure),
                             _description(request.description), core.HEALTHY, ca_certificate=ca)  # fmt: skip
        if self._store.id_of(name) is not None:
            raise _conflict(name)
        self._require_healthy(candidate, self._secret_of(working))
        stored = self._keep(candidate, working)
        try:
            created = self._store.create(stored)
        except Exception:
            self._forget(stored.credential, None)
            raise
        self._audit(EventType.CREATE_REGISTRY, created)
        return created

    def update(self, registry_id: int, request: RegistryRequest) -> Registry:
        """Harbor's update: the given fields replace the stored ones, then the whole registry is
        validated and checked again. No new secret keeps the stored one, unless the URL changes:
        then the stored secret is dropped (Harbor's rule, so a changed URL cannot carry the old
        password to another host), and the registry must answer without it."""
        if registry_id <= 0:
            raise NotFound(f"registry {registry_id} not found")
        current = self.get(registry_id)
        name = core.validate_name(request.name if request.name is not None else current.name)
        url = core.normalise_url(request.url) if request.url is not None else current.url
        ca = (
            current.ca_certificate
            if request.ca_certificate is None
            else core.validate_ca_certificate(request.ca_certificate)
        )
        working = _Working.stored(current.credential).override(request)
        if url != current.url and request.access_secret is None:
            working = replace(working, secret="", ref="")
        candidate = replace(
            current, name=name, url=url, credential=working.credential(), ca_certificate=ca,
            insecure=current.insecure if request.insecure is None else request.insecure,
            description=current.description if request.description is None else _description(request.description),
            status=core.HEALTHY,
        )  # fmt: skip
        if name != current.name and self._store.id_of(name) is not None:
            raise _conflict(name)
        self._require_healthy(candidate, self._secret_of(working))
        stored = self._keep(candidate, working)
        try:
            updated = self._store.update(current, stored)
        except Exception:
            self._forget(stored.credential, current.credential)
            raise
        self._forget(current.credential, updated.credential)
        self._audit(EventType.UPDATE_REGISTRY, updated)
        return updated

    def delete(self, registry_id: int) -> Registry:
        """Refused with 409 CONFLICT while a replication policy or a proxy-cache project uses the
        registry (Harbor's messages; Harbor answers 412 PRECONDITION there): the registry is in a
        state that conflicts with the request, which is what 409 means to a client."""
        registry = self.get(registry_id)
        reason = self.in_use(registry_id)
        if reason:
            raise Conflict(reason)
        if not self._store.delete(registry):
            raise NotFound(f"registry {registry_id} not found")
        self._forget(registry.credential, None)
        self._audit(EventType.DELETE_REGISTRY, registry)
        return registry

    def _audit(self, event_type: EventType, registry: Registry) -> None:
        if self._events is not None:
            self._events.emit(event_type, resource_type="registry", resource=registry.name,
                              detail={"registry_id": registry.id})  # fmt: skip

    def ping(self, registry_id: int | None, request: RegistryRequest) -> None:
        """Harbor's ping. By id: the stored registry, whose type and credentials the body may
        override but not its URL, `insecure` or CA (so a ping cannot send the stored secret to
        another host). Without an id: the registry the body describes. 400 "type or url cannot be
        empty", or "the registry is unhealthy" when it does not answer as it should."""
        if registry_id is not None:
            base = self.get(registry_id)
            registry_type = request.type if request.type is not None else base.type
            working = _Working.stored(base.credential).override(request)
            candidate = replace(base, type=registry_type, credential=working.credential())
        else:
            url = core.normalise_url(request.url) if request.url else ""
            registry_type = request.type or ""
            if not registry_type or not url:
                raise BadRequest("type or url cannot be empty")
            working = _Working.given(request)
            candidate = Registry(0, "", registry_type, url, working.credential(), bool(request.insecure),
                                 ca_certificate=core.validate_ca_certificate(request.ca_certificate or ""))  # fmt: skip
        if not candidate.type or not candidate.url:
            raise BadRequest("type or url cannot be empty")
        self._validate_type(candidate.type)
        self._require_healthy(candidate, self._secret_of(working))

    def info(self, registry_id: int) -> dict[str, Any]:
        """`/registries/{id}/info` (Harbor's shape): the filters a policy on this registry may use,
        with the resource filter (a radio of the resource types) last, its triggers, and
        `supported_copy_by_chunk` only when true. Nothing is asked of the remote."""
        registry = self.get(registry_id)
        adapter_type = ADAPTERS.get(registry.type)
        if adapter_type is None:
            raise BadRequest(f"unsupported registry type {registry.type!r}")
        return registry_info(adapter_type.type, adapter_type.description, adapter_type.filters,
                             tuple(t for t in adapter_type.triggers if t != EVENT_BASED),
                             adapter_type.copy_by_chunk)  # fmt: skip

    @staticmethod
    def local_info(labels: builtins.list[str]) -> dict[str, Any]:
        """`/registries/0/info`: this registry itself (Harbor's "Local"), the source of push-based
        policies: name, tag and label filters (the global labels), and event-based triggers."""
        filters = (FilterStyle("name", STYLE_INPUT), FilterStyle("tag", STYLE_INPUT),
                   FilterStyle("label", STYLE_LIST, tuple(labels)))  # fmt: skip
        return registry_info("harbor", "", filters, (MANUAL, SCHEDULED, EVENT_BASED), True)

    @staticmethod
    def local_registry(url: str) -> dict[str, Any]:
        """`/registries/0`: Harbor's "Local" registry (its manager answers id 0 with this registry
        itself, never stored): type `harbor`, healthy, a `secret` credential whose value is
        masked, `insecure` when reached over plain HTTP, Go's zero time for both times."""
        return {
            "id": 0,
            "name": core.LOCAL_NAME,
            "type": "harbor",
            "url": url,
            "credential": {"type": "secret", "access_secret": core.MASKED_SECRET},
            "insecure": url.startswith("http://"),
            "description": "",
            "status": core.HEALTHY,
            "creation_time": core.GO_ZERO_TIME,
            "update_time": core.GO_ZERO_TIME,
        }

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

    def _secret_of(self, working: _Working) -> str:
        """The secret to try: the one given, else the stored one (a missing stored one is a 400)."""
        if working.secret is not None:
            return working.secret
        if not working.ref:
            return ""
        return self._read(working.ref, "the stored credential of this registry")

    def _read(self, reference: str, what: str) -> str:
        try:
            return self._secrets.get(reference)
        except NotFound:
            raise BadRequest(f"{what} is missing; set access_secret again") from None

    def _keep(self, registry: Registry, working: _Working) -> Registry:
        """`registry` with its credential as stored: a new secret kept in the secret store (its
        reference on the record), a stored one referenced as before, none when there is no key."""
        if registry.credential is None:
            return registry
        if working.secret is None:
            return registry  # the stored reference, unchanged
        if not working.secret:
            return replace(registry, credential=replace(registry.credential, secret_ref=""))
        # A name of its own per secret: two racing creates of one registry name, or an update racing
        # another, never write (and then delete) the same secret.
        ref = self._secrets.put(_owner(f"registry/{registry.name}/{token_hex(6)}"), working.secret)
        return replace(registry, credential=replace(registry.credential, secret_ref=ref))

    def _forget(self, old: Credential | None, new: Credential | None) -> None:
        """Delete `old`'s secret unless `new` still uses it; a failure is logged, not raised (the
        record is already right; a leftover secret is only storage)."""
        if old is None or not old.secret_ref:
            return
        if new is not None and new.secret_ref == old.secret_ref:
            return
        try:
            self._secrets.delete(old.secret_ref)
        except Exception as exc:  # a secret left behind is logged, never fails the call
            logger.warning("could not delete a replaced registry secret", extra={"error": type(exc).__name__})

    def iter_health(self) -> Iterator[tuple[Registry, str]]:
        for registry in self.list():
            yield registry, self.health(registry)


@dataclass(frozen=True, slots=True)
class _Working:
    """The credential a create, update or ping works with: `secret` None means "the stored one"
    (`ref`), "" means none."""

    type: str = core.CREDENTIAL_BASIC
    access_key: str = ""
    secret: str | None = ""
    ref: str = ""

    @classmethod
    def given(cls, request: RegistryRequest) -> _Working:
        return cls().override(request)

    @classmethod
    def stored(cls, credential: Credential | None) -> _Working:
        if credential is None:
            return cls()
        return cls(credential.type, credential.access_key, None if credential.secret_ref else "", credential.secret_ref)

    def override(self, request: RegistryRequest) -> _Working:
        working = self
        if request.credential_type is not None:
            kind = request.credential_type or core.CREDENTIAL_BASIC  # Harbor stores "" as basic
            working = replace(working, type=core.validate_credential_type(kind))
        if request.access_key is not None:
            if len(request.access_key) > core.MAX_ACCESS_KEY_LENGTH:
                raise BadRequest(f"the access key is longer than {core.MAX_ACCESS_KEY_LENGTH} characters")
            working = replace(working, access_key=request.access_key)
        secret = request.access_secret
        if secret is not None and secret != core.MASKED_SECRET:  # the mask sent back keeps the stored one
            if len(secret) > core.MAX_SECRET_LENGTH:
                raise BadRequest(f"the access secret is longer than {core.MAX_SECRET_LENGTH} characters")
            working = replace(working, secret=secret)
        return working

    def credential(self) -> Credential | None:
        """What the record keeps: nothing without an access key (Harbor keeps a credential only
        with one), else the type, the key and the stored reference (`_keep` sets a new one)."""
        if not self.access_key:
            return None
        return Credential(self.type, self.access_key, self.ref if self.secret is None else "")


def registry_info(
    registry_type: str,
    description: str,
    filters: tuple[FilterStyle, ...],
    triggers: tuple[str, ...],
    copy_by_chunk: bool,
) -> dict[str, Any]:
    """Harbor's `RegistryInfo` (after its `process`): the type's own filters, the resource filter
    (a radio of "image", the one resource type every adapter here copies) last."""
    kept = [f.wire() for f in filters if f.type != "resource"]
    kept.append({"type": "resource", "style": STYLE_RADIO, "values": ["image"]})
    out: dict[str, Any] = {
        "type": registry_type,
        "description": description,
        "supported_resource_filters": kept,
        "supported_triggers": list(triggers),
    }
    if copy_by_chunk:
        out["supported_copy_by_chunk"] = True
    return out


def _owner(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "/_+=.@-") else "-" for c in name)[:200]


def _description(value: str | None) -> str:
    text = value or ""
    if len(text) > core.MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"the description is longer than {core.MAX_DESCRIPTION_LENGTH} characters")
    return text


def _conflict(name: str) -> Exception:
    return Conflict(f"registry {name!r} already exists")
