"""CHART: Helm charts pushed as OCI artifacts. Extra attributes are the chart config (Chart.yaml
as JSON); `values.yaml`, `readme.md` and `dependencies` are read from the chart tarball.

The tarball is hostile input: it is read only up to CHART_MAX_BYTES, decompressed as a stream
with at most UNPACKED_MAX_BYTES coming out of gzip (skipped members count too, so a gzip bomb stops
there), at most MEMBERS_MAX entries are looked at, and only the few top-level regular files Harbor
shows are kept, each at most FILE_MAX_BYTES. Nothing is written to disk.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from typing import Any

from chalicelib.core.manifest import Descriptor, ParsedManifest
from chalicelib.processors.base import Addition, Kind, Source, Unreadable

CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
CHART_MAX_BYTES = 20 * 1024 * 1024
UNPACKED_MAX_BYTES = 64 * 1024 * 1024
MEMBERS_MAX = 10_000
FILE_MAX_BYTES = 2 * 1024 * 1024
DEPENDENCIES_MAX = 1_000

VALUES, README, DEPENDENCIES = "values.yaml", "readme.md", "dependencies"
# The files Harbor reads, matched case-insensitively directly under the chart's directory.
_CHART_YAML, _VALUES, _README, _REQUIREMENTS = "CHART.YAML", "VALUES.YAML", "README.MD", "REQUIREMENTS.YAML"
_WANTED = frozenset({_CHART_YAML, _VALUES, _README, _REQUIREMENTS})
_DEPENDENCY_TEXT = ("name", "version", "repository", "condition", "alias")


def _addition(name: str, source: Source) -> Addition:
    files = chart_files(source.blob(_chart_layer(source.manifest), CHART_MAX_BYTES))
    if name == VALUES:
        return Addition("text/plain; charset=utf-8", files.get(_VALUES, b""))
    if name == README:
        return Addition("text/markdown; charset=utf-8", files.get(_README, b""))
    return Addition("application/json; charset=utf-8", json.dumps(dependencies(files)).encode())


def _chart_layer(manifest: ParsedManifest) -> Descriptor:
    """The chart content layer; charts pushed by older Helm versions used another media type."""
    config = manifest.config.digest if manifest.config else None
    others = [layer for layer in manifest.layers if layer.digest != config]
    layer = next((d for d in others if d.media_type == CHART_LAYER), others[0] if others else None)
    if layer is None:
        raise Unreadable("the chart has no content layer")
    return layer


def chart_files(tarball: bytes) -> dict[str, bytes]:
    """The wanted top-level files of a chart tarball, keyed by upper-cased name."""
    found: dict[str, bytes] = {}
    try:
        with (
            gzip.GzipFile(fileobj=io.BytesIO(tarball)) as unzipped,
            tarfile.open(fileobj=_Capped(unzipped, UNPACKED_MAX_BYTES), mode="r|") as archive,
        ):
            for count, member in enumerate(archive, 1):
                if count > MEMBERS_MAX:
                    raise Unreadable(f"the chart has more than {MEMBERS_MAX} entries")
                name = _top_level_name(member.name)
                if name not in _WANTED or name in found or not member.isfile():
                    continue
                if member.size > FILE_MAX_BYTES:
                    raise Unreadable(f"{member.name} is over the {FILE_MAX_BYTES} byte limit")
                handle = archive.extractfile(member)
                found[name] = handle.read() if handle else b""
                if len(found) == len(_WANTED):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        raise Unreadable(f"not a readable chart tarball: {exc}") from exc
    if _CHART_YAML not in found:
        raise Unreadable("the chart tarball has no Chart.yaml")
    return found


def _top_level_name(path: str) -> str:
    """`mychart/values.yaml` -> `VALUES.YAML`; deeper or shallower paths -> ``."""
    parts = path.removeprefix("./").split("/")
    return parts[1].upper() if len(parts) == 2 else ""


def dependencies(files: dict[str, bytes]) -> list[dict[str, Any]]:
    """Chart.yaml's `dependencies` (apiVersion v2) or requirements.yaml's (v1), as Helm's JSON."""
    chart = _yaml_mapping(files[_CHART_YAML])
    if chart.get("apiVersion") == "v2":
        listed = chart.get("dependencies")
    elif chart.get("apiVersion") == "v1" and _REQUIREMENTS in files:
        listed = _yaml_mapping(files[_REQUIREMENTS]).get("dependencies")
    else:
        listed = None
    if not isinstance(listed, list):
        return []
    return [_dependency(item) for item in listed[:DEPENDENCIES_MAX] if isinstance(item, dict)]


def _dependency(item: dict[Any, Any]) -> dict[str, Any]:
    """Helm's Dependency fields only, with scalar values made strings (YAML reads `1.0` as a float)."""
    out: dict[str, Any] = {"name": "", "repository": ""}
    for key in _DEPENDENCY_TEXT:
        value = item.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out[key] = str(value)
    tags = item.get("tags")
    if isinstance(tags, list) and (texts := [t for t in tags[:100] if isinstance(t, str)]):
        out["tags"] = texts
    if item.get("enabled") is True:
        out["enabled"] = True
    imports = item.get("import-values")
    if isinstance(imports, list) and (kept := [_import_value(v) for v in imports[:100] if _import_value(v)]):
        out["import-values"] = kept
    return out


def _import_value(value: Any) -> str | dict[str, str] | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("child"), str) and isinstance(value.get("parent"), str):
        return {"child": value["child"], "parent": value["parent"]}
    return None


def _yaml_mapping(data: bytes) -> dict[Any, Any]:
    import yaml  # noqa: PLC0415 (only a Helm chart's Chart.yaml needs a YAML parser)

    try:
        value = yaml.safe_load(data)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise Unreadable(f"invalid YAML: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise Unreadable("YAML document is not a mapping")
    return value


class _Capped(io.RawIOBase):
    """A read-only stream that refuses to yield more than `limit` bytes in total."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(self._left + 1 if size < 0 else min(size, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise Unreadable(f"the chart unpacks to more than {self._limit} bytes")
        return data


KIND = Kind(
    "CHART",
    (CONFIG_MEDIA_TYPE,),
    attrs=Source.config_json,
    additions=(VALUES, README, DEPENDENCIES),
    addition=_addition,
)
