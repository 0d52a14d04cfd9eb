"""Local registry peers for the remote-registry client's tests (127.0.0.1 only, no internet):

- `Distribution`: CNCF distribution 2.8 (`docker-registry`), plain, with Basic auth (through the
  shared harness' `run-distribution`) or with token auth against `TokenServer`;
- `TokenServer`: a Docker token service (RS256 JWTs carrying the signing certificate in `x5c`);
  anonymous callers get `pull`, the one user gets everything, a wrong password gets 401;
- `HubDouble`: a Docker-Hub-shaped front of a distribution: the Hub's rate-limit headers on manifest
  GETs and 429 TOOMANYREQUESTS when a budget is spent (HEAD is free), the parts of the Hub API the
  `docker-hub` adapter calls, request counting, and faults on demand (5xx bursts, corrupted blobs).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .support import find_harness, free_port, proc_stat

DIST_BIN = "/usr/bin/docker-registry"


def _wait_for(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1, verify=False)  # a local test peer's self-signed cert
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Distribution:
    """distribution 2.8 on a free port; `auth="user:pass"` for htpasswd, `token=` for token auth,
    `proxy=URL` for its pull-through cache mode in front of that registry."""

    def __init__(
        self,
        state: Path,
        auth: str | None = None,
        token: TokenServer | None = None,
        tls: tuple[Path, Path] | None = None,
        proxy: str | None = None,
    ) -> None:
        self.port = free_port()
        self.state = state
        self.auth = auth
        self.token = token
        self.tls = tls  # (certificate, key): serve https
        self.proxy = proxy
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Distribution:
        if self.token is None and self.tls is None and self.proxy is None:
            harness = find_harness()
            assert harness is not None, "the shared harness (run-distribution) is missing"
            args = [str(harness / "run-distribution"), "start", "--port", str(self.port), "--dir", str(self.state)]
            subprocess.run([*args, *(["--auth", self.auth] if self.auth else [])], check=True, capture_output=True)
            return self
        self.state.mkdir(parents=True, exist_ok=True)
        http = f'addr: "127.0.0.1:{self.port}"\n  secret: test-secret'
        if self.tls:
            http += f"\n  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}"
        auth = ""
        if self.token:
            auth = f"""auth:
  token:
    realm: {self.token.url}/token
    service: {self.token.service}
    issuer: {self.token.issuer}
    rootcertbundle: {self.token.bundle}
"""
        if self.proxy:
            auth += f"proxy:\n  remoteurl: {self.proxy}\n"
        (self.state / "config.yml").write_text(
            f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {self.state / "storage"}}}
  delete: {{enabled: true}}
  cache: {{blobdescriptor: inmemory}}
http:
  {http}
{auth}"""
        )
        log = (self.state / "registry.log").open("wb")
        self._process = subprocess.Popen([DIST_BIN, "serve", str(self.state / "config.yml")], stdout=log, stderr=log)
        _wait_for(self.url + "/v2/")
        return self

    def stop(self) -> None:
        """Kill it outright: distribution drains for ~1.6 s on SIGTERM, and a test peer's state
        is thrown away anyway."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            return
        pid_file = self.state / "registry.pid"
        with contextlib.suppress(OSError, ValueError):  # not running, or no pid file
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
            pid_file.unlink()  # the harness's `stop` would take the unreaped zombie for a live process
        harness = find_harness()
        assert harness is not None
        subprocess.run(
            [str(harness / "run-distribution"), "stop", "--port", str(self.port), "--dir", str(self.state)],
            check=False,
            capture_output=True,
        )


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until the process has exited. It was started by the harness's script, which has exited, so
    init reaps it, when it gets to it: a zombie counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return
        time.sleep(0.01)


class _Server:
    """A ThreadingHTTPServer on a free port, serving `handler` in a thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.httpd.daemon_threads = True
        self.httpd.peer = self  # type: ignore[attr-defined]
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TokenServer(_Server):
    service = "peer-registry"
    issuer = "peer-token-issuer"

    def __init__(self, state: Path, user: str = "alice", password: str = "wonderland") -> None:
        super().__init__(_TokenHandler)
        self.user, self.password = user, password
        self.requests: list[dict[str, Any]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer-token")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        state.mkdir(parents=True, exist_ok=True)
        self.bundle = state / "token-cert.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def mint(self, user: str | None, scopes: list[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": self.grant(user, scopes),
        }
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": x5c})


