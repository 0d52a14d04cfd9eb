"""WASM: WebAssembly modules, either wasm-to-oci style (their own config media type) or images
marked by the `module.wasm.image/variant: compat` / `run.oci.handler: wasm` annotations."""

from __future__ import annotations

from typing import Any

from chalicelib.core.manifest import ParsedManifest
from chalicelib.processors.base import Kind, Source
from chalicelib.processors.image import BUILD_HISTORY, build_history, image_attrs

MEDIA_TYPE = "application/vnd.wasm.config.v1+json"
_MARKERS = (("module.wasm.image/variant", "compat"), ("run.oci.handler", "wasm"))
_TITLE = "org.opencontainers.image.title"


def is_annotated(manifest: ParsedManifest) -> bool:
    """An image manifest that declares itself a wasm image through annotations."""
    return any(manifest.annotations.get(key) == value for key, value in _MARKERS)


def _attrs(source: Source) -> dict[str, Any]:
    manifest = source.manifest
    if is_annotated(manifest):
        # Harbor reads only the `maintainer` label for the author of a wasm image.
        attrs = image_attrs(source.config_json(), ("maintainer",))
        attrs["manifest.config.mediaType"] = manifest.config_media_type
        return attrs
    attrs = {"manifest.config.mediaType": MEDIA_TYPE}
    if manifest.layers:
        first = manifest.layers[0]
        attrs["manifest.layers.mediaType"] = first.media_type
        attrs[_TITLE] = (first.annotations or {}).get(_TITLE, "")
    return attrs


KIND = Kind("WASM", (MEDIA_TYPE,), attrs=_attrs, additions=(BUILD_HISTORY,), addition=build_history)
