"""Artifact processors: what kind of artifact a manifest is, and its additions (placeholder).

This is the seam only: the typed processors (image, chart, CNAB, WASM, SBOM, ...) replace it at merge
with the same two functions. `read_blob(digest, max_bytes)` returns at most `max_bytes` of a blob of
the artifact's repository, so a processor cannot be made to read an unbounded config.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core import mediatypes as mt
from chalicelib.core.manifest import ParsedManifest
from chalicelib.errors import BadRequest

ReadBlob = Callable[[str, int], bytes]
_CONFIG_MAX = 4 * 1024 * 1024

_IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)


@dataclass(frozen=True)
class Abstract:
    type: str
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    icon: str = ""
    additions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Addition:
    content_type: str
    content: bytes


def abstract(manifest: ParsedManifest, body: bytes, read_blob: ReadBlob) -> Abstract:
    """IMAGE for image manifests and indexes, UNKNOWN otherwise (the real processors do more)."""
    del body, read_blob
    image = manifest.media_type in mt.IMAGE_MANIFESTS and manifest.config_media_type in _IMAGE_CONFIGS
    if manifest.is_index or image:
        return Abstract("IMAGE")
    return Abstract("UNKNOWN")


def addition(name: str, manifest: ParsedManifest, body: bytes, read_blob: ReadBlob) -> Addition:
    """An image's `build_history` (its config's `history`); anything else is Harbor's 400."""
    config = json.loads(body).get("config") if not manifest.is_index else None
    if name.upper() != "BUILD_HISTORY" or abstract(manifest, body, read_blob).type != "IMAGE" or not config:
        raise BadRequest(f"addition {name} is not supported for this artifact")
    history = json.loads(read_blob(config["digest"], _CONFIG_MAX)).get("history", [])
    return Addition("application/json; charset=utf-8", json.dumps(history).encode())
