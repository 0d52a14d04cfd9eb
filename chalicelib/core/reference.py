"""Repository-name and tag grammar of the OCI distribution spec."""

from __future__ import annotations

import re

from chalicelib.errors import NameInvalid, TagInvalid

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
