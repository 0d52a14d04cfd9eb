"""Helpers for the end-to-end tests: the `make serve` process, client commands and OCI layouts."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# Every repository the tests create lives here: `library` is the project Harbor (and this registry) always has.
NAMESPACE = "library/e2e"
ADMIN = "admin"
LISTENING = "registry listening on"
STATE_SAVED = "state saved"
LOCKED = "another registry is already using"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def repo_name(name: str) -> str:
    """A repository under the tests' namespace: repo_name("skopeo/tiny") == "library/e2e/skopeo/tiny"."""
    return f"{NAMESPACE}/{name}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Distinct free ports: every socket stays bound until all are chosen (two `free_port()` calls in
    a row may be handed the same port)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# Shared harness (`../shared/harness` beside the clone).


def find_harness() -> Path | None:
    candidates = []
    if os.environ.get("E2E_SHARED_DIR"):
        candidates.append(Path(os.environ["E2E_SHARED_DIR"]) / "harness")
    candidates += [REPO_ROOT.parent / "shared" / "harness", Path("/work/shared/harness")]
    for c in candidates:
        if (c / "make-images").is_file() and (c / "push-pull-check").is_file():
            return c.resolve()
    return None


# Commands.


class CommandLog:
    """Every client command and its output, appended to one file in the session's tmp dir."""

    path: ClassVar[Path | None] = None

    @classmethod
    def write(cls, text: str) -> None:
        if cls.path is not None:
            with cls.path.open("a", encoding="utf-8") as f:
                f.write(text)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; stdout and stderr combined in `.stdout`."""
    argv = [str(c) for c in cmd]
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        p = subprocess.CompletedProcess(argv, 124, out + f"\n[timeout after {timeout}s]")
    CommandLog.write(f"$ {' '.join(argv)}\n[rc={p.returncode} {time.monotonic() - t0:.2f}s]\n{p.stdout}\n")
    return p


def check(cmd: Sequence[str | os.PathLike[str]], **kw: Any) -> str:
    p = run(cmd, **kw)
    assert p.returncode == 0, f"command failed (rc={p.returncode}): {' '.join(p.args)}\n{p.stdout[-3000:]}"
    return p.stdout


def require_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (`make system-deps` installs skopeo, podman and docker-registry)"
    return path


# The server, started exactly like a developer does: `make serve`.


def proc_stat(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name (state, ppid, pgrp, ...); None when
    there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _pgrp_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        # a zombie no longer counts as running code
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_group(leader: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process group and wait (10 s at most) until none of it runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    leader.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _pgrp_members(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.1)


class RegistryServer:
    """One `make serve` process group with its own port, data dir and log file."""

    live: ClassVar[list[RegistryServer]] = []
    instances: ClassVar[list[RegistryServer]] = []
    command: ClassVar[tuple[str, ...]] = ("make", "serve")

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        port: int | None = None,
        password: str | None = None,
        *,
        record_relay: bool = False,
        **extra_env: str,
    ) -> None:
        """`record_relay`: upload Locations point at a `RecordingProxy` in front of the relay
        (`relay_proxy`), so a test can see which requests a client sent there."""
        self.data_dir = data_dir
        self.log_path = log_path
        ports = [p for p in free_ports(2) if p != port]
        self.port = port or ports[0]
        # The upload relay `make serve` runs beside the app; kept across restarts (clients hold its URLs).
        self.relay_port = ports[-1]
        # The admin password the first start creates the admin with (a restart must pass the same one).
        self.password = password or "E2e-" + secrets.token_hex(12)
        self.extra_env = extra_env
        self.relay_proxy = RecordingProxy(self.relay_port) if record_relay else None
        if self.relay_proxy is not None:
            self.extra_env["REGISTRY_RELAY_URL"] = f"http://{self.relay_proxy.hostport}"
        self._tokens: dict[str | None, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at_offset = 0
        RegistryServer.instances.append(self)

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def ref(self, repo: str, tag_or_digest: str | None = None) -> str:
        r = f"{self.hostport}/{repo}"
        if tag_or_digest:
            r += ("@" if ":" in tag_or_digest else ":") + tag_or_digest
        return r

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        # A top-level `make serve`, even when the tests themselves run under `make test`.
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
            env.pop(k, None)
        env["REGISTRY_PORT"] = str(self.port)
        env["REGISTRY_RELAY_PORT"] = str(self.relay_port)
        env["REGISTRY_DATA_DIR"] = str(self.data_dir)
        env["REGISTRY_ADMIN_PASSWORD"] = self.password
        env.update(self.extra_env)
        return env

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def launch(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at_offset = self.log_size()
        with self.log_path.open("ab") as log:
            log.write(f"===== make serve port={self.port} data={self.data_dir} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(self.command),
                cwd=REPO_ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        RegistryServer.live.append(self)
        return self.proc

    def start(self, timeout: float = 60, install_timeout: float = 300) -> RegistryServer:
        """Launch and wait for the "listening" line and GET /v2/ -> 200.

        `timeout` counts from the moment make execs python; before that make may still be refreshing the
        venv (`pip install` when requirements changed since its stamp), which gets `install_timeout`.
        """
        proc = self.launch()
        t0 = time.monotonic()
        exec_seen_at: float | None = None
        while True:
            now = time.monotonic()
            log = self.log_text(self.started_at_offset)
            if proc.poll() is not None:
                raise AssertionError(f"make serve exited with {proc.returncode} before listening:\n{log}")
            if exec_seen_at is None and "-m chalicelib.local" in log:
                exec_seen_at = now
            if LISTENING in log:
                with contextlib.suppress(requests.RequestException):
                    if self.http("GET", "/v2/", timeout=5).status_code == 200:
                        return self
            if (exec_seen_at is not None and now - exec_seen_at > timeout) or now - t0 > install_timeout + timeout:
                break
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"make serve not ready on {self.url} after {time.monotonic() - t0:.0f}s:\n{log}")

    def python_pids(self) -> list[int]:
        assert self.proc is not None
        return [p for p in _pgrp_members(self.proc.pid) if p != self.proc.pid]

    def relay_requests(self, method: str, repo: str) -> list[dict[str, str]]:
        """Headers of the `method` requests on `repo`'s upload sessions that reached the relay."""
        assert self.relay_proxy is not None, "start the server with record_relay=True"
        return [
            h for m, p, h in self.relay_proxy.requests if m == method and p.startswith(f"/v2/{repo}/blobs/uploads/")
        ]

    def stop(self, timeout: float = 60, expect_saved: bool = True) -> str:
        """SIGTERM the process group as a developer's `kill -- -PGID` or a supervisor would; return this run's log.

        Both make and python end (nothing of the group is left) and, unless `expect_saved` is false (a
        server that never started), python reported the SIGTERM and saved its state.
        """
        assert self.proc is not None
        pgid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"make serve did not end {timeout}s after SIGTERM") from None
        deadline = time.monotonic() + 10
        while _pgrp_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _pgrp_members(pgid)
        if self in RegistryServer.live:
            RegistryServer.live.remove(self)
        assert not left, f"processes still running in the server's group after SIGTERM: {left}"
        log = self.log_text(self.started_at_offset)
        if expect_saved:
            tail = log[-2500:]
            assert "stopping on SIGTERM" in log, f"{self.url} did not report the SIGTERM:\n{tail}"
            assert STATE_SAVED in log, (
                f"{self.url} did not save its state on SIGTERM (rc={self.proc.returncode}):\n{tail}"
            )
        return log

    def kill(self) -> None:
        """SIGKILL the whole group (a crash); no state is saved by the process itself."""
        if self.proc is None:
            return
        _kill_group(self.proc)
        if self in RegistryServer.live:
            RegistryServer.live.remove(self)

    # Client credentials.

    @property
    def creds(self) -> str:
        return f"{ADMIN}:{self.password}"

    def skopeo_src(self) -> list[str]:
        return ["--src-tls-verify=false", "--src-creds", self.creds]

    def skopeo_dest(self) -> list[str]:
        return ["--dest-tls-verify=false", "--dest-creds", self.creds]

    def skopeo_plain(self) -> list[str]:
        """For inspect, list-tags and delete."""
        return ["--tls-verify=false", "--creds", self.creds]

    # Raw HTTP as the admin: Basic credentials, or the Bearer token flow when the registry asks for it.

    def http(self, method: str, path: str, scope: str | None = None, **kw: Any) -> requests.Response:
        url = path if path.startswith("http") else self.url + path
        kw.setdefault("timeout", 60)
        headers = dict(kw.pop("headers", None) or {})
        token = self._tokens.get(scope)
        headers["Authorization"] = f"Bearer {token}" if token else _basic(ADMIN, self.password)
        r = requests.request(method, url, headers=headers, **kw)
        challenge = r.headers.get("WWW-Authenticate", "")
        if r.status_code == 401 and challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params.pop("realm")
            params.pop("error", None)
            if scope and "scope" not in params:
                params["scope"] = scope
            t = requests.get(realm, params=params, auth=(ADMIN, self.password), timeout=60)
            assert t.status_code == 200, f"token from {realm} {params}: {t.status_code} {t.text}"
            self._tokens[scope] = t.json().get("token") or t.json()["access_token"]
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            r = requests.request(method, url, headers=headers, **kw)
        return r

    def get_manifest(self, repo: str, ref: str, accept: str = MANIFEST_ACCEPT) -> requests.Response:
        return self.http("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})

    def tags(self, repo: str) -> list[str]:
        r = self.http("GET", f"/v2/{repo}/tags/list")
        assert r.status_code == 200, f"GET tags/list {repo}: {r.status_code} {r.text}"
        return list(r.json().get("tags") or [])


class RecordingProxy:
    """A TCP pass-through in front of the registry that records each request line and its headers.

    Lets a test prove which upload path a client took (e.g. `Transfer-Encoding: chunked` PATCHes).
    """

    _REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n(.*?)\r\n\r\n", re.DOTALL)

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if record:
                    for m in self._REQUEST.finditer(data):
                        headers = {}
                        for line in m.group(3).split(b"\r\n"):
                            k, _, v = line.decode("latin-1").partition(":")
                            headers[k.strip().lower()] = v.strip()
                        with self._lock:
                            self.requests.append((m.group(1).decode(), m.group(2).decode("latin-1"), headers))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


# OCI image layouts.


class Layout:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def index(self) -> dict[str, Any]:
        return json.loads((self.path / "index.json").read_bytes())

    def ref(self, name: str) -> dict[str, Any]:
        for m in self.index().get("manifests", []):
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == name:
                return dict(m)
        raise AssertionError(f"no ref {name!r} in {self.path}/index.json: {self.index()}")

    def blob_path(self, digest: str) -> Path:
        alg, hexd = digest.split(":", 1)
        return self.path / "blobs" / alg / hexd

    def blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def json_blob(self, digest: str) -> dict[str, Any]:
        return json.loads(self.blob(digest))

    def reachable(self, digest: str) -> set[str]:
        """Digests of every blob a manifest or index references, itself included."""
        out = {digest}
        doc = self.json_blob(digest)
        for child in doc.get("manifests", []):
            out |= self.reachable(child["digest"])
        if "config" in doc:
            out.add(doc["config"]["digest"])
        out |= {layer["digest"] for layer in doc.get("layers", [])}
        return out

    def bad_blobs(self) -> list[str]:
        """Blobs whose content does not hash to their name."""
        bad = []
        for p in sorted((self.path / "blobs" / "sha256").iterdir()):
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != p.name:
                bad.append(p.name)
        return bad


def assert_same_blobs(original: Layout, pulled: Layout, digests: Iterable[str]) -> None:
    """Every listed blob exists in the pulled layout with exactly the original bytes."""
    for d in sorted(digests):
        assert pulled.blob_path(d).exists(), f"blob {d} missing from the pulled layout {pulled.path}"
        assert pulled.blob(d) == original.blob(d), f"blob {d} differs after the round trip"
    assert pulled.bad_blobs() == [], f"pulled layout has blobs that do not match their digest: {pulled.bad_blobs()}"


def gunzip_sha256(data: bytes) -> str:
    return sha256(gzip.decompress(data))


def python_of_venv() -> Path:
    """The venv the tests run in (the repo's .venv when run as documented)."""
    venv = REPO_ROOT / ".venv"
    if (venv / "bin" / "python").exists():
        return venv
    return Path(sys.prefix)


# The management API (/api/v2.0) as the admin.

API = "/api/v2.0"
ZERO_TIME = "0001-01-01T00:00:00.000Z"  # Harbor's time never set (e.g. pull_time before any pull)


def artifacts_path(repo: str, suffix: str = "") -> str:
    """`/api/v2.0/projects/<p>/repositories/<r>/artifacts<suffix>`, the repository URL-encoded twice (Harbor)."""
    project, _, name = repo.partition("/")
    encoded = quote(quote(name, safe=""), safe="")
    return f"{API}/projects/{project}/repositories/{encoded}/artifacts{suffix}"


def api_get(registry: RegistryServer, path: str, **params: Any) -> Any:
    """GET a management API path as the admin; asserts 200 and returns the JSON."""
    r = registry.http("GET", path, params=params or None)
    assert r.status_code == 200, f"GET {path} {params}: {r.status_code} {r.text}"
    return r.json()


def poll(probe: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Call `probe` until it returns something truthy or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def oras_client_for(registry: RegistryServer) -> Any:
    """An oras-py client logged in as the admin; use one per repository (see test_oras.py's `client`)."""
    from oras.client import OrasClient  # imported here: oras-py is a dev dependency the modules importorskip

    client = OrasClient(hostname=registry.hostport, insecure=True)
    client.auth.set_basic_auth(ADMIN, registry.password)
    return client


# Images with one big layer, and the Docker daemon that pushes them.


def single_layer_image(out: Path, layer_mb: int, seed: str) -> Layout:
    """An OCI layout (tag `latest`) of one gzip layer holding `layer_mb` MB of seeded random bytes
    (incompressible, so the layer is as big as its content), with a config that `docker load` and
    containerd accept (its diff_id is the uncompressed tar's digest)."""
    import io
    import random
    import tarfile

    payload = random.Random(seed).randbytes(layer_mb * 1024 * 1024)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mtime, info.mode = len(payload), 1704067200, 0o644
        archive.addfile(info, io.BytesIO(payload))
    uncompressed = tar.getvalue()
    # Stored deflate blocks: random bytes do not compress, and level 1 spends ~1.3 s per 64 MB learning that.
    layer = gzip.compress(uncompressed, compresslevel=0, mtime=0)
    config = canon({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/payload.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(uncompressed)]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"e2e {seed}"}],
    })  # fmt: skip
    manifest = canon({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer),
                    "size": len(layer)}],
    })  # fmt: skip
    (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for blob in (layer, config, manifest):
        (out / "blobs" / "sha256" / sha256(blob).split(":")[1]).write_bytes(blob)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }]}  # fmt: skip
    (out / "index.json").write_bytes(canon(index))
    return Layout(out)


