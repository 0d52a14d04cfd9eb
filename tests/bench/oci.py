"""A minimal OCI push client over any HTTP transport (werkzeug's test client or requests).

Only what the benchmarks need: random blobs, image manifests and the upload flows real clients use
(skopeo: HEAD, POST, PATCH, PUT; oras/containerd: POST then PUT with the body; chunked: PATCHes
with Content-Range; single POST ?digest=; cross-repository mount).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


class BenchError(Exception):
    """A request answered something the benchmark did not expect."""


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes = b""


class Http(Protocol):
    def request(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> Reply: ...


@dataclass
class Blob:
    data: bytes
    media_type: str = OCI_LAYER
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def random_blob(size: int) -> Blob:
    return Blob(os.urandom(size))


def config_blob() -> Blob:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench.nonce": os.urandom(8).hex()}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return Blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)


def image_manifest(config: Blob, layers: list[Blob], annotations: dict[str, str] | None = None) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        document["annotations"] = annotations
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def manifest_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def with_query(location: str, **params: str) -> str:
    return location + ("&" if "?" in location else "?") + urlencode(params)


def path_of(location: str) -> str:
    """The path and query of a Location header, absolute (distribution) or relative (ours)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def expect(reply: Reply, what: str, *statuses: int) -> Reply:
    if reply.status not in statuses:
        raise BenchError(f"{what}: HTTP {reply.status}, expected {statuses}: {reply.body[:300]!r}")
    return reply


# Upload flows; each returns the replies of its requests in order.


def start_upload(http: Http, repo: str) -> tuple[Reply, str]:
    reply = expect(http.request("POST", f"/v2/{repo}/blobs/uploads/"), "POST upload", 202)
    return reply, reply.headers["Location"]


def upload_post_put(http: Http, repo: str, blob: Blob) -> list[Reply]:
    """Monolithic (spec's "POST then PUT"): the whole blob in the closing PUT (oras, containerd)."""
    started, location = start_upload(http, repo)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob.data))}
    done = http.request("PUT", with_query(location, digest=blob.digest), headers, blob.data)
    return [started, expect(done, "PUT upload", 201)]


def upload_single_post(http: Http, repo: str, blob: Blob) -> list[Reply]:
    """Single request: POST ?digest= with the body."""
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob.data))}
    reply = http.request("POST", f"/v2/{repo}/blobs/uploads/?digest={blob.digest}", headers, blob.data)
    return [expect(reply, "POST ?digest=", 201, 202)]


def upload_patch_put(http: Http, repo: str, blob: Blob) -> list[Reply]:
    """skopeo/docker: POST, one PATCH with the whole body (no Content-Range), empty PUT ?digest=."""
    started, location = start_upload(http, repo)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob.data))}
    patched = expect(http.request("PATCH", location, headers, blob.data), "PATCH upload", 202)
    location = patched.headers.get("Location", location)
    done = http.request("PUT", with_query(location, digest=blob.digest), {"Content-Length": "0"})
    return [started, patched, expect(done, "PUT upload", 201)]


def upload_chunked(http: Http, repo: str, blob: Blob, chunks: int) -> list[Reply]:
    """POST, `chunks` PATCHes with Content-Range, empty closing PUT ?digest=."""
    started, location = start_upload(http, repo)
    replies = [started]
    size = -(-len(blob.data) // chunks)
    for first in range(0, len(blob.data), size):
        piece = blob.data[first : first + size]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(piece)),
            "Content-Range": f"{first}-{first + len(piece) - 1}",
        }
        patched = expect(http.request("PATCH", location, headers, piece), "PATCH chunk", 202)
        location = patched.headers.get("Location", location)
        replies.append(patched)
    done = http.request("PUT", with_query(location, digest=blob.digest), {"Content-Length": "0"})
    replies.append(expect(done, "PUT upload", 201))
    return replies


def mount(http: Http, repo: str, blob: Blob, source: str) -> list[Reply]:
    reply = http.request("POST", f"/v2/{repo}/blobs/uploads/?mount={blob.digest}&from={source}")
    return [expect(reply, "POST ?mount=", 201)]


def head_blob(http: Http, repo: str, digest: str) -> Reply:
    return http.request("HEAD", f"/v2/{repo}/blobs/{digest}")


def put_manifest(http: Http, repo: str, reference: str, body: bytes) -> Reply:
    headers = {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(body))}
    return expect(http.request("PUT", f"/v2/{repo}/manifests/{reference}", headers, body), "PUT manifest", 201)


def push_image(http: Http, repo: str, tag: str, config: Blob, layers: list[Blob], style: str = "patch") -> list[Reply]:
    """A client's image push: HEAD every blob first, upload the missing ones, PUT the manifest."""
    upload = {"patch": upload_patch_put, "monolithic": upload_post_put, "single": upload_single_post}[style]
    replies = []
    for blob in [*layers, config]:
        found = head_blob(http, repo, blob.digest)
        replies.append(expect(found, "HEAD blob", 200, 404))
        if found.status == 404:
            replies.extend(upload(http, repo, blob))
    replies.append(put_manifest(http, repo, tag, image_manifest(config, layers)))
    return replies
