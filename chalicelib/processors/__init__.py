"""Artifact processors (Harbor's abstractor): what kind of artifact a manifest is and what to show
about it. Pure code: the caller passes readers for blobs (and manifests, for CNAB).

Dispatch follows Harbor: an image manifest is keyed by its config media type (or the WASM type
when its annotations say so), an index by its media type, or by its `org.opencontainers.artifactType`
annotation when it has one (CNAB). A key no built-in kind claims goes to the user-defined processor,
which derives the type from the media type or says UNKNOWN.

`abstract` never raises: a missing, oversized or malformed blob costs the artifact its extra
attributes or icon (logged), never the push or the listing. `addition` raises BadRequest for an
addition the kind does not have (Harbor's code) and NotFound for one whose content cannot be read.
"""

from __future__ import annotations

from chalicelib.core.manifest import ParsedManifest
from chalicelib.errors import BadRequest, NotFound
from chalicelib.observability import logger
from chalicelib.processors import chart, cnab, custom, image, sbom, wasm
from chalicelib.processors.base import (
    UNKNOWN,
    Abstract,
    Addition,
    BlobReader,
    Kind,
    ManifestReader,
    Source,
    Unreadable,
    fit,
)

__all__ = [
    "UNKNOWN", "Abstract", "Addition", "BlobReader", "ManifestReader", "abstract", "addition", "icon", "kind_of",
]  # fmt: skip

ARTIFACT_TYPE_ANNOTATION = "org.opencontainers.artifactType"
_KINDS: dict[str, Kind] = {
    media_type: kind
    for kind in (image.MANIFEST, image.INDEX, chart.KIND, cnab.KIND, wasm.KIND, sbom.KIND)
    for media_type in kind.media_types
}


def kind_of(manifest: ParsedManifest) -> Kind:
    if manifest.is_index:
        key = manifest.annotations.get(ARTIFACT_TYPE_ANNOTATION) or manifest.media_type
    elif wasm.is_annotated(manifest):
        key = wasm.MEDIA_TYPE
    else:
        key = manifest.config_media_type or ""
    return _KINDS.get(key) or custom.kind_for(key)


def abstract(
    manifest: ParsedManifest, body: bytes, read_blob: BlobReader, read_manifest: ManifestReader | None = None
) -> Abstract:
    """Type, extra attributes, icon and additions of the artifact `manifest` describes.

    `read_manifest` (optional) lets CNAB read its config manifest; without it a CNAB bundle has
    no extra attributes."""
    source = Source(manifest, body, read_blob, read_manifest)
    kind = kind_of(manifest)
    attrs = {}
    try:
        attrs = fit(kind.attrs(source))
    except Exception:
        # Unreadable is expected on hostile input; anything else is a bug, but still not a reason
        # to fail a push or a listing.
        logger.warning("artifact attributes unavailable", extra={"digest": manifest.digest}, exc_info=True)
    return Abstract(kind.type, attrs, _icon(kind, source), kind.additions)


def icon(manifest: ParsedManifest, body: bytes, read_blob: BlobReader) -> str | None:
    """Only the icon of `abstract` (reads nothing but the icon layer)."""
    return _icon(kind_of(manifest), Source(manifest, body, read_blob))


def _icon(kind: Kind, source: Source) -> str | None:
    if kind.icon is None:
        return None
    try:
        return kind.icon(source)
    except Exception:
        logger.warning("artifact icon unavailable", extra={"digest": source.manifest.digest}, exc_info=True)
        return None


def addition(
    name: str, manifest: ParsedManifest, body: bytes, read_blob: BlobReader, read_manifest: ManifestReader | None = None
) -> Addition:
    """One addition (`build_history`, `values.yaml`, `readme.md`, `dependencies`, `sbom`; any case)."""
    kind = kind_of(manifest)
    wanted = name.lower()
    if wanted not in kind.additions or kind.addition is None:
        raise BadRequest(f"addition {name[:64]!r} is not supported for {kind.type}")
    try:
        return kind.addition(wanted, Source(manifest, body, read_blob, read_manifest))
    except Unreadable as exc:
        detail = {"digest": manifest.digest, "addition": wanted, "reason": str(exc)}
        logger.warning("addition unavailable", extra=detail, exc_info=True)
        raise NotFound(f"the {wanted} of this artifact cannot be read: {exc}") from None
