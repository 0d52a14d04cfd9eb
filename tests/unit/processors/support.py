"""Fixtures for the processor tests, built in code: blobs, manifests, images, chart tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
import zlib
from typing import Any

from chalicelib.core.manifest import ParsedManifest, parse_manifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MIB = 1024 * 1024


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def to_json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Blobs:
    """An in-memory BlobReader (and ManifestReader) that records every read it is asked for."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads: list[tuple[str, int]] = []

    def add(self, data: bytes) -> str:
        digest = digest_of(data)
        self.data[digest] = data
        return digest

    def __call__(self, digest: str, max_bytes: int) -> bytes:
        self.reads.append((digest, max_bytes))
        data = self.data[digest]  # KeyError: a missing blob
        if len(data) > max_bytes:
            raise ValueError(f"{digest} is bigger than {max_bytes}")
        return data


def desc(media_type: str, data: bytes, *, size: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data) if size is None else size, **extra}


def manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    media_type: str = OCI_MANIFEST,
    annotations: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[ParsedManifest, bytes]:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": list(layers)}
    if annotations is not None:
        doc["annotations"] = annotations
    doc.update(extra)
    body = to_json(doc)
    return parse_manifest(body, media_type, digest_of(body)), body


def index(
    children: list[dict[str, Any]], *, media_type: str = OCI_INDEX, annotations: dict[str, str] | None = None
) -> tuple[ParsedManifest, bytes]:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    if annotations is not None:
        doc["annotations"] = annotations
    body = to_json(doc)
    return parse_manifest(body, media_type, digest_of(body)), body


def png(width: int = 1, height: int = 1, padding: int = 0) -> bytes:
    """A real PNG (grey pixels); `padding` adds an ancillary chunk to make it bigger."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    extra = chunk(b"teXt", b"pad\x00" + b"x" * padding) if padding else b""
    body = chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def tarball(files: dict[str, bytes | None], *, symlinks: dict[str, str] | None = None, compress: bool = True) -> bytes:
    """A tar(.gz) of `files` (None: a directory entry) plus symlinks, in the given order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    data = raw.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


CHART_YAML_V2 = b"""apiVersion: v2
name: demo
version: 1.2.3
description: A demo chart
dependencies:
  - name: redis
    version: 17.0.0
    repository: https://charts.example.com
    condition: redis.enabled
    tags: [cache, "db"]
    alias: kv
    import-values:
      - data
      - child: default.data
        parent: myimports
      - 42
    unknown-field: dropped
  - name: postgres
    version: 1.0
    repository: oci://registry.example.com/charts
    enabled: true
  - just a string
"""

CHART_CONFIG = {"apiVersion": "v2", "name": "demo", "version": "1.2.3", "description": "A demo chart"}


def chart(files: dict[str, bytes | None] | None = None, **tar: Any) -> tuple[bytes, bytes]:
    """(config JSON, chart tarball) of a small chart; `files` replaces the default contents."""
    if files is None:
        files = {
            "demo/": None,
            "demo/Chart.yaml": CHART_YAML_V2,
            "demo/values.yaml": b"replicaCount: 2\nimage: nginx\n",
            "demo/README.md": b"# Demo\n\nA chart for tests.\n",
            "demo/templates/deployment.yaml": b"kind: Deployment\n",
            "demo/charts/sub/README.md": b"# Not the top-level readme\n",
        }
    return to_json(CHART_CONFIG), tarball(files, **tar)
