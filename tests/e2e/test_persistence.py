"""`make serve` keeps its state in REGISTRY_DATA_DIR: across SIGTERM and restart, after a crash (every
acknowledged write, with no snapshot needed), one owner at a time, readable by its owner only.

test_crash.py kills it at random moments under load; here the crash points are chosen."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.local.journal import frame

from .support import (
    API,
    LISTENING,
    LOCKED,
    STATE_SAVED,
    Layout,
    RegistryServer,
    assert_same_blobs,
    check,
    python_of_venv,
    repo_name,
    require_tool,
    run,
)

pytestmark = pytest.mark.e2e

RESTORED = re.compile(r"restored (\d+) rows and (\d+) objects")


@pytest.fixture(autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


def push(server: RegistryServer, lay: Layout, repo: str, tag: str, *extra: str) -> None:
    check(["skopeo", "copy", "--preserve-digests", *server.skopeo_dest(), *extra,
           f"oci:{lay.path}:latest", "docker://" + server.ref(repo, tag)])  # fmt: skip


def pull_and_compare(server: RegistryServer, src: Layout, repo: str, ref: str, digest: str, out: Path) -> None:
    check(["skopeo", "copy", "--all", "--preserve-digests", *server.skopeo_src(),
           "docker://" + server.ref(repo, ref), f"oci:{out}:x"])  # fmt: skip
    pulled = Layout(out)
    assert pulled.ref("x")["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


def restored(log: str) -> tuple[int, int]:
    m = RESTORED.search(log)
    assert m, f"no 'restored N rows and M objects' in the start-up log:\n{log}"
    return int(m.group(1)), int(m.group(2))


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


def test_an_acknowledged_push_survives_kill_9_without_a_snapshot(images: dict[str, Any], tmp_path: Path) -> None:
    """No snapshot is ever taken here (the journal is far from its compaction size): the push is on
    disk because it was acknowledged, and a torn record a crash left at the journal's end is cut off."""
    tiny = Layout(images["dir"] / images["tiny"]["layout"])
    repo = repo_name("crash/tiny")
    data = tmp_path / "data"
    server = RegistryServer(data, tmp_path / "server-1.log").start()
    try:
        push(server, tiny, repo, "v1")
    finally:
        server.kill()  # SIGKILL right after the client's answer: no shutdown save
    assert STATE_SAVED not in server.log_text()
    assert not (data / "dynamodb" / "snapshot.bin").exists()
    newest = sorted((data / "dynamodb").glob("journal-*.log"))[-1]
    with newest.open("ab") as journal:
        journal.write(frame(b'{"w":[["registry","torn",null]]}')[:20])  # an append the crash cut short

    again = RegistryServer(data, tmp_path / "server-2.log", password=server.password).start()
    try:
        assert restored(again.log_text())[0] > 0
        assert again.tags(repo) == ["v1"]
        pull_and_compare(again, tiny, repo, "v1", images["tiny"]["digest"], tmp_path / "pulled")
        push(again, tiny, repo, "v2")  # and it journals on after the cut
    finally:
        again.kill()
    third = RegistryServer(data, tmp_path / "server-3.log", password=server.password).start()
    try:
        assert third.tags(repo) == ["v1", "v2"]
    finally:
        third.stop()


class CrashpointServer(RegistryServer):
    """The runner that SIGKILLs itself once a chosen write is journaled, before answering (crashpoint.py)."""

    command = (str(python_of_venv() / "bin" / "python"), "-m", "tests.e2e.crashpoint")


def test_a_write_killed_between_its_journal_append_and_the_answer(images: dict[str, Any], tmp_path: Path) -> None:
    """The client never hears back, yet the write is on disk: after the restart it is there whole
    (the project; the tag, whose image pulls byte-exact), and the registry works on."""
    tiny = Layout(images["dir"] / images["tiny"]["layout"])
    repo = repo_name("crashpoint/tiny")
    data, marker = tmp_path / "data", tmp_path / "marker"
    server = CrashpointServer(data, tmp_path / "server-1.log", CRASHPOINT_MARKER_FILE=str(marker)).start()
    try:
        marker.write_text("crashpoint-project")
        with pytest.raises(requests.ConnectionError):
            server.http("POST", f"{API}/projects", json={"project_name": "crashpoint-project", "metadata": {}})
        assert server.proc is not None
        server.proc.wait(timeout=30)
        assert "crashpoint: journal record" in server.log_text()
    finally:
        server.kill()

    second = CrashpointServer(data, tmp_path / "server-2.log", password=server.password,
                              CRASHPOINT_MARKER_FILE=str(marker)).start()  # fmt: skip
    try:
        listed = second.http("GET", f"{API}/projects", params={"name": "crashpoint-project"}).json()
        assert [p["name"] for p in listed] == ["crashpoint-project"]
        marker.write_text("TAG#crashpoint-tag")
        proc = run(["skopeo", "copy", "--preserve-digests", *second.skopeo_dest(), f"oci:{tiny.path}:latest",
                    "docker://" + second.ref(repo, "crashpoint-tag")])  # fmt: skip
        assert proc.returncode != 0, "the push was answered: the crash point was never reached"
    finally:
        second.kill()
    marker.unlink()

    third = RegistryServer(data, tmp_path / "server-3.log", password=server.password).start()
    try:
        assert third.tags(repo) == ["crashpoint-tag"]
        pull_and_compare(third, tiny, repo, "crashpoint-tag", images["tiny"]["digest"], tmp_path / "pulled")
        assert third.http("POST", f"{API}/projects", json={"project_name": "after", "metadata": {}}).status_code == 201
    finally:
        third.stop()
