"""Image references on the command line, in skopeo's transport syntax.

- `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` (the prefix may be left out): a registry repository.
- `oci:PATH[:TAG]`: an OCI image layout directory; without a tag, the layout's only image.
- `docker-archive:PATH[:NAME:TAG]`: a `docker save` tar; without a name, its only image.

Like skopeo, a path ends at the first `:`, so paths holding a colon are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


class ReferenceError(ValueError):
    """A command-line image reference that cannot be parsed."""


@dataclass(frozen=True)
class RemoteReference:
    host: str
    repository: str
    reference: str  # a tag or a digest

    @property
    def is_digest(self) -> bool:
        return ":" in self.reference  # a tag never holds a colon

    def __str__(self) -> str:
        separator = "@" if self.is_digest else ":"
        return f"{self.host}/{self.repository}{separator}{self.reference}"


@dataclass(frozen=True)
class LayoutReference:
    path: Path
    tag: str | None


@dataclass(frozen=True)
class ArchiveReference:
    path: Path
    name: str | None


Reference = RemoteReference | LayoutReference | ArchiveReference


def parse(text: str) -> Reference:
    if text.startswith("oci:"):
        path, _, tag = text[len("oci:") :].partition(":")
        return LayoutReference(_path(path, text), tag or None)
    if text.startswith("docker-archive:"):
        path, _, name = text[len("docker-archive:") :].partition(":")
        return ArchiveReference(_path(path, text), name or None)
    return parse_remote(text.removeprefix("docker://"))


def parse_remote(text: str) -> RemoteReference:
    """`HOST[:PORT]/REPO[:TAG|@DIGEST]`; the tag defaults to `latest`. The host is required."""
    host, slash, rest = text.partition("/")
    if not slash or not rest or not host or not ("." in host or ":" in host or host == "localhost"):
        raise ReferenceError(f"{text!r}: expected HOST[:PORT]/REPOSITORY[:TAG|@DIGEST] (the registry host is required)")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
        if not _DIGEST_RE.fullmatch(reference):
            raise ReferenceError(f"{text!r}: malformed digest {reference!r}")
    else:
        last = rest.rsplit("/", 1)[-1]
        repository, reference = rest, "latest"
        if ":" in last:
            repository, _, reference = rest.rpartition(":")
            if not _TAG_RE.fullmatch(reference):
                raise ReferenceError(f"{text!r}: malformed tag {reference!r}")
    if not repository or repository != repository.lower():
        raise ReferenceError(f"{text!r}: repository names are lowercase")
    return RemoteReference(host, repository, reference)


def _path(path: str, text: str) -> Path:
    if not path:
        raise ReferenceError(f"{text!r}: the path is missing")
    return Path(path)
