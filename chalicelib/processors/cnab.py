"""CNAB: Cloud Native Application Bundles, pushed as an index whose `org.opencontainers.artifactType`
annotation names the CNAB manifest type; the attributes come from the config of the child manifest
annotated `io.cnab.manifest.type: config`."""

from __future__ import annotations

from typing import Any

from chalicelib.processors.base import Kind, Source

MEDIA_TYPE = "application/vnd.cnab.manifest.v1"
_ROLE = "io.cnab.manifest.type"


def _attrs(source: Source) -> dict[str, Any]:
    configs = [d for d in source.manifest.manifests if (d.annotations or {}).get(_ROLE) == "config"]
    if not configs:
        return {}
    # Harbor takes the last child so annotated.
    return source.child(configs[-1]).config_json()


KIND = Kind("CNAB", (MEDIA_TYPE,), attrs=_attrs)
