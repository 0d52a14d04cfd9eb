"""`make serve` keeps its state in REGISTRY_DATA_DIR: across SIGTERM and restart, one owner at a time,
readable by its owner only.

After a crash: test_persistence_kill.py (chosen crash points) and test_crash.py (random moments under
load). Separate modules, so that `--dist loadfile` can run them on different workers."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from .crash_support import pull_and_compare, push, restored
from .support import LISTENING, LOCKED, Layout, RegistryServer, repo_name, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


def test_state_survives_sigterm_and_restart(images: dict[str, Any], tmp_path: Path) -> None:
    tiny = Layout(images["dir"] / images["tiny"]["layout"])
    multi = Layout(images["dir"] / images["multiarch"]["layout"])
    tiny_repo, multi_repo = repo_name("persist/tiny"), repo_name("persist/multiarch")
    data = tmp_path / "data"

    first = RegistryServer(data, tmp_path / "server-1.log").start()
    try:
        assert restored(first.log_text())[1] == 0
        push(first, tiny, tiny_repo, "v1")
        push(first, tiny, tiny_repo, "v2")
        push(first, multi, multi_repo, "v1", "--all")

        # A second registry on the same data dir refuses to start (and the first keeps serving).
        second = RegistryServer(data, tmp_path / "server-locked.log", password=first.password)
        proc = second.launch()
        rc = proc.wait(timeout=60)
        log = second.log_text()
        assert rc != 0, f"a second `make serve` on the same data dir started (rc={rc}):\n{log}"
        assert f"{LOCKED} {data.resolve()}" in log, log
        assert LISTENING not in log
        second.stop(expect_saved=False)  # nothing left running in its group
        assert first.http("GET", "/v2/").status_code == 200
    finally:
        first.stop()  # asserts "state saved"
    # A clean stop folds the journal into the snapshot; the state's files are private to their owner.
    assert (data / "dynamodb" / "snapshot.bin").is_file(), sorted(str(p) for p in data.rglob("*"))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "dynamodb").stat().st_mode) == 0o700
    for secret in [*(data / "dynamodb").iterdir(), data / "token-signing-key.pem"]:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    # Blob bytes are files of the local object store (stores/files.py), nothing left mid-write.
    assert [p for p in (data / "objects" / "blobs").rglob("*") if p.is_file()], sorted(map(str, data.rglob("*")))
    assert not list((data / "objects" / ".tmp").iterdir())

    again = RegistryServer(data, tmp_path / "server-2.log", port=first.port, password=first.password).start()
    try:
        rows, objects = restored(again.log_text())
        assert rows > 0
        assert objects > 0
        assert again.tags(tiny_repo) == ["v1", "v2"]
        assert again.tags(multi_repo) == ["v1"]
        catalog = again.http("GET", "/v2/_catalog").json()["repositories"]
        assert {tiny_repo, multi_repo} <= set(catalog), catalog
        pull_and_compare(again, tiny, tiny_repo, "v2", images["tiny"]["digest"], tmp_path / "tiny")
        pull_and_compare(again, multi, multi_repo, "v1", images["multiarch"]["digest"], tmp_path / "multi")
        # and it still takes writes
        push(again, tiny, tiny_repo, "v3")
        assert again.tags(tiny_repo) == ["v1", "v2", "v3"]
    finally:
        again.stop()


def test_repeated_sigterm_during_shutdown_still_saves(images: dict[str, Any], tmp_path: Path) -> None:
    """SIGTERM to the process group reaches python twice: directly, and relayed by make.

    make's relay can land while python is already shutting down; here it is sent deterministically as soon
    as python reports the first one. The shutdown save must still complete.
    """
    medium = Layout(images["dir"] / images["medium"]["layout"])
    repo = repo_name("sigterm/medium")
    data = tmp_path / "data"
    server = RegistryServer(data, tmp_path / "server-1.log").start()
    try:
        push(server, medium, repo, "v1")
        (python_pid,) = server.python_pids()
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "stopping on SIGTERM" not in server.log_text(server.started_at_offset) and time.monotonic() < deadline:
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(python_pid, signal.SIGTERM)  # what make does when it gets its own SIGTERM
    finally:
        log = server.stop()  # asserts "state saved"
    assert "Traceback" not in log, log[-1500:]

    again = RegistryServer(data, tmp_path / "server-2.log", password=server.password).start()
    try:
        assert again.tags(repo) == ["v1"]
    finally:
        again.stop()
