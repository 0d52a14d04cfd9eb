"""Where an image comes from: an OCI layout, a `docker save` archive, or another registry.

Every source answers the same three questions: the root manifest (or index) the reference names,
a child manifest by descriptor, and a blob's bytes from any offset (so an upload can resume in the
middle of a layer). Manifests keep their exact bytes, so the copy's digests are the source's.

A `docker save` archive comes in two shapes. Docker 25 and later nest an OCI layout in the tar
(`oci-layout`, `index.json`, `blobs/`), read like a layout directory. Older ones list each image in
`manifest.json` (`Config`, `RepoTags`, `Layers`); for those an OCI image manifest is written here,
with the config as it is and the layers as the uncompressed tars they are
(`application/vnd.oci.image.layer.v1.tar`; their digests are the config's `rootfs.diff_ids`).
Archive members are read in place by offset, so several layers can be read at once.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from chalicelib.cli.references import ArchiveReference, LayoutReference, Reference, RemoteReference
from chalicelib.cli.registry import RegistryClient

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_INDEX_TYPES = {OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"}
_REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"
_PIECE = 1 << 20


class SourceError(RuntimeError):
    """A source that does not hold what the reference names."""


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    media_type: str
    data: bytes
    digest: str

    @classmethod
    def of(cls, data: bytes, media_type: str | None = None) -> Manifest:
        document = _json(data, "manifest")
        declared = document.get("mediaType") or media_type
        if not declared:
            declared = OCI_INDEX if "manifests" in document else OCI_MANIFEST
        return cls(str(declared), data, sha256_of(data))

    @property
    def is_index(self) -> bool:
        return self.media_type in _INDEX_TYPES

    def document(self) -> dict[str, Any]:
        return _json(self.data, "manifest")

    def children(self) -> list[dict[str, Any]]:
        """The manifests an index lists (none for an image manifest)."""
        return list(self.document().get("manifests") or []) if self.is_index else []

    def blobs(self) -> list[dict[str, Any]]:
        """The config and layers of an image manifest (artifact manifests' `blobs` too)."""
        if self.is_index:
            return []
        document = self.document()
        found = [document["config"]] if isinstance(document.get("config"), dict) else []
        return found + list(document.get("layers") or []) + list(document.get("blobs") or [])


class Source(Protocol):
    @property
    def mount_repository(self) -> tuple[str, str] | None:
        """(host, repository) when the blobs already live in a registry repository."""

    def root(self) -> Manifest: ...

    def manifest(self, descriptor: dict[str, Any]) -> Manifest: ...

    def read_blob(self, descriptor: dict[str, Any], offset: int) -> Iterator[bytes]: ...


def open_source(reference: Reference, client: RegistryClient | None = None) -> Source:
    if isinstance(reference, LayoutReference):
        if not (reference.path / "index.json").is_file():
            raise SourceError(f"{reference.path} is not an OCI image layout (no index.json)")
        return LayoutSource(DirectoryFiles(reference.path), reference.tag)
    if isinstance(reference, ArchiveReference):
        return open_archive(reference)
    assert client is not None, "a registry source needs a client"
    return RegistrySource(client, reference)


# Files: a directory, or members of a tar read in place.


@dataclass(frozen=True)
class FileSpan:
    path: Path
    start: int
    size: int

    def read(self, offset: int = 0) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            f.seek(self.start + offset)
            left = self.size - offset
            while left > 0:
                piece = f.read(min(_PIECE, left))
                if not piece:
                    raise SourceError(f"{self.path} ended {left} bytes early")
                left -= len(piece)
                yield piece

    def read_all(self) -> bytes:
        return b"".join(self.read())


class Files(Protocol):
    def locate(self, name: str) -> FileSpan | None: ...


class DirectoryFiles:
    def __init__(self, root: Path) -> None:
        self._root = root

    def locate(self, name: str) -> FileSpan | None:
        path = self._root / name
        return FileSpan(path, 0, path.stat().st_size) if path.is_file() else None


class TarFiles:
    """Regular members of an uncompressed tar by normalised name; symlinks resolved."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._spans: dict[str, FileSpan] = {}
        links: dict[str, str] = {}
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                name = _normal(member.name)
                if member.isfile():
                    self._spans[name] = FileSpan(path, member.offset_data, member.size)
                elif member.issym() or member.islnk():
                    base = PurePosixPath(name).parent if member.issym() else PurePosixPath()
                    links[name] = _normal(str(base / member.linkname))
        for name, first in links.items():
            target = first
            for _ in range(8):  # a chain of links, bounded
                if target in self._spans:
                    self._spans[name] = self._spans[target]
                    break
                target = links.get(target, "")

    def locate(self, name: str) -> FileSpan | None:
        return self._spans.get(_normal(name))


def _normal(name: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(name).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", "/"):
            parts.append(part)
    return "/".join(parts)


# OCI image layouts (directories, and the layout inside a recent `docker save`).


class LayoutSource:
    mount_repository = None

    def __init__(self, files: Files, name: str | None) -> None:
        self._files = files
        self._name = name

    def root(self) -> Manifest:
        index = _json(self._read("index.json"), "index.json")
        entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        if self._name is not None:
            entries = [m for m in entries if _names(m, self._name)]
            if not entries:
                raise SourceError(f"no image named {self._name!r} in the layout's index.json")
        elif len(entries) != 1:
            raise SourceError(f"the layout holds {len(entries)} images: name the one to push (PATH:TAG)")
        return self.manifest(entries[0])

    def manifest(self, descriptor: dict[str, Any]) -> Manifest:
        data = self._read(_blob_name(descriptor))
        found = Manifest.of(data, descriptor.get("mediaType"))
        if found.digest != descriptor["digest"]:
            raise SourceError(f"manifest {descriptor['digest']} does not match its content ({found.digest})")
        return found

    def read_blob(self, descriptor: dict[str, Any], offset: int) -> Iterator[bytes]:
        span = self._files.locate(_blob_name(descriptor))
        if span is None:
            raise SourceError(f"blob {descriptor['digest']} is missing from the source")
        return span.read(offset)

    def _read(self, name: str) -> bytes:
        span = self._files.locate(name)
        if span is None:
            raise SourceError(f"{name} is missing from the source")
        return span.read_all()


def _names(entry: dict[str, Any], name: str) -> bool:
    annotations = entry.get("annotations") or {}
    ref_name, full = annotations.get(_REF_NAME, ""), annotations.get(_CONTAINERD_NAME, "")
    return name in (ref_name, full) or (bool(full) and full.endswith("/" + name))


def _tag_names(repo_tag: str, name: str) -> bool:
    """`docker.io/library/app:v1` is named by itself, `library/app:v1` and `app:v1` (`app` means `:latest`)."""
    wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
    return repo_tag == wanted or repo_tag.endswith("/" + wanted)


def _blob_name(descriptor: dict[str, Any]) -> str:
    algorithm, _, encoded = str(descriptor["digest"]).partition(":")
    if not algorithm.isalnum() or not encoded.isalnum():
        raise SourceError(f"malformed digest {descriptor['digest']!r}")
    return f"blobs/{algorithm}/{encoded}"


# `docker save` archives.


def open_archive(reference: ArchiveReference) -> Source:
    path = reference.path
    if not path.is_file():
        raise SourceError(f"{path}: no such archive")
    with path.open("rb") as f:
        if f.read(2) == b"\x1f\x8b":
            raise SourceError(f"{path} is compressed: gunzip it first (layers are read in place, in parallel)")
    files = TarFiles(path)
    if files.locate("oci-layout") and files.locate("index.json"):
        return LayoutSource(files, reference.name)
    return LegacyArchiveSource(files, reference.name)


class LegacyArchiveSource:
    """An archive of `manifest.json` entries; the image manifest is built here (see module doc)."""

    mount_repository = None

    def __init__(self, files: TarFiles, name: str | None) -> None:
        span = files.locate("manifest.json")
        if span is None:
            raise SourceError("not a docker save archive: no manifest.json and no OCI layout")
        entries = [e for e in _json_any(span.read_all(), "manifest.json") if isinstance(e, dict)]
        if name is not None:
            entries = [e for e in entries if any(_tag_names(t, name) for t in e.get("RepoTags") or [])]
        if len(entries) != 1:
            raise SourceError(
                f"the archive holds {len(entries)} images{' named ' + repr(name) if name else ''}: "
                "name exactly one (docker-archive:PATH:NAME:TAG)"
            )
        self._files = files
        self._layers: dict[str, FileSpan] = {}
        self._manifest = self._build(entries[0])

    def _build(self, entry: dict[str, Any]) -> Manifest:
        config_span = self._files.locate(str(entry.get("Config", "")))
        if config_span is None:
            raise SourceError(f"the archive lacks the config {entry.get('Config')!r}")
        config = config_span.read_all()
        diff_ids = list((_json(config, "image config").get("rootfs") or {}).get("diff_ids") or [])
        layer_names = list(entry.get("Layers") or [])
        if len(diff_ids) != len(layer_names):
            raise SourceError(f"the config lists {len(diff_ids)} layers, the archive {len(layer_names)}")
        config_digest = sha256_of(config)
        self._layers[config_digest] = config_span
        layers = []
        for digest, name in zip(diff_ids, layer_names, strict=True):
            span = self._files.locate(str(name))
            if span is None:
                raise SourceError(f"the archive lacks the layer {name!r}")
            self._layers[str(digest)] = span
            layers.append({"mediaType": OCI_LAYER_TAR, "digest": str(digest), "size": span.size})
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
        return Manifest.of(json.dumps(document, indent=2).encode())

    def root(self) -> Manifest:
        return self._manifest

    def manifest(self, descriptor: dict[str, Any]) -> Manifest:
        raise SourceError(f"a docker save image has no child manifest {descriptor.get('digest')}")

    def read_blob(self, descriptor: dict[str, Any], offset: int) -> Iterator[bytes]:
        span = self._layers.get(str(descriptor["digest"]))
        if span is None:
            raise SourceError(f"blob {descriptor['digest']} is not in the archive")
        return span.read(offset)


# Another registry.


class RegistrySource:
    def __init__(self, client: RegistryClient, reference: RemoteReference) -> None:
        self._client = client
        self._reference = reference

    @property
    def mount_repository(self) -> tuple[str, str]:
        return self._client.host, self._reference.repository

    def root(self) -> Manifest:
        media_type, data = self._client.get_manifest(self._reference.repository, self._reference.reference)
        found = Manifest.of(data, media_type)
        if self._reference.is_digest and found.digest != self._reference.reference:
            raise SourceError(f"{self._reference} answered a manifest with digest {found.digest}")
        return found

    def manifest(self, descriptor: dict[str, Any]) -> Manifest:
        digest = str(descriptor["digest"])
        media_type, data = self._client.get_manifest(self._reference.repository, digest)
        found = Manifest.of(data, media_type or descriptor.get("mediaType"))
        if found.digest != digest:
            raise SourceError(f"manifest {digest} does not match its content ({found.digest})")
        return found

    def read_blob(self, descriptor: dict[str, Any], offset: int) -> Iterator[bytes]:
        return self._client.read_blob(self._reference.repository, str(descriptor["digest"]), offset)


def _json(data: bytes, what: str) -> dict[str, Any]:
    document = _json_any(data, what)
    if not isinstance(document, dict):
        raise SourceError(f"{what} is not a JSON object")
    return document


def _json_any(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SourceError(f"{what} is not valid JSON: {exc}") from exc
