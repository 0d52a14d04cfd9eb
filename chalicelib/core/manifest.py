"""Parsing and validation of pushed manifests, dispatched by media type (pure, no I/O).

The registry stores manifests byte-exact; this module only extracts what the stores and services
need: the digests a manifest references, its subject, its artifact type and annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.core import jsondoc
from chalicelib.core import mediatypes as mt
from chalicelib.core.digest import Digest
from chalicelib.errors import DigestInvalid, ManifestInvalid

_GENERIC_CONTENT_TYPES = {"", "application/json", "application/octet-stream", "text/plain"}


class Descriptor(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    media_type: str = Field(alias="mediaType", min_length=1)
    digest: str
    size: int = Field(ge=0, strict=True)
    artifact_type: str | None = Field(default=None, alias="artifactType")
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None

    @field_validator("digest")
    @classmethod
    def _valid_digest(cls, value: str) -> str:
        try:
            Digest.parse(value)
        except DigestInvalid as exc:
            raise ValueError(exc.message) from None
        return value


class _ImageManifest(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    schema_version: int = Field(alias="schemaVersion", strict=True)
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    config: Descriptor
    layers: list[Descriptor]
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


class _Index(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    schema_version: int = Field(alias="schemaVersion", strict=True)
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    manifests: list[Descriptor]
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True)
class ParsedManifest:
    """What the registry needs to know about a manifest besides its bytes."""

    media_type: str
    digest: str
    size: int
    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    config_media_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    # The descriptors themselves, for the artifact processors (config and layer annotations,
    # an index's per-child annotations).
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def referrer_artifact_type(self) -> str | None:
        """The type a referrers response shows: `artifactType`, else the config's media type."""
        return self.artifact_type or self.config_media_type


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> ParsedManifest:
    """Validate a pushed manifest; raise MANIFEST_INVALID for anything a registry must refuse."""
    try:
        document = jsondoc.loads(body)
    except jsondoc.JsonInvalid as exc:
        raise ManifestInvalid("manifest is not valid JSON", {"reason": str(exc)[:200]}) from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if document.get("schemaVersion") == 1:
        raise ManifestInvalid("Docker schema1 manifests are not supported; push schema2 or OCI")
    media_type = _media_type(document, content_type)
    try:
        if media_type in mt.INDEXES:
            return _from_index(_Index.model_validate(document), media_type, digest, len(body))
        return _from_image(_ImageManifest.model_validate(document), media_type, digest, len(body))
    except ValidationError as exc:
        errors = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
        raise ManifestInvalid("manifest does not match its schema", errors) from None


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    header = (content_type or "").split(";", 1)[0].strip().lower()
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    if header in mt.SCHEMA1 or declared in mt.SCHEMA1:
        raise ManifestInvalid("Docker schema1 manifests are not supported; push schema2 or OCI")
    if header and header not in _GENERIC_CONTENT_TYPES:
        if header not in mt.MANIFESTS:
            raise ManifestInvalid(f"unsupported manifest media type {header!r}")
        if declared and declared != header:
            raise ManifestInvalid("manifest mediaType does not match Content-Type", {"mediaType": declared})
        return header
    if declared:
        if declared not in mt.MANIFESTS:
            raise ManifestInvalid(f"unsupported manifest media type {declared!r}")
        return declared
    # Neither says: sniff the way distribution does, index first.
    if "manifests" in document:
        return mt.OCI_INDEX
    if "config" in document:
        return mt.OCI_MANIFEST
    raise ManifestInvalid("cannot determine the manifest media type")


def _check_schema_version(version: int) -> None:
    if version != 2:
        raise ManifestInvalid(f"unsupported schemaVersion {version}")


def _from_image(doc: _ImageManifest, media_type: str, digest: str, size: int) -> ParsedManifest:
    _check_schema_version(doc.schema_version)
    layers = tuple(d.digest for d in doc.layers if not mt.is_foreign_layer(d.media_type))
    blobs = tuple(dict.fromkeys((doc.config.digest, *layers)))
    return ParsedManifest(
        media_type=media_type,
        digest=digest,
        size=size,
        blobs=blobs,
        subject=doc.subject.digest if doc.subject else None,
        artifact_type=doc.artifact_type,
        config_media_type=doc.config.media_type,
        annotations=doc.annotations or {},
        config=doc.config,
        layers=tuple(doc.layers),
    )


def _from_index(doc: _Index, media_type: str, digest: str, size: int) -> ParsedManifest:
    _check_schema_version(doc.schema_version)
    return ParsedManifest(
        media_type=media_type,
        digest=digest,
        size=size,
        children=tuple(dict.fromkeys(d.digest for d in doc.manifests)),
        subject=doc.subject.digest if doc.subject else None,
        artifact_type=doc.artifact_type,
        annotations=doc.annotations or {},
        manifests=tuple(doc.manifests),
    )


def index_descriptors(body: bytes) -> list[dict[str, Any]]:
    """The `manifests` entries of a stored index (used to read referrers fallback tags)."""
    try:
        document = jsondoc.loads(body)
    except jsondoc.JsonInvalid:
        return []
    entries = document.get("manifests") if isinstance(document, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and isinstance(e.get("digest"), str)]
