"""The local server refuses a body it may not take before reading it (issue 9, finding 8): an
anonymous 150 MB POST raised its memory by 340 MB before authentication refused it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .support import RegistryServer

MB = 1024 * 1024
SIZE = 150 * MB


def _rss(server: RegistryServer) -> int:
    """Resident memory of the server's python process, in bytes."""
    total = 0
    for pid in server.python_pids():
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _stream(size: int) -> Iterator[bytes]:
    block = b"\0" * MB
    for _ in range(size // MB):
        yield block


def _send(server: RegistryServer, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request(method, path, body=_stream(SIZE), headers={"Content-Length": str(SIZE), **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_long_bodies_are_refused_without_being_kept(tmp_path: Path) -> None:
    # The app's own gate: upload sessions stay on the app (no relay beside it).
    server = RegistryServer(tmp_path / "data", tmp_path / "server.log", REGISTRY_LOCAL_RELAY="false").start()
    try:
        before = _rss(server)
        status, body = _send(server, "POST", "/api/v2.0/projects", {"Content-Type": "application/json"})
        assert status == 413 and body["errors"][0]["code"] == "SIZE_INVALID"
        # A blob upload takes any size, but only from a caller with credentials.
        started = server.http("POST", "/v2/library/gate/blobs/uploads/")
        assert started.status_code == 202, started.text
        parts = urlsplit(started.headers["Location"])
        location = parts.path + (f"?{parts.query}" if parts.query else "")
        for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic YWRtaW46d3Jvbmc="}):
            status, body = _send(server, "PATCH", location, {"Content-Type": "application/octet-stream", **headers})
            assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED", headers
        grown = _rss(server) - before
        assert grown < 40 * MB, f"the server kept {grown / MB:.0f} MB of refused bodies"
        # The upload session is untouched: the owner can still send its first chunk.
        first = server.http("PATCH", location, data=b"x" * 1024, headers={"Content-Type": "application/octet-stream"})
        assert first.status_code == 202, first.text
    finally:
        server.stop()
