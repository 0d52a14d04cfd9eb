"""IMAGE: OCI and Docker image manifests (attributes from the image config) and indexes (none).

Harbor shows `created`, `architecture`, `os`, `author` and the config's `config` section, and
offers the config's `history` as the `build_history` addition. `config` keeps only the fields of
the OCI image-spec `ImageConfig`, without empty ones, since Harbor serialises that typed struct.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core import mediatypes as mt
from chalicelib.processors.base import Addition, Kind, Source

IMAGE = "IMAGE"
BUILD_HISTORY = "build_history"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
JSON_UTF8 = "application/json; charset=utf-8"

_CONFIG_FIELDS = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal", "ArgsEscaped",
)  # fmt: skip
_HISTORY_FIELDS = ("created", "created_by", "author", "comment", "empty_layer")
# Where Harbor looks for the author when the config has none.
AUTHOR_LABELS = ("org.opencontainers.image.authors", "maintainer")


def image_attrs(config: dict[str, Any], author_labels: tuple[str, ...] = AUTHOR_LABELS) -> dict[str, Any]:
    section = config.get("config")
    section = section if isinstance(section, dict) else {}
    labels = section.get("Labels")
    labels = labels if isinstance(labels, dict) else {}
    author = _text(config.get("author"))
    for label in author_labels:
        if author:
            break
        author = _text(labels.get(label))
    created = config.get("created")
    return {
        "created": created if isinstance(created, str) else None,
        "architecture": _text(config.get("architecture")),
        "os": _text(config.get("os")),
        "author": author,
        "config": {key: section[key] for key in _CONFIG_FIELDS if section.get(key) not in (None, "", [], {}, False)},
    }


def build_history(_: str, source: Source) -> Addition:
    history = source.config_json().get("history")
    entries = [
        {key: entry[key] for key in _HISTORY_FIELDS if entry.get(key) not in (None, "", False)}
        for entry in (history if isinstance(history, list) else [])
        if isinstance(entry, dict)
    ]
    return Addition(JSON_UTF8, json.dumps(entries).encode())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


MANIFEST = Kind(
    IMAGE,
    (OCI_CONFIG, DOCKER_CONFIG),
    attrs=lambda source: image_attrs(source.config_json()),
    additions=(BUILD_HISTORY,),
    addition=build_history,
)
INDEX = Kind(IMAGE, (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST))
