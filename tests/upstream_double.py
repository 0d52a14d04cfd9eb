"""An upstream registry for proxy-cache tests: a small HTTP server speaking the distribution API's
read side (manifests and blobs, GET and HEAD, by tag or digest) on 127.0.0.1.

Auth is Basic (the challenge flow) or token (a `Bearer realm=.../token` challenge; the token
service takes the same Basic credentials). It counts requests per (method, path) and blob GETs
per digest, can answer 429 with Docker Hub's rate-limit headers, can send corrupted bytes for a
blob, can hold a blob's answer until the test releases it, and can be stopped. It serves the
OCI referrers API (optionally paged with `Link`, optionally ignoring the `artifactType` filter, or
absent: 404 as distribution 2.8 answers), and as much of Harbor's management API as a `harbor`
registry's listing reads (ping, projects, repositories, artifacts with their tags and `labels`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_ERRORS = {404: "MANIFEST_UNKNOWN", 401: "UNAUTHORIZED"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Upstream:
    def __init__(self, *, user: str = "puller", password: str = "Upstream-Pass-1", auth: str = "basic") -> None:
        self.user, self.password, self.auth = user, password, auth
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}  # (repo, digest) -> (type, body)
        self.tags: dict[tuple[str, str], str] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.blob_gets: Counter[str] = Counter()
        self.manifest_gets = 0
        self.rate_limited = False  # manifest and blob GETs answer 429 (HEAD stays free, as on Hub)
        self.limit_heads = False  # HEADs answer 429 too
        self.corrupt: set[str] = set()  # blobs sent with one byte changed
        self.hold: dict[str, threading.Event] = {}  # blob GETs that wait for the event
        self.referrers_api = True  # False: /referrers/ answers 404 (no such API)
        self.referrers_page = 0  # descriptors per referrers page (0: all in one)
        self.referrers_filter = True  # False: the artifactType filter is ignored (allowed by the spec)
        self.referrers_broken = False  # True: the referrers API answers 500
        self.labels: dict[str, list[str]] = {}  # digest -> Harbor label names (the artifact API shows them)
        self._tokens: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with upstream._lock:
                    upstream._connections.add(self.connection)

            def finish(self) -> None:
                with upstream._lock:
                    upstream._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                upstream._serve(self, "GET")

            def do_HEAD(self) -> None:
                upstream._serve(self, "HEAD")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # --- content ---

    def add_blob(self, data: bytes) -> dict[str, Any]:
        self.blobs[sha256(data)] = data
        return {"mediaType": OCI_LAYER, "digest": sha256(data), "size": len(data)}

    def add_manifest(self, repo: str, body: bytes, media_type: str, tag: str | None = None) -> str:
        digest = sha256(body)
        self.manifests[repo, digest] = (media_type, body)
        if tag is not None:
            self.tags[repo, tag] = digest
        return digest

    def add_image(self, repo: str, tag: str | None, layers: list[bytes], seed: str = "") -> tuple[str, bytes]:
        config = canonical({"architecture": "amd64", "os": "linux", "seed": seed or secrets.token_hex(4)})
        config_descriptor = {**self.add_blob(config), "mediaType": OCI_CONFIG}
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                    "layers": [self.add_blob(layer) for layer in layers]}  # fmt: skip
        body = canonical(document)
        return self.add_manifest(repo, body, OCI_MANIFEST, tag), body

    def add_index(self, repo: str, tag: str, children: list[tuple[str, bytes]]) -> tuple[str, bytes]:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
             "platform": {"architecture": arch, "os": "linux"}}
            for (digest, body), arch in zip(children, ("amd64", "arm64", "s390x"), strict=False)
        ]}  # fmt: skip
        body = canonical(document)
        return self.add_manifest(repo, body, OCI_INDEX, tag), body

    def stop(self) -> None:
        """Stop listening and cut every open (kept-alive) connection: a stopped upstream answers nothing."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    # --- the server ---

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests[method, path] += 1
        if path == "/token":
            return self._token(handler)
        if not self._authorised(handler.headers.get("Authorization") or ""):
            challenge = (f'Bearer realm="{self.url}/token",service="upstream"' if self.auth == "token"
                         else 'Basic realm="upstream"')  # fmt: skip
            return self._error(handler, method, 401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
        if path.startswith("/api/v2.0/"):
            return self._harbor(handler, path[len("/api/v2.0/") :])
        if path.rstrip("/") == "/v2":
            return self._answer(handler, method, 200, b"{}", {"Content-Type": "application/json"})
        if path == "/v2/_catalog":
            body = json.dumps({"repositories": sorted({r for (r, _) in self.tags})}).encode()
            return self._answer(handler, method, 200, body, {"Content-Type": "application/json"})
        if path.endswith("/tags/list"):
            repo = path[len("/v2/") : -len("/tags/list")]
            tags = sorted(t for (r, t) in self.tags if r == repo)
            if not tags:
                return self._error(handler, method, 404, "NAME_UNKNOWN")
            body = json.dumps({"name": repo, "tags": tags}).encode()
            return self._answer(handler, method, 200, body, {"Content-Type": "application/json"})
        if "/referrers/" in path:
            repo, _, digest = path[len("/v2/") :].rpartition("/referrers/")
            return self._referrers(handler, repo, digest)
        if "/manifests/" in path:
            repo, _, reference = path[len("/v2/") :].rpartition("/manifests/")
            return self._manifest(handler, method, repo, reference)
        if "/blobs/" in path:
            _, _, digest = path.rpartition("/blobs/")
            return self._blob(handler, method, digest)
        return self._error(handler, method, 404, "NOT_FOUND")

    def _authorised(self, header: str) -> bool:
        if self.auth == "none":
            return True
        if self.auth == "token":
            return header.startswith("Bearer ") and header[7:] in self._tokens
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return secrets.compare_digest(header, expected)

    def _token(self, handler: BaseHTTPRequestHandler) -> None:
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if not secrets.compare_digest(handler.headers.get("Authorization") or "", expected):
            return self._error(handler, "GET", 401, "UNAUTHORIZED")
        token = secrets.token_hex(16)
        self._tokens.add(token)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        return self._answer(handler, "GET", 200, body, {"Content-Type": "application/json"})

    def _limited(self, handler: BaseHTTPRequestHandler, method: str) -> bool:
        if self.rate_limited and (method == "GET" or self.limit_heads):
            self._error(handler, method, 429, "TOOMANYREQUESTS", {
                "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600", "Retry-After": "3600",
            })  # fmt: skip
            return True
        return False

    def _manifest(self, handler: BaseHTTPRequestHandler, method: str, repo: str, reference: str) -> None:
        if self._limited(handler, method):
            return None
        digest = reference if reference.startswith("sha256:") else self.tags.get((repo, reference))
        found = self.manifests.get((repo, digest)) if digest else None
        if found is None or digest is None:
            return self._error(handler, method, 404, "MANIFEST_UNKNOWN")
        if method == "GET":
            with self._lock:
                self.manifest_gets += 1
        media_type, body = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest,
                   "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "99;w=21600"}  # fmt: skip
        return self._answer(handler, method, 200, body, headers)

    def add_referrer(self, repo: str, subject: str, artifact_type: str, seed: str = "") -> str:
        """An artifact manifest whose `subject` is `subject` (a signature, an SBOM...)."""
        config = {**self.add_blob(b"{}"), "mediaType": "application/vnd.oci.empty.v1+json"}
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                    "config": config, "layers": [self.add_blob((seed or secrets.token_hex(4)).encode())],
                    "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
                    "annotations": {"seed": seed}}  # fmt: skip
        return self.add_manifest(repo, canonical(document), OCI_MANIFEST)

    def _referrers(self, handler: BaseHTTPRequestHandler, repo: str, subject: str) -> None:
        if self.referrers_broken:
            return self._error(handler, "GET", 500, "UNKNOWN")
        if not self.referrers_api:
            return self._error(handler, "GET", 404, "NOT_FOUND")
        query = parse_qs(urlsplit(handler.path).query)
        wanted = (query.get("artifactType") or [None])[0]
        found = []
        for (r, digest), (media_type, body) in sorted(self.manifests.items()):
            document = json.loads(body)
            if r != repo or (document.get("subject") or {}).get("digest") != subject:
                continue
            kind = document.get("artifactType") or document["config"]["mediaType"]
            if wanted and self.referrers_filter and kind != wanted:
                continue
            found.append({"mediaType": media_type, "digest": digest, "size": len(body), "artifactType": kind,
                          "annotations": document.get("annotations") or {}})  # fmt: skip
        start = int((query.get("start") or ["0"])[0])
        headers = {"Content-Type": OCI_INDEX}
        if wanted and self.referrers_filter:
            headers["OCI-Filters-Applied"] = "artifactType"
        if self.referrers_page:
            if start + self.referrers_page < len(found):
                following = f"/v2/{repo}/referrers/{subject}?start={start + self.referrers_page}"
                if wanted:
                    following += "&" + urlencode({"artifactType": wanted})
                headers["Link"] = f'<{following}>; rel="next"'
            found = found[start : start + self.referrers_page]
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}).encode()
        return self._answer(handler, "GET", 200, body, headers)

    def _harbor(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        """Harbor's listing API, one page each: what `HarborAdapter.artifacts` reads."""
        parts = path.split("/")
        repos = sorted({r for (r, _) in self.tags})
        found: Any
        if parts == ["ping"]:
            found = "Pong"
        elif parts == ["projects"]:
            found = [{"name": p} for p in sorted({r.split("/", 1)[0] for r in repos})]
        elif len(parts) == 3 and parts[0] == "projects" and parts[2] == "repositories":
            found = [{"name": r} for r in repos if r.split("/", 1)[0] == parts[1]]
        elif len(parts) == 5 and parts[0] == "projects" and parts[4] == "artifacts":
            repo = f"{parts[1]}/{unquote(unquote(parts[3]))}"
            digests = sorted({d for (r, _), d in self.tags.items() if r == repo})
            if not digests:
                return self._error(handler, "GET", 404, "NOT_FOUND")
            found = [{"digest": d, "type": "IMAGE",
                      "tags": [{"name": t} for (r, t), x in sorted(self.tags.items()) if r == repo and x == d],
                      "labels": [{"name": n} for n in self.labels.get(d, [])]} for d in digests]  # fmt: skip
        else:
            return self._error(handler, "GET", 404, "NOT_FOUND")
        return self._answer(handler, "GET", 200, json.dumps(found).encode(), {"Content-Type": "application/json"})

    def _blob(self, handler: BaseHTTPRequestHandler, method: str, digest: str) -> None:
        if self._limited(handler, method):
            return None
        data = self.blobs.get(digest)
        if data is None:
            return self._error(handler, method, 404, "BLOB_UNKNOWN")
        if method == "GET":
            with self._lock:
                self.blob_gets[digest] += 1
            gate = self.hold.get(digest)
            if gate is not None:
                gate.wait(30)
            if digest in self.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        return self._answer(handler, method, 200, data, headers)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, method: str, status: int, body: bytes,
                headers: dict[str, str]) -> None:  # fmt: skip
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Docker-Distribution-API-Version", "registry/2.0")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(body)

    def _error(self, handler: BaseHTTPRequestHandler, method: str, status: int, code: str,
               headers: dict[str, str] | None = None) -> None:  # fmt: skip
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._answer(handler, method, status, body, {"Content-Type": "application/json", **(headers or {})})