class Dockerd:
    """Debian's dockerd (docker.io) in a directory of its own: no iptables, no bridge, vfs storage,
    loopback registries insecure (plain http). It runs its own containerd, which `ctr` reaches."""

    DOCKER = "/usr/bin/docker"  # Debian's client: another `docker` may come first on PATH

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def containerd_socket(self) -> Path:
        return self.root / "exec" / "containerd" / "containerd.sock"

    def start(self, timeout: float = 60) -> Dockerd:
        dockerd = shutil.which("dockerd")
        assert dockerd and Path(self.DOCKER).exists(), (
            "dockerd is not installed (`make system-deps` installs docker.io)"
        )
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip-forward=false", "--bridge=none", "--storage-driver=vfs",
             "--insecure-registry=127.0.0.0/8", f"--data-root={self.root / 'data'}",
             f"--exec-root={self.root / 'exec'}", f"--pidfile={self.root / 'dockerd.pid'}",
             f"--host=unix://{self.socket}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.proc.returncode}: {self.log()[-3000:]}")
            if run(self.docker_cmd("version"), timeout=10).returncode == 0 and self.containerd_socket.exists():
                return self
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"dockerd not ready after {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")

    def docker_cmd(self, *args: str) -> list[str]:
        return [self.DOCKER, "--host", f"unix://{self.socket}", *args]

    def docker(self, *args: str, timeout: float = 300) -> str:
        return check(self.docker_cmd(*args), timeout=timeout)

    def ctr(self, *args: str, timeout: float = 300) -> str:
        return check(["ctr", "--address", str(self.containerd_socket), "--namespace", "e2e", *args], timeout=timeout)

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containerd), SIGKILL the group if it lingers."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        _kill_group(self.proc)  # what is left of the group (its containerd, if it outlived dockerd)
        self.proc = None


