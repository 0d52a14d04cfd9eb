"""skopeo push and pull of the `medium` image, through the harness's `timing-baseline`.

`timing-baseline URL --runs N --json FILE` already does what this section needs: fresh random data
and a new repository per run (no dedupe, no mount from skopeo's blob-info cache), untimed image
generation, monotonic wall clock, medians. It runs once per registry with the same N.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.bench.common import HARNESS, PYTHON, loopback_env


def timing_baseline(
    label: str,
    url: str,
    runs: int,
    medium_mb: float,
    json_path: Path,
    namespace: str,
    creds: tuple[str, str] | None = None,
) -> dict[str, Any]:
    command = [
        PYTHON,
        str(HARNESS / "timing-baseline"),
        url,
        "--runs",
        str(runs),
        "--medium-mb",
        str(medium_mb),
        "--json",
        str(json_path),
        "--namespace",
        namespace,
        *(["--creds", ":".join(creds)] if creds else []),
    ]
    proc = subprocess.Popen(command, env=loopback_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"  [{label}] {line.rstrip()}", flush=True)
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if not json_path.exists():
        return {"ok": False, "returncode": returncode, "runs": [], "median_push_s": None, "median_pull_s": None}
    result: dict[str, Any] = json.loads(json_path.read_text())
    result["ok"] = returncode == 0 and len(result["runs"]) == runs
    result["returncode"] = returncode
    return result


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    def ratio(key: str) -> float | None:
        a, b = ours.get(key), theirs.get(key)
        return a / b if a and b else None

    return {"push": ratio("median_push_s"), "pull": ratio("median_pull_s")}
