"""`make serve` survives `kill -9`: what a client was told succeeded is there after a restart.

Each round starts the registry on the same data dir (as `make serve` does), sets clients going
(skopeo pushes of fresh random images, project and user creation, GC and retention runs) and kills
the whole process group with SIGKILL at a random moment. Before the restart, what the killed
registry left on disk must hold no visible blob row without its bytes; after it, every push a
client saw succeed (in any round so far) pulls byte-exact, and every project and user the API
acknowledged exists (a user can still sign in with its password).

Compaction runs every second once the journal passes 64 KiB, so kills also land during
compactions. Rounds: `E2E_CRASH_ROUNDS` (default 2: three starts of the registry, most of the
test's time; set it higher to hunt). `E2E_CRASH_SEED` replays a run's choices (printed at the end).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .crash_support import blob_rows_without_bytes, random_layout
from .support import API, Layout, RegistryServer, assert_same_blobs, check, repo_name, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUNDS = int(os.environ.get("E2E_CRASH_ROUNDS", "2"))
SEED = int(os.environ.get("E2E_CRASH_SEED", str(random.randrange(1 << 30))))
# Layer sizes: small ones, and one past the store's O_DIRECT threshold (1 MiB).
SIZES = (8 * 1024, 200 * 1024, 2 * 1024 * 1024)


@pytest.fixture(autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


@dataclass
class Acknowledged:
    """What clients were told succeeded, over every round."""

    pushes: list[tuple[str, str, Path]] = field(default_factory=list)  # repo, manifest digest, layout
    projects: list[str] = field(default_factory=list)
    users: list[tuple[str, str]] = field(default_factory=list)
    verified_pushes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pusher(server: RegistryServer, work: Path, label: str, rng: random.Random, acked: Acknowledged,
            stop: threading.Event) -> None:  # fmt: skip
    n = 0
    while not stop.is_set():
        n += 1
        layout = work / f"{label}-{n}"
        digest = random_layout(layout, rng.choice(SIZES))
        repo = repo_name(f"crash/{label}-{n}")
        proc = subprocess.run(
            ["skopeo", "copy", "--preserve-digests", *server.skopeo_dest(), f"oci:{layout}:latest",
             "docker://" + server.ref(repo, "v1")],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            with acked.lock:
                acked.pushes.append((repo, digest, layout))


def _api_writer(server: RegistryServer, label: str, acked: Acknowledged, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        name = f"crash-{label}-{n}"
        with contextlib.suppress(requests.RequestException):
            r = server.http("POST", f"{API}/projects", json={"project_name": name, "metadata": {"public": "false"}},
                            timeout=10)  # fmt: skip
            if r.status_code == 201:
                with acked.lock:
                    acked.projects.append(name)
            password = "Crash-" + secrets.token_hex(8)
            user = {"username": name, "password": password, "email": f"{name}@example.com", "realname": name}
            r = server.http("POST", f"{API}/users", json=user, timeout=10)
            if r.status_code == 201:
                with acked.lock:
                    acked.users.append((name, password))


def _jobs(server: RegistryServer, stop: threading.Event) -> None:
    """GC and retention runs (a retention policy that keeps everything: nothing acknowledged goes)."""
    with contextlib.suppress(requests.RequestException):
        library = server.http("GET", f"{API}/projects", params={"name": "library"}, timeout=10).json()[0]
        policy_id = library.get("metadata", {}).get("retention_id")
        if not policy_id:
            rule = {"disabled": False, "action": "retain", "template": "always", "params": {},
                    "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
                    "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                        "pattern": "**"}]}}  # fmt: skip
            body = {"algorithm": "or", "rules": [rule], "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
                    "scope": {"level": "project", "ref": library["project_id"]}}  # fmt: skip
            r = server.http("POST", f"{API}/retentions", json=body, timeout=10)
            policy_id = r.headers.get("Location", "").rsplit("/", 1)[-1]
        while not stop.is_set():
            gc = {"schedule": {"type": "Manual"}, "parameters": {"delete_untagged": True, "workers": 2}}
            server.http("POST", f"{API}/system/gc/schedule", json=gc, timeout=10)
            if policy_id:
                server.http("POST", f"{API}/retentions/{policy_id}/executions", json={"dry_run": False}, timeout=10)
            stop.wait(0.5)


def _crash_round(server: RegistryServer, work: Path, rng: random.Random, acked: Acknowledged, index: int) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(target=_pusher, args=(server, work, f"r{index}a", random.Random(rng.random()), acked, stop)),
        threading.Thread(target=_pusher, args=(server, work, f"r{index}b", random.Random(rng.random()), acked, stop)),
        threading.Thread(target=_api_writer, args=(server, f"r{index}", acked, stop)),
        threading.Thread(target=_jobs, args=(server, stop)),
    ]
    pushed_before = len(acked.pushes)
    for thread in threads:
        thread.start()
    # The kill falls at a random moment after this round's first acknowledged push, so every round
    # tests a push even when a loaded machine makes the first one slow.
    deadline = time.monotonic() + 120
    while len(acked.pushes) == pushed_before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 4.0))
    server.kill()  # SIGKILL to the whole group, at a moment nothing chose
    stop.set()
    for thread in threads:
        thread.join(timeout=150)


def _verify(server: RegistryServer, acked: Acknowledged, work: Path) -> None:
    with acked.lock:
        pushes, projects, users = list(acked.pushes), list(acked.projects), list(acked.users)
    for repo, digest, layout in pushes[acked.verified_pushes :]:
        out = work / "pulled" / repo.replace("/", "_")
        out.parent.mkdir(exist_ok=True)
        check(["skopeo", "copy", "--preserve-digests", *server.skopeo_src(), "docker://" + server.ref(repo, "v1"),
               f"oci:{out}:x"])  # fmt: skip
        pulled, source = Layout(out), Layout(layout)
        assert pulled.ref("x")["digest"] == digest, f"{repo}: acknowledged {digest}"
        assert_same_blobs(source, pulled, source.reachable(digest))
    for repo, digest, _ in pushes[: acked.verified_pushes]:  # earlier rounds' pushes: still there
        r = server.http(
            "HEAD", f"/v2/{repo}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest, (repo, r.status_code)
    acked.verified_pushes = len(pushes)
    for name in projects:
        listed = server.http("GET", f"{API}/projects", params={"name": name, "page_size": 100}).json()
        assert name in [p["name"] for p in listed], f"acknowledged project {name} is gone"
    for name, password in users:
        r = requests.get(f"{server.url}{API}/users/current", auth=(name, password), timeout=30)
        assert r.status_code == 200, f"acknowledged user {name} cannot sign in: {r.status_code} {r.text}"


def _server(data: Path, tmp_path: Path, password: str | None) -> RegistryServer:
    return RegistryServer(data, tmp_path / "server.log", password=password,
                          REGISTRY_SNAPSHOT_INTERVAL_SECONDS="1", REGISTRY_JOURNAL_COMPACT_BYTES="65536")  # fmt: skip


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data = tmp_path / "data"
    acked = Acknowledged()
    password = None
    for index in range(ROUNDS):
        server = _server(data, tmp_path, password).start()
        password = server.password
        try:
            _verify(server, acked, tmp_path)
        except BaseException:
            server.kill()
            raise
        _crash_round(server, tmp_path / "images", rng, acked, index)
        missing = blob_rows_without_bytes(data)
        assert not missing, f"round {index} (seed {SEED}): blob rows without their bytes: {missing}"
    last = _server(data, tmp_path, password).start()
    try:
        _verify(server=last, acked=acked, work=tmp_path)
    finally:
        last.stop()
    print(f"seed {SEED}: {ROUNDS} kills; acknowledged {len(acked.pushes)} pushes, {len(acked.projects)} projects, "
          f"{len(acked.users)} users, all there")  # fmt: skip
    assert acked.pushes and acked.projects, "no client write was acknowledged before a kill: nothing was tested"
