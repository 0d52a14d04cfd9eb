"""User-defined artifacts (Harbor 2.1's extended processor) and everything else (UNKNOWN).

A config media type `application/vnd.<vendor>.<type>.config.<version>+json` makes `<TYPE>` the
artifact type and the config JSON its extra attributes, minus the keys the config descriptor lists
in `io.goharbor.artifact.v1alpha1.skip-list` (comma-separated). A layer annotated
`io.goharbor.artifact.v1alpha1.icon` is the icon, if its bytes really are a small image.
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.observability import logger
from chalicelib.processors.base import UNKNOWN, Kind, Source, no_attrs
from chalicelib.processors.icon import ICON_MAX_BYTES, icon_type

SKIP_LIST = "io.goharbor.artifact.v1alpha1.skip-list"
ICON = "io.goharbor.artifact.v1alpha1.icon"
_TYPE = re.compile(r"^application/vnd\.[^.]*\.(.*)\.config\.[^.]*\+json$")
# Harbor takes the middle as is; a type is also shown and filtered on, so keep it a plain word.
_PLAIN_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def artifact_type(media_type: str) -> str:
    match = _TYPE.match(media_type)
    if match is None or not _PLAIN_TYPE.match(match[1]):
        return UNKNOWN
    return match[1].upper()


def _attrs(source: Source) -> dict[str, Any]:
    config = source.manifest.config
    if source.manifest.is_index or config is None:
        return {}
    attrs = source.config_json()
    skip = (config.annotations or {}).get(SKIP_LIST)
    for key in (skip or "").split(","):
        attrs.pop(key.strip(), None)
    return attrs


def _icon(source: Source) -> str | None:
    layer = next((d for d in source.manifest.layers if ICON in (d.annotations or {})), None)
    if layer is None:
        return None
    content_type = icon_type(source.blob(layer, ICON_MAX_BYTES))
    if content_type is None:
        logger.warning("icon layer is not a PNG, JPEG or GIF image", extra={"digest": layer.digest})
        return None
    return layer.digest


def kind_for(media_type: str) -> Kind:
    """The kind for a media type no built-in processor claims."""
    type_ = artifact_type(media_type)
    # An UNKNOWN artifact gets no attributes from its config (Harbor); it may still have an icon.
    return Kind(type_, attrs=_attrs if type_ != UNKNOWN else no_attrs, icon=_icon)
