"""Session fixtures: the test images (shared harness `make-images`) and one registry started by `make serve`.

Every client command is appended to `<session tmp>/clients.log`; each server's stdout and stderr go to
`<session tmp>/.../server.log`. When a test fails, the registry log lines written during that test are
attached to its report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import CommandLog, RegistryServer, check, find_harness, require_tool, run

MEDIUM_MB = 8
SEED = "42"

_log_marks = pytest.StashKey[dict[int, int]]()

# Clients push the same images; the suite's own checks run first so that their pushes really upload bytes
# (later pushes of the same blobs are cross-repository mounts), then the harness, then the extra servers.
MODULE_ORDER = ["test_skopeo", "test_oras", "test_podman", "test_harness", "test_persistence"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]

    def rank(item: pytest.Item) -> int:
        return MODULE_ORDER.index(item.path.stem) if item.path.stem in MODULE_ORDER else len(MODULE_ORDER)

    ordered = sorted((items[i] for i in slots), key=rank)  # stable: keeps the order inside a module
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="session")
def e2e_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("e2e")
    CommandLog.path = d / "clients.log"
    return d


@pytest.fixture(scope="session")
def harness() -> Path:
    h = find_harness()
    if h is None:
        pytest.skip(
            "shared/harness not found (looked in $E2E_SHARED_DIR, ../shared/harness beside the clone and "
            "/work/shared/harness); the e2e tests need its make-images and push-pull-check"
        )
    return h


@pytest.fixture(scope="session")
def images(harness: Path, e2e_tmp: Path) -> dict[str, Any]:
    """Deterministic OCI layouts: tiny, medium (MEDIUM_MB), multiarch, artifact; plus their summary."""
    out = e2e_tmp / "images"
    check([sys.executable, harness / "make-images", out, "--seed", SEED, "--medium-mb", str(MEDIUM_MB)], timeout=120)
    meta: dict[str, Any] = json.loads((out / "images.json").read_text())
    meta["dir"] = out
    return meta


# Seconds between writes of pull times and counts on the shared server.
PULL_WINDOW = 2


@pytest.fixture(scope="session")
def registry(e2e_tmp: Path) -> Iterator[RegistryServer]:
    """The registry every e2e test shares, started exactly as `make serve` does (pull times and
    counts written within 2 s instead of a minute, so the tests that read them need not wait)."""
    if not shutil.which("make"):
        pytest.fail("make is not installed")
    server = RegistryServer(
        e2e_tmp / "registry-data", e2e_tmp / "server.log", record_relay=True,
        REGISTRY_PULL_COUNT_FLUSH_SECONDS=str(PULL_WINDOW),
    ).start()  # fmt: skip
    yield server
    server.stop()  # SIGTERM to the group; asserts python ended and printed "state saved"


@pytest.fixture(scope="session")
def podman_env(e2e_tmp: Path) -> dict[str, str]:
    """Environment isolating podman from the machine's configuration (no short-name prompts)."""
    d = e2e_tmp / "containers-conf"
    d.mkdir(exist_ok=True)
    (d / "registries.conf").write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
    (d / "containers.conf").write_text('[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n')
    (d / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ)
    env["CONTAINERS_REGISTRIES_CONF"] = str(d / "registries.conf")
    env["CONTAINERS_CONF"] = str(d / "containers.conf")
    env["TMPDIR"] = str(d / "tmp")
    return env


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, podman_env: dict[str, str]) -> Iterator[Any]:
    require_tool("podman")
    root = tmp_path_factory.mktemp("podman")
    runroot = tempfile.mkdtemp(prefix="e2e-podman-")  # podman refuses a --runroot longer than 50 characters
    base = ["podman", "--root", str(root / "root"), "--runroot", runroot, "--tmpdir", str(root / "tmp"),
            "--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs"]  # fmt: skip

    def podman(*args: str, ok: bool = True) -> str:
        cmd = [*base, *args]
        if ok:
            return check(cmd, env=podman_env, timeout=180)
        return run(cmd, env=podman_env, timeout=180).stdout

    yield podman
    shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture(autouse=True)
def _mark_server_logs(request: pytest.FixtureRequest) -> None:
    request.node.stash[_log_marks] = {id(s): s.log_size() for s in RegistryServer.instances}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    marks = item.stash.get(_log_marks, {})
    for server in list(RegistryServer.instances):
        text = server.log_text(marks.get(id(server), 0))
        if text:
            report.sections.append((f"registry log {server.log_path} (during {report.when})", text[-8000:]))
    if CommandLog.path is not None:
        report.sections.append(("client commands", f"full log: {CommandLog.path}"))
