"""Repository-name and tag grammar of the OCI distribution spec."""

from __future__ import annotations

import re

from chalicelib.core.digest import Digest, is_digest
from chalicelib.errors import DigestInvalid, ManifestUnknown, NameInvalid, TagInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# Clients cap "host/name" at 255 characters; keep room for the host.
NAME_MAX_LENGTH = 255


def validate_name(name: str) -> str:
    if len(name) > NAME_MAX_LENGTH or not NAME_RE.fullmatch(name):
        raise NameInvalid("invalid repository name", {"name": name[:NAME_MAX_LENGTH]})
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise TagInvalid("invalid tag", {"tag": tag[:200]})
    return tag


def project_of(name: str) -> str:
    """The project a repository belongs to: its first path component (Harbor's rule)."""
    return name.split("/", 1)[0]


def require_nameable(reference: str) -> None:
    """A reference that is neither a valid tag nor a valid digest names no manifest that could
    exist, so reading or deleting it is 404 MANIFEST_UNKNOWN (the OCI conformance suite's
    expectation, e.g. `.INVALID_MANIFEST_NAME`); a push with one stays 400 (TAG_INVALID,
    DIGEST_INVALID), and the management API keeps its 400 for a malformed artifact reference."""
    try:
        if is_digest(reference):
            Digest.parse(reference)
        else:
            validate_tag(reference)
    except (DigestInvalid, TagInvalid):
        raise ManifestUnknown(detail={"reference": reference[:200]}) from None
