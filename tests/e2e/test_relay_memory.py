"""A 1 GiB layer pushed through the relay of `make serve` raises the server's resident memory by
less than 64 MiB: the body is hashed and written part by part as it arrives, never held whole.

Measured, not timed: the server's peak resident size (VmHWM, reset just before the push) minus its
resident size at that moment. The app's own path is capped at 4 MiB as on AWS, so the bytes can
only have come through the relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import ProcessUsage, RegistryServer, push_streamed_blob, repo_name

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GIB = 1024**3
BOUND = 64 * 1024**2


def test_one_gib_push_in_bounded_memory(e2e_tmp: Path) -> None:
    server = RegistryServer(
        e2e_tmp / "relay-memory", e2e_tmp / "relay-memory.log", REGISTRY_MAX_BODY_BYTES=str(4 * 1024**2)
    ).start()
    try:
        (pid,) = server.python_pids()
        usage = ProcessUsage(pid)
        auth = ("admin", server.password)
        repo = repo_name("relay/memory")
        push_streamed_blob(server.url, repo, 32 * 1024**2, auth, "warm-up")  # threads, clients, buffers
        usage.reset_peak()
        before = usage.rss_bytes()
        digest = push_streamed_blob(server.url, repo, GIB, auth, "one-gib")
        growth = usage.peak_bytes() - before
        head = server.http("HEAD", f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(GIB)
        assert growth < BOUND, f"peak RSS grew by {growth / 1024**2:.1f} MiB during a 1 GiB push"
        print(f"peak RSS growth during a 1 GiB push: {growth / 1024**2:.1f} MiB")
    finally:
        server.stop()
