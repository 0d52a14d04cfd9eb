"""Harbor's registry endpoints (the remote registries replication and proxy-cache projects talk to),
the pure part: the record, its validation and its wire shape.

No I/O. A registry's secret is never part of the record: the record carries a *reference* to where
the secret is kept (Secrets Manager on AWS, the local secret rows otherwise; `stores/secrets.py`),
so a listing, a log line or a replicated row can never leak it. The access key (a user name, an AWS
access key id) is not a secret and is returned, as Harbor returns it; the secret is answered as
Harbor answers it, `*****` when one is set.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import BadRequest

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
STATUSES = (HEALTHY, UNHEALTHY)

# Harbor's credential types (`model.AccessKeyType*`... its `Credential.Type`).
CREDENTIAL_BASIC = "basic"
CREDENTIAL_OAUTH = "oauth"
CREDENTIAL_SECRET = "secret"  # noqa: S105 (a type name, not a secret)
CREDENTIAL_TYPES = (CREDENTIAL_BASIC, CREDENTIAL_OAUTH, CREDENTIAL_SECRET)
# Harbor's id and name of the registry itself (never stored), and how Go writes a zero time.
LOCAL_ID = 0
LOCAL_NAME = "Local"
GO_ZERO_TIME = "0001-01-01T00:00:00.000Z"
MASKED_SECRET = "*****"  # noqa: S105 (what Harbor answers in place of a stored secret)

MAX_NAME_LENGTH = 64  # Harbor's rule
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1024
MAX_ACCESS_KEY_LENGTH = 1024
MAX_SECRET_LENGTH = 16 * 1024
MAX_CA_CERTIFICATE_LENGTH = 64 * 1024  # a GCR/ECR-style JSON key fits; more is not a credential

# Types whose registries a project may proxy (Harbor's proxy-cache list, its
# PERMITTED_REGISTRY_TYPES_FOR_PROXY_CACHE; the UI offers only these). Of them, the types an adapter
# exists for here can be created; `gitlab` is a replication endpoint only, as in Harbor.
PROXY_CACHE_TYPES = frozenset(
    ("docker-hub", "harbor", "azure-acr", "ali-acr", "aws-ecr", "google-gcr", "quay", "docker-registry",
     "github-ghcr", "jfrog-artifactory")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Credential:
    """How to authenticate to the remote. `secret_ref` names where the secret is kept ("" when there
    is none); the secret itself never lives here."""

    type: str = CREDENTIAL_BASIC
    access_key: str = ""
    secret_ref: str = ""

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_ref)


@dataclass(frozen=True, slots=True)
class Registry:
    """One remote registry endpoint (Harbor's `Registry`). `id` is Harbor's integer id; 0 is never
    assigned (Harbor uses it for the local registry itself)."""

    id: int
    name: str
    type: str
    url: str
    credential: Credential | None = None
    insecure: bool = False
    description: str = ""
    status: str = HEALTHY
    creation_time: int = 0
    update_time: int = 0
    # Type-specific overrides an operator may set (Docker Hub's registry host, ECR's region): not
    # part of Harbor's record, never on the wire.
    settings: dict[str, str] = field(default_factory=dict)
    # A PEM bundle of the CAs this registry's certificate is checked against, instead of the
    # system's (Harbor's `ca_certificate`); "" for the system's.
    ca_certificate: str = ""
    # The row's version when read: an update is conditioned on it (no lost writes).
    version: int = 0

    def with_status(self, status: str, when: int) -> Registry:
        return replace(self, status=status, update_time=when)

    def wire(self) -> dict[str, Any]:
        """Harbor's `Registry` answer, before omit-empty shaping: `credential` is always there (`{}`
        without an access key, as Harbor answers), its secret `*****` when one is set, never its
        value; `ca_certificate` only when set."""
        credential: dict[str, Any] = {}
        if self.credential is not None and self.credential.access_key:
            credential = {
                "type": self.credential.type,
                "access_key": self.credential.access_key,
                "access_secret": MASKED_SECRET if self.credential.has_secret else "",
            }
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "url": self.url,
            "credential": credential,
            "insecure": self.insecure,
            "description": self.description,
            "status": self.status,
            "creation_time": iso(self.creation_time),
            "update_time": iso(self.update_time),
        }
        if self.ca_certificate:
            out["ca_certificate"] = self.ca_certificate
        return out


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def validate_name(name: str) -> str:
    """Harbor's rules: not empty, at most 64 characters. Control characters are refused as well."""
    if not name:
        raise BadRequest("name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"the max length of name is {MAX_NAME_LENGTH}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadRequest("name must not contain control characters")
    return name


def normalise_url(raw: str) -> str:
    """Harbor's `ValidateHTTPURL`: a URL without a scheme gets `http://`; only http and https are
    allowed; a host is required; a trailing `/` goes; a path (a registry under a prefix) stays; a
    query or fragment is dropped (Harbor keeps only scheme, host and path). User info is refused
    rather than dropped: credentials belong in the credential, and silently losing them would
    leave a registry that fails for a reason its owner cannot see."""
    value = raw.strip()
    if not value:
        raise BadRequest("empty URL")
    if len(value) > MAX_URL_LENGTH:
        raise BadRequest(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise BadRequest(f"invalid URL {raw!r}: it contains spaces or control characters")
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise BadRequest(f"invalid URL {raw!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadRequest(f"invalid HTTP scheme: {parts.scheme}")
    host = parts.hostname or ""
    if not host or not _valid_host(host):
        raise BadRequest(f"invalid URL {raw!r}: no valid host")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("the URL must not carry credentials: use the credential fields")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{parts.path}".rstrip("/")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in label) for label in labels
    )


def validate_credential_type(value: str) -> str:
    if value not in CREDENTIAL_TYPES:
        raise BadRequest(f"invalid credential type {value!r}: must be one of {', '.join(CREDENTIAL_TYPES)}")
    return value


def validate_ca_certificate(value: str) -> str:
    """Harbor's check: empty (the system's CAs), or PEM holding at least one parsable certificate.
    Line endings are normalised and surrounding space trimmed, as Harbor does."""
    text = value.strip().replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        return ""
    if len(text) > MAX_CA_CERTIFICATE_LENGTH:
        raise BadRequest(f"the CA certificate is longer than {MAX_CA_CERTIFICATE_LENGTH} characters")
    from cryptography import x509  # noqa: PLC0415 (x509 loads on the rare request that sets a CA)

    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise BadRequest(f"invalid CA certificate: {exc}") from None
    if not certificates:
        raise BadRequest("invalid CA certificate: no valid certificates found in PEM data")
    return text


def validate_status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown registry status {value!r}")
    return value
