"""Scanner registrations: the adapters (Trivy, the built-in osv-lite) the registry may send scans to.

A registration names an adapter's base URL and how the registry authenticates to it. The secret
itself never lives on the record: `credential_ref` is a reference the secret store resolves (a
Secrets Manager ARN on AWS, a local encrypted secret under `make serve`), so a record can be
logged, cached, compared and returned without ever holding the credential.

`auth` is one of `""`, `Basic`, `Bearer` and `APIKey` (Harbor's stored values; `APIKey` sends the
key in `X-ScannerAdapter-API-Key`). Older Harbor releases took the header's name as the auth type,
and Harbor's API description still names it, so it is accepted as `APIKey` on input.

Pure: no I/O, no settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

AuthType = Literal["", "Basic", "Bearer", "APIKey"]
AUTH_TYPES: tuple[AuthType, ...] = ("", "Basic", "Bearer", "APIKey")
API_KEY_HEADER = "X-ScannerAdapter-API-Key"

NAME_MAX = 128  # Harbor's column sizes
URL_MAX = 512
DESCRIPTION_MAX = 1024
CREDENTIAL_MAX = 512
# Harbor reserves the name of the scanner its installer registers.
RESERVED_NAMES = frozenset({"Trivy"})

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class InvalidRegistration(ValueError):
    """A registration Harbor would refuse (its message is Harbor's where Harbor has one)."""


@dataclass(frozen=True, slots=True)
class ScannerRegistration:
    uuid: str
    name: str
    url: str
    auth: AuthType = ""
    # A reference to the secret (never the secret): resolved by the secret store when a client is built.
    credential_ref: str | None = None
    skip_cert_verify: bool = False
    use_internal_addr: bool = False
    disabled: bool = False
    is_default: bool = False
    description: str = ""
    create_time: int = 0
    update_time: int = 0
    # Harbor's installer-registered scanner: the API may neither change nor delete it.
    immutable: bool = False

    def record(self) -> dict[str, Any]:
        """The stored form (JSON-ready); `from_record` reads it back."""
        return {
            "uuid": self.uuid, "name": self.name, "url": self.url, "auth": self.auth,
            "credential_ref": self.credential_ref, "skip_cert_verify": self.skip_cert_verify,
            "use_internal_addr": self.use_internal_addr, "disabled": self.disabled, "is_default": self.is_default,
            "description": self.description, "create_time": self.create_time, "update_time": self.update_time,
            "immutable": self.immutable,
        }  # fmt: skip

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ScannerRegistration:
        auth = data.get("auth") or ""
        return cls(
            uuid=str(data["uuid"]), name=str(data["name"]), url=str(data["url"]),
            auth=auth if auth in AUTH_TYPES else "", credential_ref=data.get("credential_ref") or None,
            skip_cert_verify=bool(data.get("skip_cert_verify")), use_internal_addr=bool(data.get("use_internal_addr")),
            disabled=bool(data.get("disabled")), is_default=bool(data.get("is_default")),
            description=str(data.get("description") or ""), create_time=int(data.get("create_time") or 0),
            update_time=int(data.get("update_time") or 0), immutable=bool(data.get("immutable")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the adapter's metadata says it can do (Harbor's `capabilities` of a registration)."""

    support_vulnerability: bool = False
    support_sbom: bool = False


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """What a read adds to the stored record by asking the adapter (Harbor pings on every read)."""

    health: str = ""  # healthy | unhealthy | "" (not asked)
    adapter: str = ""
    vendor: str = ""
    version: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)


def parse_auth(value: str | None) -> AuthType:
    """An auth type as given to the API (`X-ScannerAdapter-API-Key` is the older spelling of `APIKey`)."""
    text = (value or "").strip()
    if text in (API_KEY_HEADER, "APIKey"):
        return "APIKey"
    for auth in AUTH_TYPES:
        if text == auth:
            return auth
    raise InvalidRegistration(f"auth type {text} is not supported")


def validate_url(url: str) -> str:
    """Harbor's `ValidateHTTPURL`: an http(s) URL with a host; no scheme means http; the trailing
    slash goes. Also refuses what Harbor's column cannot hold and user info in the URL (a
    credential belongs in `access_credential`, where it is kept as a secret)."""
    text = url.strip()
    if not text:
        raise InvalidRegistration("scanner registration validate: empty url")
    if len(text) > URL_MAX:
        raise InvalidRegistration(f"scanner registration validate: the url is longer than {URL_MAX} characters")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidRegistration(f"scanner registration validate: invalid url {url!r}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRegistration(f"scanner registration validate: invalid http url scheme {parts.scheme!r}")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise InvalidRegistration(f"scanner registration validate: invalid url {url!r}")
    if any(c.isspace() for c in text) or parts.query or parts.fragment or port == 0:
        raise InvalidRegistration(f"scanner registration validate: invalid url {url!r}")
    return text.rstrip("/")


def validate(registration: ScannerRegistration, *, credential: str | None) -> ScannerRegistration:
    """Harbor's `Registration.Validate` plus its controller's rules; returns the record with its
    URL normalised. `credential` is the secret given with the change (None: unchanged/none)."""
    name = registration.name
    if not name:
        raise InvalidRegistration("missing registration name")
    if len(name) > NAME_MAX or any(not c.isprintable() for c in name):
        raise InvalidRegistration(f"the registration name must be 1-{NAME_MAX} printable characters")
    if len(registration.description) > DESCRIPTION_MAX:
        raise InvalidRegistration(f"the description is longer than {DESCRIPTION_MAX} characters")
    url = validate_url(registration.url)
    if registration.auth and not (credential or registration.credential_ref):
        raise InvalidRegistration(f"access_credential is required for auth type {registration.auth}")
    if credential is not None and len(credential) > CREDENTIAL_MAX:
        raise InvalidRegistration(f"access_credential is longer than {CREDENTIAL_MAX} characters")
    if registration.is_default and registration.disabled:
        raise InvalidRegistration(f"default registration {registration.uuid} can not be marked to deactivated")
    return replace(registration, url=url)


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))
