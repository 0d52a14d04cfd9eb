"""`make serve` keeps every acknowledged write across a crash (SIGKILL), with no snapshot needed, at
crash points chosen here: right after the client's answer, and between the journal append and the
answer (test_crash.py kills it at random moments under load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.local.journal import frame

from .crash_support import pull_and_compare, push, restored
from .support import API, STATE_SAVED, Layout, RegistryServer, python_of_venv, repo_name, require_tool, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


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
