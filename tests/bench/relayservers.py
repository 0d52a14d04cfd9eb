"""Which HTTP server can carry the upload relay: `python -m tests.bench.relayservers [--mb 512]`.

Each candidate serves the same small WSGI application, which reads the request body in 1 MiB
blocks and hashes it (what the relay does before it writes a part), in its own process. The client
sends one chunked body of `--mb` MB, as docker does. Measured per server:
- when the application saw the first block, counted from the client's first byte: a server that
  streams hands it over at once, one that buffers only after the whole body has arrived;
- the server process's peak resident memory growth during the request (VmHWM, reset before);
- the wall time of the request and the server's CPU time.
Candidates not installed are reported as such (gunicorn is not a dependency of the registry).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import requests

from tests.bench.common import LOOPBACK, PYTHON, REPO_ROOT, free_port, loopback_env
from tests.e2e.support import ProcessUsage

CANDIDATES = ("werkzeug", "waitress", "gunicorn-gthread")


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    hasher = hashlib.sha256()
    first: float | None = None
    # Read to the end where the server marks it (chunked bodies), else Content-Length (none: no body).
    left = None if environ.get("wsgi.input_terminated") else int(length or 0)
    while left is None or left > 0:
        block = stream.read(1024 * 1024 if left is None else min(left, 1024 * 1024))
        if not block:
            break
        if first is None:
            first = time.time()
        hasher.update(block)
        if left is not None:
            left -= len(block)
    body = json.dumps({"first_block_at": first, "sha256": hasher.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def serve(kind: str, port: int) -> None:
    if kind == "werkzeug":
        from chalicelib.relay import server

        server.build(app, LOOPBACK, port).serve_forever()
    elif kind == "waitress":
        import waitress

        waitress.serve(app, host=LOOPBACK, port=port, threads=4, max_request_body_size=64 * 1024**3)
    elif kind == "gunicorn-gthread":
        from gunicorn.app.base import BaseApplication

        class Gunicorn(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in {"bind": f"{LOOPBACK}:{port}", "worker_class": "gthread", "workers": 1,
                                   "threads": 4, "timeout": 600}.items():  # fmt: skip
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return app

        Gunicorn().run()


def _installed(kind: str) -> bool:
    module = {"werkzeug": "werkzeug", "waitress": "waitress", "gunicorn-gthread": "gunicorn"}[kind]
    probe = subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


def _serving_pid(process: subprocess.Popen[bytes], kind: str) -> int:
    """The process that reads the body: gunicorn's worker (the master's child), else the server itself."""
    if kind != "gunicorn-gthread":
        return process.pid
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False)
    return int(children.stdout.split()[0])


def measure(kind: str, megabytes: int) -> dict[str, Any]:
    if not _installed(kind):
        return {"server": kind, "installed": False}
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "tests.bench.relayservers", "--serve", kind, "--port", str(port)],
        cwd=REPO_ROOT, env=loopback_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://{LOOPBACK}:{port}/", data=b"", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        usage = ProcessUsage(_serving_pid(process, kind))
        usage.reset_peak()
        rss, cpu = usage.rss_bytes(), usage.cpu_seconds()
        block = os.urandom(1024 * 1024)
        sent_first: list[float] = []

        def body() -> Iterator[bytes]:
            for _ in range(megabytes):
                if not sent_first:
                    sent_first.append(time.time())
                yield block

        started = time.monotonic()
        answer = requests.put(f"http://{LOOPBACK}:{port}/upload", data=body(), timeout=1800).json()
        wall = time.monotonic() - started
        return {
            "server": kind,
            "installed": True,
            "mb": megabytes,
            "first_block_after_s": round(answer["first_block_at"] - sent_first[0], 3),
            "wall_s": round(wall, 3),
            "peak_rss_growth_mb": round((usage.peak_bytes() - rss) / 1e6, 1),
            "server_cpu_s": round(usage.cpu_seconds() - cpu, 3),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.relayservers", description=__doc__)
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--serve", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    print(f"{'server':<18}{'first block after':>19}{'wall':>9}{'peak RSS +':>12}{'server CPU':>12}")
    for kind in CANDIDATES:
        row = measure(kind, args.mb)
        if not row["installed"]:
            print(f"{kind:<18}not installed")
            continue
        print(f"{kind:<18}{row['first_block_after_s']:>17} s{row['wall_s']:>7} s{row['peak_rss_growth_mb']:>9} MB"
              f"{row['server_cpu_s']:>10} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
