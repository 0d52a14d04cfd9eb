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
MASKED_SECRET = "*****"  # noqa: S105 (what Harbor answers in place of a stored secret)

MAX_NAME_LENGTH = 64  # Harbor's rule
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1024
MAX_ACCESS_KEY_LENGTH = 1024
MAX_SECRET_LENGTH = 16 * 1024  # a GCR/ECR-style JSON key fits; more is not a credential

# Types whose registries a project may proxy (Harbor's proxy-cache list; the UI offers these only).
PROXY_CACHE_TYPES = frozenset(
    ("docker-hub", "harbor", "azure-acr", "aws-ecr", "google-gcr", "quay", "docker-registry", "github-ghcr",
     "jfrog-artifactory")
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
    # The row's version when read: an update is conditioned on it (no lost writes).
    version: int = 0

    def with_status(self, status: str, when: int) -> Registry:
        return replace(self, status=status, update_time=when)

    def wire(self) -> dict[str, Any]:
        """Harbor's `Registry` answer: the secret is `*****` when one is set, never its value."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "url": self.url,
            "insecure": self.insecure,
            "description": self.description,
            "status": self.status,
            "creation_time": iso(self.creation_time),
            "update_time": iso(self.update_time),
        }
        if self.credential is not None:
            out["credential"] = {
                "type": self.credential.type,
                "access_key": self.credential.access_key,
                "access_secret": MASKED_SECRET if self.credential.has_secret else "",
            }
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
    allowed; a host is required; a trailing `/` goes. A path (a registry under a prefix) stays; a
    query, a fragment or user info is refused (credentials belong in the credential)."""
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
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise BadRequest(f"invalid URL {raw!r}: a registry URL has no query or fragment")
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


def validate_status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown registry status {value!r}")
    return value