# Memory and CPU of a server process, and one big streamed push (the relay's bounded-memory check).


class ProcessUsage:
    """Resident memory and CPU time of one process, read from /proc.

    `reset_peak` writes 5 to `/proc/<pid>/clear_refs`, which sets the process's peak resident size
    (VmHWM) back to its current one, so `peak_bytes` afterwards is the peak of what followed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def rss_bytes(self) -> int:
        return self._status("VmRSS")

    def peak_bytes(self) -> int:
        return self._status("VmHWM")

    def cpu_seconds(self) -> float:
        fields = proc_stat(self.pid)
        assert fields is not None, f"process {self.pid} is gone"
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_streamed_blob(base_url: str, repo: str, size: int, auth: tuple[str, str], seed: str) -> str:
    """Push `size` seeded random bytes as one blob the way docker does (POST, one PATCH with a
    chunked body produced while it is sent, PUT ?digest=), never holding the blob in memory."""
    import random

    rng = random.Random(seed)
    hasher = hashlib.sha256()

    def body() -> Iterable[bytes]:
        left = size
        while left:
            block = rng.randbytes(min(left, 1024 * 1024))
            hasher.update(block)
            left -= len(block)
            yield block

    session = requests.post(f"{base_url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=60)
    assert session.status_code == 202, session.text
    patched = requests.patch(session.headers["Location"], data=body(), timeout=1800)
    assert patched.status_code == 202, patched.text
    digest = "sha256:" + hasher.hexdigest()
    closed = requests.put(patched.headers["Location"], params={"digest": digest}, timeout=1800)
    assert closed.status_code == 201, closed.text
    return digest
