"""Plain records passed between stores and services (no persistence concerns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class Chunk:
    key: str
    size: int


@dataclass(slots=True)
class Upload:
    """An upload session as stored; `version` is the lease token that guards concurrent writers."""

    id: str
    repository: str
    offset: int = 0
    next_seq: int = 1
    parts: list[Part] = field(default_factory=list)
    pending: list[Chunk] = field(default_factory=list)
    multipart_id: str | None = None
    hash_algorithm: str = "sha256"
    hash_state: bytes | None = None
    expires_at: int = 0

    @property
    def pending_bytes(self) -> int:
        return sum(c.size for c in self.pending)


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    size: int
    body: bytes
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    """A pull answered with a 301 to `location` (a proxy-cache project's Docker Hub `library/` rule)."""

    location: str


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, Any] | None = None

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out
