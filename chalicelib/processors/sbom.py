"""SBOM: the software bill of materials Harbor generates and stores as an accessory artifact; its
only layer is the document, served as the `sbom` addition."""

from __future__ import annotations

from chalicelib.processors.base import Addition, Kind, Source, Unreadable

MEDIA_TYPE = "application/vnd.goharbor.harbor.sbom.v1"
SBOM = "sbom"
# An addition is returned in one Lambda response (6 MB, base64 on the way out).
SBOM_MAX_BYTES = 4 * 1024 * 1024


def _sbom(_: str, source: Source) -> Addition:
    layers = source.manifest.layers
    if len(layers) != 1:
        raise Unreadable("an SBOM artifact has exactly one layer")
    return Addition(MEDIA_TYPE, source.blob(layers[0], SBOM_MAX_BYTES))


KIND = Kind("SBOM", (MEDIA_TYPE,), attrs=Source.config_json, additions=(SBOM,), addition=_sbom)
