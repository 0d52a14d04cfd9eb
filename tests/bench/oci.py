"""A minimal OCI push client over any HTTP transport (werkzeug's test client or requests).

Only what the benchmarks need: random blobs, image manifests and the upload flows real clients use
(skopeo: HEAD, POST, PATCH, PUT; oras/containerd: POST then PUT with the body; chunked: PATCHes
with Content-Range; single POST ?digest=; cross-repository mount).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
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


class Authenticated:
    """Docker registry auth over any `Http`: answers a 401 challenge (Bearer token or Basic) and keeps
    the credential for the next requests, as skopeo and docker do. Without credentials, or against a
    registry that never answers 401 (distribution here), it is a pass-through.

    `login()` fetches one token for several scopes up front, so that measured requests carry a token
    and never pay the 401 round trip.
    """

    def __init__(self, inner: Http, creds: tuple[str, str] | None) -> None:
        self.inner = inner
        self.creds = creds
        self.authorization: str | None = None
        self.scopes: list[str] = []
        self.last_token_reply: Reply | None = None

    def request(self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> Reply:
        sent = dict(headers or {})
        if self.authorization:
            sent["Authorization"] = self.authorization
        reply = self.inner.request(method, target, sent, body)
        if reply.status == 401 and self.creds:
            authorization = self.negotiate(reply.headers.get("WWW-Authenticate", ""))
            if authorization:
                self.authorization = sent["Authorization"] = authorization
                reply = self.inner.request(method, target, sent, body)
        return reply

    def login(self, scopes: list[str]) -> list[Reply]:
        """GET /v2/ and, when it answers 401, one token for all `scopes`; returns the replies."""
        self.last_token_reply = None
        probe = self.inner.request("GET", "/v2/")
        if probe.status != 401 or not self.creds:
            return [probe]
        self.scopes = list(dict.fromkeys([*self.scopes, *scopes]))
        authorization = self.negotiate(probe.headers.get("WWW-Authenticate", ""), add_scope=False)
        if authorization is None:
            raise BenchError(f"could not authenticate: {probe.headers.get('WWW-Authenticate')!r}")
        self.authorization = authorization
        return [probe] + ([self.last_token_reply] if self.last_token_reply else [])

    def negotiate(self, challenge: str, add_scope: bool = True) -> str | None:
        assert self.creds is not None
        basic = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            return basic
        if scheme.lower() != "bearer":
            return None
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = params.get("realm")
        if not realm:
            return None
        if add_scope and params.get("scope"):
            self.scopes = list(dict.fromkeys([*self.scopes, *params["scope"].split(" ")]))
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", scope) for scope in self.scopes]
        url = realm + ("?" + urlencode(query) if query else "")
        reply = self.inner.request("GET", url, {"Authorization": basic})
        self.last_token_reply = reply
        if reply.status != 200:
            raise BenchError(f"token request: HTTP {reply.status}: {reply.body[:300]!r}")
        document = json.loads(reply.body)
        token = document.get("token") or document.get("access_token")
        return f"Bearer {token}" if token else None


def pull_push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


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
