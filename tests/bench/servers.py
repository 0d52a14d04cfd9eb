"""The two registries under test, as context managers that always stop what they started.

- `OurRegistry`: `make serve`'s command (`.venv/bin/python -m chalicelib.local` from the repo root)
  with `REGISTRY_PORT`/`REGISTRY_DATA_DIR` pointing at a free port and a temporary data directory;
  ready when it prints `registry listening on http://127.0.0.1:PORT`; stopped with SIGTERM.
- `Distribution`: CNCF distribution 2.8 through `../shared/harness/run-distribution start|stop`,
  with its state in our temporary directory.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.bench.common import HARNESS, LOOPBACK, REPO_ROOT, free_port, loopback_env

READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 120


class ServerError(Exception):
    pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class OurRegistry:
    name = "ours"

    def __init__(
        self,
        workdir: Path,
        module: tuple[str, ...] = ("chalicelib.local",),
        label: str = "registry",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`module`: what `python -m` runs (the apptime section wraps the runner to time requests);
        `extra_env`: REGISTRY_* settings of this run."""
        self.workdir = workdir
        self.module = module
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.data_dir = workdir / f"{label}-data"
        self.log_path = workdir / f"{label}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.startup_s: float | None = None
        self.shutdown_s: float | None = None
        self.exit_code: int | None = None
        # The admin password we give the server, so that clients can authenticate (user `admin`).
        self.creds = ("admin", secrets.token_urlsafe(18))

    def __enter__(self) -> OurRegistry:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        env = loopback_env()
        for key in list(env):
            if key.startswith("REGISTRY_"):
                del env[key]
        env.update(
            {
                "REGISTRY_PORT": str(self.port),
                # A free port of its own (port + 1, the default, may be another process's).
                "REGISTRY_RELAY_PORT": str(free_port()),
                "REGISTRY_DATA_DIR": str(self.data_dir),
                "REGISTRY_HOST": LOOPBACK,
                "REGISTRY_ADMIN_PASSWORD": self.creds[1],
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        venv_python = REPO_ROOT / ".venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else os.environ.get("PYTHON", "python3")
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        # Own session: a Ctrl-C in the terminal reaches only the bench, which then stops the server
        # with SIGTERM (the documented way), instead of racing it.
        self.process = subprocess.Popen(
            [python, "-m", *self.module],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = f"registry listening on {self.url}"
        while time.monotonic() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise ServerError(f"registry exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            if ready in self.log_path.read_text(errors="replace"):
                self.startup_s = time.monotonic() - started
                print(f"our registry pid {self.process.pid} on {self.url} (ready in {self.startup_s:.1f}s)", flush=True)
                return
            time.sleep(0.1)
        raise ServerError(f"registry not ready after {READY_TIMEOUT_S}s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                print(f"our registry pid {process.pid} still running after SIGTERM; killing it", flush=True)
                process.kill()
                process.wait(10)
            self.shutdown_s = time.monotonic() - started
            self.exit_code = process.returncode
            note = "" if process.returncode == 0 else f"; log: {self.log_path.name} (kept in build/bench-logs)"
            print(f"our registry stopped (exit {process.returncode}, {self.shutdown_s:.1f}s{note})", flush=True)
        if self._log is not None:
            self._log.close()
            self._log = None


class Distribution:
    name = "distribution"
    creds = None  # started without --auth

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.state = workdir / "distribution"
        self.script = str(HARNESS / "run-distribution")
        self._started = False

    def __enter__(self) -> Distribution:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.script, command, "--port", str(self.port), "--dir", str(self.state)],
            env=loopback_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        self._started = True  # a failed start may still have left a process behind
        proc = self._run("start")
        print(proc.stdout.strip(), flush=True)
        if proc.returncode != 0:
            raise ServerError(f"run-distribution start failed ({proc.returncode}): {proc.stderr.strip()}")

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        proc = self._run("stop")
        print(f"distribution: {proc.stdout.strip() or proc.stderr.strip()}", flush=True)
