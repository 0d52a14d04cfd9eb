"""Scanner registrations: which adapters the registry may send scans to, and which one a project uses.

Harbor's rules, kept here:
- A registration is validated (name, http(s) URL, auth type with its credential) and the adapter
  must answer a valid `/metadata` before it is created: a registration that cannot scan is refused.
- Names and URLs are unique; the first registration becomes the default; there is at most one
  default and it cannot be disabled; `Trivy` is a reserved name; an immutable registration (the
  one the deployment registers itself) cannot be changed or deleted through the API.
- A project uses the registration it chose, else the default, else none; a choice naming a
  registration that is gone is forgotten.
- Reads ask the adapter for its metadata (cached for 30 s per registration, failures too, as
  Harbor does) to fill `health`, adapter name, vendor, version and capabilities.

Credentials are handed to the secret store on write; records hold only a reference, and only
`client_for` resolves it. The default registration cannot be deleted (set another default first):
scans, scan-all and the pull gate rely on there being a default once one was configured.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chalicelib.adapters.scanner_client import ScannerClient, ScannerEndpoint, ScannerError
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.scanners import (
    HEALTHY,
    RESERVED_NAMES,
    UNHEALTHY,
    AuthType,
    Capabilities,
    InvalidRegistration,
    RegistrationStatus,
    ScannerRegistration,
    validate,
)
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound
from chalicelib.events import Event, EventType
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.adapters.egress import EgressPolicy
    from chalicelib.adapters.scanner_api import ScannerMetadata
    from chalicelib.events import EventBus
    from chalicelib.stores.scanners import ScannerStore
    from chalicelib.stores.secrets import SecretStore

METADATA_CACHE_SECONDS = 30.0
_SAVE_ATTEMPTS = 5
BUILTIN_DESCRIPTION = "the built-in osv-lite adapter"


@dataclass(frozen=True, slots=True)
class RegistrationChange:
    """What a create or update sets. `credential` None on an update keeps the stored one (Harbor:
    GET never returns it, so a client sending the record back sends no credential)."""

    name: str
    url: str
    auth: AuthType = ""
    credential: str | None = None
    description: str = ""
    disabled: bool = False
    skip_cert_verify: bool = False
    use_internal_addr: bool = False


class ScannerService:
    def __init__(
        self,
        store: ScannerStore,
        secrets: SecretStore,
        egress: Callable[[], EgressPolicy],
        events: EventBus | None = None,
        *,
        metadata_cache_seconds: float = METADATA_CACHE_SECONDS,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._egress = egress
        self._events = events
        self._cache_seconds = metadata_cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str, str, str | None, bool], tuple[float, ScannerMetadata | str]] = {}
        self._lock = threading.Lock()

    # Reading.

    def all(self) -> list[ScannerRegistration]:
        """Every registration, oldest first (Harbor's default order: by id)."""
        registrations, _ = self._store.load()
        return sorted(registrations, key=lambda r: (r.create_time, r.name))

    def get(self, uuid: str) -> ScannerRegistration | None:
        registrations, _ = self._store.load()
        return next((r for r in registrations if r.uuid == uuid), None)

    def require(self, uuid: str) -> ScannerRegistration:
        found = self.get(uuid)
        if found is None:
            raise NotFound(f"scanner {uuid} not found")
        return found

    def default(self) -> ScannerRegistration | None:
        registrations, _ = self._store.load()
        return next((r for r in registrations if r.is_default), None)

    def for_project(self, project_id: int) -> ScannerRegistration | None:
        """The project's own choice, else the default, else None (one BatchGetItem)."""
        registrations, chosen = self._store.load_for_project(project_id)
        if chosen is not None:
            found = next((r for r in registrations if r.uuid == chosen), None)
            if found is not None:
                return found
            self._store.clear_project_choice(project_id, if_registration=chosen)  # deleted since: forget it
        return next((r for r in registrations if r.is_default), None)

    def client_for(self, registration: ScannerRegistration) -> ScannerClient:
        """The adapter's client with the registration's credential resolved from the secret store."""
        credential = ""
        if registration.auth and registration.credential_ref:
            credential = self._secrets.get(registration.credential_ref)
        endpoint = ScannerEndpoint(registration.url, registration.auth, credential, registration.skip_cert_verify)
        return ScannerClient(self._egress(), endpoint)

    def metadata(self, registration: ScannerRegistration) -> ScannerMetadata:
        """The adapter's validated metadata (cached briefly, failures too); BadRequest when the
        adapter cannot be reached or answers what Harbor would refuse."""
        # Everything the answer depends on: an update within the same second is not served stale.
        key = (registration.uuid, registration.url, registration.auth, registration.credential_ref,
               registration.skip_cert_verify)  # fmt: skip
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or now - cached[0] >= self._cache_seconds:
            cached = (now, self._fetch(registration))
            with self._lock:
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._cache_seconds}
                self._cache[key] = cached
        result = cached[1]
        if isinstance(result, str):
            raise BadRequest(result)
        return result

    def status(self, registration: ScannerRegistration) -> RegistrationStatus:
        """Health, adapter, vendor, version and capabilities, as Harbor fills them on a read."""
        try:
            meta = self.metadata(registration)
        except (BadRequest, NotFound):
            return RegistrationStatus(health=UNHEALTHY)
        return RegistrationStatus(
            health=HEALTHY, adapter=meta.name, vendor=meta.vendor, version=meta.version,
            capabilities=Capabilities(meta.supports_vulnerability, meta.supports_sbom),
        )  # fmt: skip

    def ping(self, change: RegistrationChange) -> ScannerMetadata:
        """POST /scanners/ping: validate the settings and fetch the adapter's metadata, nothing stored."""
        candidate = self._validated(ScannerRegistration(uuid="", name=change.name, url=change.url, auth=change.auth),
                                    change.credential)  # fmt: skip
        result = self._fetch(candidate, change.credential or "")
        if isinstance(result, str):
            raise BadRequest(result)
        return result

    # Writing.

    def create(self, change: RegistrationChange) -> ScannerRegistration:
        if change.name in RESERVED_NAMES:
            raise BadRequest(f'name "{change.name}" is reserved, please try a different name')
        now = int(self._clock())
        candidate = self._validated(
            ScannerRegistration(
                uuid=str(uuidlib.uuid4()), name=change.name, url=change.url, auth=change.auth,
                description=change.description, disabled=change.disabled, skip_cert_verify=change.skip_cert_verify,
                use_internal_addr=change.use_internal_addr, create_time=now, update_time=now,
            ),
            change.credential,
        )  # fmt: skip
        self._check_unique(self._store.load()[0], candidate)  # before calling the adapter or storing a secret
        result = self._fetch(candidate, change.credential or "")
        if isinstance(result, str):
            raise BadRequest(result)
        reference = self._keep_secret(candidate, change.credential)
        created = replace(candidate, credential_ref=reference)
        try:
            created = self._change(lambda regs: self._add(regs, created))
        except Exception:
            if reference is not None:
                self._secrets.delete(reference)
            raise
        self._publish(EventType.CREATE_SCANNER, created)
        return created

    def update(self, uuid: str, change: RegistrationChange) -> ScannerRegistration:
        current = self.require(uuid)
        if current.immutable:
            raise Forbidden(
                f"registration {current.name} is not allowed to update as it is immutable: scanner API: update"
            )
        if change.name in RESERVED_NAMES:
            raise BadRequest(f'name "{change.name}" is reserved, please try a different name')
        keep = change.credential is None or change.credential == ""
        candidate = self._validated(
            replace(
                current, name=change.name, url=change.url, auth=change.auth, description=change.description,
                disabled=change.disabled, skip_cert_verify=change.skip_cert_verify,
                use_internal_addr=change.use_internal_addr, update_time=int(self._clock()),
                credential_ref=current.credential_ref if keep and change.auth else None,
            ),
            None if keep else change.credential,
        )  # fmt: skip
        reference = None if keep else self._keep_secret(candidate, change.credential)
        if reference is not None:
            candidate = replace(candidate, credential_ref=reference)
        try:
            updated = self._change(lambda regs: self._replace(regs, candidate))
        except Exception:
            if reference is not None:
                self._secrets.delete(reference)
            raise
        if current.credential_ref and current.credential_ref != updated.credential_ref:
            self._secrets.delete(current.credential_ref)
        self._publish(EventType.UPDATE_SCANNER, updated)
        return updated

    def delete(self, uuid: str) -> ScannerRegistration:
        current = self.require(uuid)
        if current.immutable:
            raise Forbidden(
                f"registration {current.name} is not allowed to delete as it is immutable: scanner API: delete"
            )
        if current.is_default:
            raise Forbidden(f"registration {current.name} is the default scanner: set another default first")

        def remove(registrations: list[ScannerRegistration]) -> tuple[list[ScannerRegistration], ScannerRegistration]:
            found = next((r for r in registrations if r.uuid == uuid), None)
            if found is None:
                raise NotFound(f"scanner {uuid} not found")
            if found.is_default:
                raise Forbidden(f"registration {found.name} is the default scanner: set another default first")
            return [r for r in registrations if r.uuid != uuid], found

        deleted = self._change(remove)
        if deleted.credential_ref:
            self._secrets.delete(deleted.credential_ref)
        self._publish(EventType.DELETE_SCANNER, deleted)
        return deleted

    def set_default(self, uuid: str) -> ScannerRegistration:
        def mark(registrations: list[ScannerRegistration]) -> tuple[list[ScannerRegistration], ScannerRegistration]:
            found = next((r for r in registrations if r.uuid == uuid), None)
            if found is None or found.disabled:  # Harbor: only an enabled registration is found here
                raise NotFound(f"registration {uuid} not found")
            now = int(self._clock())
            out = [replace(r, is_default=r.uuid == uuid, update_time=now if r.is_default != (r.uuid == uuid)
                           else r.update_time) for r in registrations]  # fmt: skip
            return out, next(r for r in out if r.uuid == uuid)

        before = self.get(uuid)
        updated = self._change(mark)
        if before is not None and not before.is_default:
            self._publish(EventType.UPDATE_SCANNER, updated)
        return updated

    def set_project(self, project_id: int, project_name: str, uuid: str) -> ScannerRegistration:
        """PUT /projects/{p}/scanner: the registration must exist (Harbor stores any uuid and
        forgets it on the next read; a 404 tells the caller at once). A disabled one may be chosen,
        as in Harbor: the project's scans then fail their precondition until it is enabled."""
        registration = self.get(uuid)
        if registration is None:
            raise NotFound(f"scanner {uuid} not found")
        self._store.set_project_choice(project_id, uuid)
        if self._events is not None:
            self._events.emit(EventType.UPDATE_SCANNER, project=project_name, resource_type="scanner",
                              resource=registration.name, detail={"project_id": project_id})  # fmt: skip
        return registration

    def forget_project(self, event: Event) -> None:
        """A deleted project's choice goes with it (event subscriber)."""
        project_id = event.detail.get("project_id")
        if event.type is EventType.DELETE_PROJECT and isinstance(project_id, int) and project_id > 0:
            self._store.clear_project_choice(project_id)

    def ensure_builtin(self, name: str, url: str, credential: str) -> ScannerRegistration:
        """Register (or bring up to date) the deployment's own adapter: immutable, API-key
        authenticated, and the default when no other default exists. Idempotent: a start with the
        same URL and key writes nothing."""

        def ensure(registrations: list[ScannerRegistration]) -> tuple[list[ScannerRegistration], ScannerRegistration]:
            existing = next((r for r in registrations if r.name == name), None)
            # Another registration of the same address is a stale one of this adapter: it goes.
            has_default = any(r.is_default for r in registrations if r.name != name and r.url != url)
            now = int(self._clock())
            if existing is None:
                record = ScannerRegistration(
                    uuid=str(uuidlib.uuid4()), name=name, url=url, auth="APIKey", description=BUILTIN_DESCRIPTION,
                    is_default=not has_default, create_time=now, update_time=now, immutable=True,
                )  # fmt: skip
                others = [r for r in registrations if r.url != url]  # a stale registration of the same address
                return [*others, record], record
            record = replace(existing, url=url, auth="APIKey", immutable=True, disabled=False,
                             is_default=existing.is_default or not has_default, update_time=now)  # fmt: skip
            kept = [r for r in registrations if r.url != url or r is existing]
            return [record if r.uuid == existing.uuid else r for r in kept], record

        current = next((r for r in self.all() if r.name == name), None)
        if current is not None and current.url == url and current.credential_ref and current.immutable:
            try:
                if self._secrets.get(current.credential_ref) == credential:
                    return current
            except NotFound:
                pass
        result = self._change(ensure)
        reference = self._secrets.put(f"scanner-{result.uuid}", credential)
        previous = result.credential_ref

        def with_reference(
            registrations: list[ScannerRegistration],
        ) -> tuple[list[ScannerRegistration], ScannerRegistration]:
            out = [replace(r, credential_ref=reference) if r.uuid == result.uuid else r for r in registrations]
            return out, next(r for r in out if r.uuid == result.uuid)

        stored = self._change(with_reference)
        if previous and previous != reference:
            self._secrets.delete(previous)
        return stored

    # Helpers.

    def _validated(self, registration: ScannerRegistration, credential: str | None) -> ScannerRegistration:
        try:
            return validate(registration, credential=credential)
        except InvalidRegistration as failure:
            raise BadRequest(str(failure)) from None

    def _fetch(self, registration: ScannerRegistration, credential: str | None = None) -> ScannerMetadata | str:
        """The adapter's metadata, or the reason it could not be had (a message, never raised)."""
        try:
            if credential is None:
                client = self.client_for(registration)
            else:
                endpoint = ScannerEndpoint(registration.url, registration.auth, credential,
                                           registration.skip_cert_verify)  # fmt: skip
                client = ScannerClient(self._egress(), endpoint)
            return client.metadata()
        except ScannerError as failure:
            return f"scanner controller: ping: {failure}"
        except (BadRequest, NotFound) as failure:
            return f"scanner controller: ping: {failure.message}"
        except Exception:  # a secret store or client failure must not break a listing
            logger.exception("scanner metadata failed", extra={"scanner": registration.name})
            return "scanner controller: ping: the scanner's metadata could not be fetched"

    def _keep_secret(self, registration: ScannerRegistration, credential: str | None) -> str | None:
        if not registration.auth or not credential:
            return None
        return self._secrets.put(f"scanner-{registration.uuid}", credential)

    @staticmethod
    def _check_unique(registrations: list[ScannerRegistration], candidate: ScannerRegistration) -> None:
        for other in registrations:
            if other.uuid == candidate.uuid:
                continue
            if other.name == candidate.name:
                raise Conflict(f"scanner registration name {candidate.name} already exists")
            if other.url == candidate.url:
                raise Conflict(f"scanner registration url {candidate.url} already exists")

    def _add(
        self, registrations: list[ScannerRegistration], created: ScannerRegistration
    ) -> tuple[list[ScannerRegistration], ScannerRegistration]:
        self._check_unique(registrations, created)
        if not any(r.is_default for r in registrations) and not created.disabled:
            created = replace(created, is_default=True)  # Harbor: the first registration is the default
        return [*registrations, created], created

    def _replace(
        self, registrations: list[ScannerRegistration], candidate: ScannerRegistration
    ) -> tuple[list[ScannerRegistration], ScannerRegistration]:
        current = next((r for r in registrations if r.uuid == candidate.uuid), None)
        if current is None:
            raise NotFound(f"scanner {candidate.uuid} not found")
        updated = replace(candidate, is_default=current.is_default)
        if updated.is_default and updated.disabled:
            raise BadRequest(f"default registration {updated.uuid} can not be marked to deactivated")
        self._check_unique(registrations, updated)
        return [updated if r.uuid == updated.uuid else r for r in registrations], updated

    def _change(
        self,
        change: Callable[[list[ScannerRegistration]], tuple[list[ScannerRegistration], ScannerRegistration]],
    ) -> ScannerRegistration:
        """Read, change and put back conditionally; retried when another writer came first."""
        for attempt in range(_SAVE_ATTEMPTS):
            registrations, version = self._store.load()
            updated, result = change(registrations)
            try:
                self._store.save(updated, version)
            except Conflict:
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
                continue
            return result
        raise Conflict("the scanner registrations changed concurrently")  # pragma: no cover (loop returns)

    def _publish(self, event_type: EventType, registration: ScannerRegistration) -> None:
        if self._events is not None:
            self._events.emit(event_type, resource_type="scanner", resource=registration.name)
