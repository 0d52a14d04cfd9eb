"""What every artifact kind shares: the result types, bounded blob reads and the limits.

A processor runs on pushed, user-controlled bytes, so every read is bounded before it happens
(the descriptor's size) and while it happens (the reader's `max_bytes`), and every parse failure
becomes `Unreadable`, which the dispatcher logs and turns into "no extra attributes" (abstract)
or a 404 (additions). Nothing here talks to AWS: the caller passes the readers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.manifest import Descriptor, ParsedManifest, parse_manifest
from chalicelib.observability import logger

BlobReader = Callable[[str, int], bytes]  # (digest, max_bytes) -> the blob's bytes; raises if bigger
ManifestReader = Callable[[str, int], bytes]  # (digest, max_bytes) -> a manifest's bytes in the same repository

CONFIG_MAX_BYTES = 1024 * 1024
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
# extra_attrs are stored with the artifact (a DynamoDB item holds 400 KB): bigger ones lose their
# largest top-level keys.
EXTRA_ATTRS_MAX_BYTES = 64 * 1024
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Abstract:
    """What Harbor's abstractor derives from an artifact: its type, extra attributes, icon, additions."""

    type: str
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    icon: str | None = None
    additions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Addition:
    content_type: str
    content: bytes


class Unreadable(Exception):
    """A blob the processor needs is missing, too big or not what it should be (never reaches a client)."""


@dataclass(frozen=True)
class Source:
    """One artifact's manifest plus the means to read what it references."""

    manifest: ParsedManifest
    body: bytes
    read_blob: BlobReader
    read_manifest: ManifestReader | None = None

    def blob(self, descriptor: Descriptor, limit: int) -> bytes:
        """The descriptor's bytes, refused before reading when it says it is bigger than `limit`."""
        if descriptor.size > limit:
            raise Unreadable(f"{descriptor.digest} is {descriptor.size} bytes, over the {limit} byte limit")
        try:
            data = self.read_blob(descriptor.digest, limit)
        except Exception as exc:
            # The reader's own message (S3, DynamoDB) is logged with the cause, not shown to clients.
            raise Unreadable(f"cannot read {descriptor.digest}") from exc
        if len(data) > limit:
            raise Unreadable(f"{descriptor.digest} is over the {limit} byte limit")
        return data

    def config_json(self) -> dict[str, Any]:
        """The config blob as a JSON object; an empty config (size 0) is `{}`, as in Harbor."""
        config = self.manifest.config
        if config is None or config.size == 0:
            return {}
        return json_object(self.blob(config, CONFIG_MAX_BYTES))

    def child(self, descriptor: Descriptor) -> Source:
        """The source of a manifest an index points at (CNAB keeps its config in one)."""
        if self.read_manifest is None:
            raise Unreadable("no manifest reader: cannot follow the index")
        if descriptor.size > MANIFEST_MAX_BYTES:
            raise Unreadable(f"{descriptor.digest} is over the {MANIFEST_MAX_BYTES} byte limit")
        try:
            body = self.read_manifest(descriptor.digest, MANIFEST_MAX_BYTES)
            parsed = parse_manifest(body, descriptor.media_type, descriptor.digest)
        except Exception as exc:
            raise Unreadable(f"cannot read manifest {descriptor.digest}") from exc
        return Source(parsed, body, self.read_blob, self.read_manifest)


def json_object(data: bytes) -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity) that must be an object."""
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise Unreadable("JSON document is not an object")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def no_attrs(_: Source) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One artifact type: how to read its extra attributes, its icon and its additions."""

    type: str
    media_types: tuple[str, ...] = ()
    attrs: Callable[[Source], dict[str, Any]] = no_attrs
    icon: Callable[[Source], str | None] | None = None
    additions: tuple[str, ...] = ()
    # Called only with a name from `additions` (lower case).
    addition: Callable[[str, Source], Addition] | None = None


def fit(attrs: dict[str, Any]) -> dict[str, Any]:
    """Keep extra_attrs under EXTRA_ATTRS_MAX_BYTES by dropping the largest top-level keys."""
    total = len(json.dumps(attrs))
    if total <= EXTRA_ATTRS_MAX_BYTES:
        return attrs
    sizes = sorted(((len(json.dumps({key: value})), key) for key, value in attrs.items()), reverse=True)
    kept = dict(attrs)
    dropped = []
    for size, key in sizes:
        if total <= EXTRA_ATTRS_MAX_BYTES:
            break
        del kept[key]
        dropped.append(key)
        total -= size
    if len(json.dumps(kept)) > EXTRA_ATTRS_MAX_BYTES:
        kept, dropped = {}, list(attrs)
    logger.warning("extra_attrs over the size limit", extra={"dropped": dropped[:20], "limit": EXTRA_ATTRS_MAX_BYTES})
    return kept