class _TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: TokenServer = self.server.peer  # type: ignore[attr-defined]
        query = parse_qs(urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (name, password) != (server.user, server.password):
                self._answer(401, {"details": "bad credentials"})
                return
            user = name
        scopes = query.get("scope", [])
        server.requests.append({"user": user, "scopes": scopes, "service": query.get("service", [""])[0]})
        token = server.mint(user, scopes)
        self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class HubDouble(_Server):
    """Docker Hub's shape in front of a distribution at `upstream` (host:port)."""

    def __init__(self, upstream_port: int, limit: int = 100, window: int = 21600) -> None:
        super().__init__(_HubHandler)
        self.upstream_port = upstream_port
        self.limit, self.window = limit, window
        self.pulls = 0
        self.counts: Counter[str] = Counter()  # "METHOD path" -> how many times it was asked
        self.retry_after: str | None = "3600"  # what a 429 says (None: no Retry-After header)
        self.fail_next = 0  # answer this many next registry calls with 503
        self.corrupt_blobs = False
        self.basic: tuple[str, str] | None = None  # registry calls need these Basic credentials
        self.redirect_blobs = False  # blob GETs answer 307 to http://localhost:<port>/_storage/...
        self.storage_auth: list[str | None] = []  # the Authorization header each /_storage call carried
        self.swallow_patches = 0  # forward this many next PATCHes, then drop the connection unanswered
        self.chunk_headers: dict[str, str] = {}  # added to an upload's 202 (OCI-Chunk-Min/Max-Length)
        self.token = "hub-" + secrets.token_hex(8)
        self.user, self.password = "hubuser", "hubpass"
        self.repositories: dict[str, list[str]] = {}  # namespace -> names (the Hub API's view)
        self.orgs: set[str] = set()
        self.deleted_tags: list[str] = []
        self.lock = threading.Lock()


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def hub(self) -> HubDouble:
        return self.server.peer  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        hub = self.hub
        with hub.lock:
            hub.counts[f"{method} {path}"] += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/_storage/"):  # where blob GETs are redirected: another origin
            with hub.lock:
                hub.storage_auth.append(self.headers.get("Authorization"))
            self.path = self.path.removeprefix("/_storage")
            self._registry(method, body, storage=True)
        elif (
            path.startswith("/v2/")
            and not path.startswith("/v2/repositories/")
            and not path.startswith(("/v2/auth/", "/v2/orgs/"))
        ):
            self._registry(method, body)
        else:
            self._hub_api(method, path, body)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _registry(self, method: str, body: bytes, storage: bool = False) -> None:
        hub = self.hub
        with hub.lock:
            if hub.fail_next > 0:
                hub.fail_next -= 1
                self._send(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
                return
        if hub.basic and not storage:
            expected = "Basic " + base64.b64encode(":".join(hub.basic).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": 'Basic realm="hub"'})
                return
        if hub.redirect_blobs and not storage and method == "GET" and "/blobs/sha256:" in self.path:
            self._send(307, b"", {"Location": f"http://localhost:{hub.port}/_storage{self.path}"})
            return
        is_manifest_get = method == "GET" and "/manifests/" in self.path
        limit_headers = {}
        if is_manifest_get:
            with hub.lock:
                if hub.pulls >= hub.limit:
                    headers = {"Content-Type": "application/json", "RateLimit-Limit": f"{hub.limit};w={hub.window}"}
                    headers["RateLimit-Remaining"] = f"0;w={hub.window}"
                    if hub.retry_after is not None:
                        headers["Retry-After"] = hub.retry_after
                    message = "You have reached your pull rate limit."
                    payload = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]})
                    self._send(429, payload.encode(), headers)
                    return
                hub.pulls += 1
                limit_headers = {
                    "RateLimit-Limit": f"{hub.limit};w={hub.window}",
                    "RateLimit-Remaining": f"{hub.limit - hub.pulls};w={hub.window}",
                    "Docker-RateLimit-Source": self.client_address[0],
                }
        upstream = http.client.HTTPConnection("127.0.0.1", hub.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        upstream.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
        upstream.putheader("Host", f"127.0.0.1:{hub.port}")
        for key, value in headers.items():
            upstream.putheader(key, value)
        upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        if method == "PATCH" and hub.swallow_patches > 0:
            hub.swallow_patches -= 1
            self.close_connection = True  # the bytes landed upstream; the client never hears so
            return
        if hub.corrupt_blobs and method == "GET" and "/blobs/sha256:" in self.path and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        out = {k: v for k, v in answer.getheaders() if k.lower() not in ("content-length", "transfer-encoding")}
        if method == "POST" and self.path.split("?")[0].endswith("/blobs/uploads/") and answer.status == 202:
            out.update(hub.chunk_headers)
        if method == "HEAD":
            self.send_response(answer.status)
            for key, value in {**out, **limit_headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
            self.end_headers()
            return
        self._send(answer.status, data, {**out, **limit_headers})

    def _hub_api(self, method: str, path: str, body: bytes) -> None:
        hub = self.hub
        if method == "POST" and path == "/v2/auth/token":
            login = json.loads(body or b"{}")
            if (login.get("identifier"), login.get("secret")) != (hub.user, hub.password):
                self._json(401, {"detail": "Incorrect authentication credentials"})
                return
            self._json(200, {"access_token": hub.token})
            return
        if self.headers.get("Authorization") != f"Bearer {hub.token}":
            self._json(401, {"detail": "authentication required"})
            return
        parts = [p for p in path.split("/") if p]  # v2, repositories|orgs, ...
        query = parse_qs(urlsplit(self.path).query)
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["100"])[0])
        if parts[1] == "orgs":
            if method == "POST":
                hub.orgs.add(json.loads(body)["orgname"])
                self._json(201, {})
            else:
                found = parts[2] in hub.orgs or parts[2] in hub.repositories
                self._json(200 if found else 404, {})
            return
        if parts == ["v2", "repositories", "namespaces"]:
            self._json(200, {"namespaces": sorted(hub.repositories)})
        elif len(parts) == 3:
            names = hub.repositories.get(parts[2], [])
            self._page(
                [{"name": n, "namespace": parts[2], "repository_type": "image"} for n in names], page, size, path
            )
        elif len(parts) == 5 and parts[4] == "tags":
            tags = requests.get(
                f"http://127.0.0.1:{hub.upstream_port}/v2/{parts[2]}/{parts[3]}/tags/list", timeout=10
            ).json()
            self._page([{"name": t, "full_size": 0} for t in sorted(tags.get("tags") or [])], page, size, path)
        elif len(parts) == 6 and method == "DELETE":
            hub.deleted_tags.append(f"{parts[2]}/{parts[3]}:{parts[5]}")
            self._send(204, b"")
        else:
            self._json(404, {"detail": "not found"})

    def _page(self, items: list[dict[str, Any]], page: int, size: int, path: str) -> None:
        chunk = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        next_url = f"{self.hub.url}{path}?page={page + 1}&page_size={size}" if more else None
        self._json(200, {"count": len(items), "next": next_url, "previous": None, "results": chunk})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
