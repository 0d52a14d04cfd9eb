"""skopeo push and pull of the `medium` image, through the harness's `timing-baseline`.

`timing-baseline URL --runs N --json FILE` already does what this section needs: fresh random data
and a new repository per run (no dedupe, no mount from skopeo's blob-info cache), untimed image
generation, monotonic wall clock, medians.

The registries take turns, one run each (`interleaved`), the first alternating: on a machine that
other work loads unevenly, running all of one registry's runs and then all of the other's measured
the load's drift as much as the registries (the same code gave 1.1x and 1.6x a minute apart).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from tests.bench.common import HARNESS, PYTHON, loopback_env, pair_ratios


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


Registry = tuple[str, str, tuple[str, str] | None]  # label, URL, credentials


def interleaved(
    registries: list[Registry], runs: int, medium_mb: float, workdir: Path, namespace: str
) -> dict[str, dict[str, Any]]:
    """`runs` single-run `timing_baseline`s per registry (label, url, creds), taking turns; per
    registry the same result shape as one `timing_baseline` of `runs` runs."""
    results: dict[str, dict[str, Any]] = {
        label: {"registry": url, "medium_mb": medium_mb, "runs": [], "ok": True, "returncode": 0}
        for label, url, _ in registries
    }
    for index in range(1, runs + 1):
        order = registries if index % 2 else list(reversed(registries))
        for label, url, creds in order:
            one = timing_baseline(
                label, url, 1, medium_mb, workdir / f"{label}-{index}.json", f"{namespace}-{index}", creds
            )
            merged = results[label]
            merged["runs"] += [dict(run, run=index) for run in one["runs"]]
            if not one["ok"]:
                merged["ok"], merged["returncode"] = False, one["returncode"] or 1
    for merged in results.values():
        for kind in ("push", "pull"):
            values = [run[f"{kind}_s"] for run in merged["runs"]]
            merged[f"median_{kind}_s"] = statistics.median(values) if values else None
    return results


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    def ratio(key: str) -> float | None:
        a, b = ours.get(key), theirs.get(key)
        return a / b if a and b else None

    return {"push": ratio("median_push_s"), "pull": ratio("median_pull_s")}


def pair_ratio_stats(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Per kind (push, pull): the ratios ours/theirs of the runs made back to back (same run index)."""
    mine = {run["run"]: run for run in ours.get("runs", [])}
    other = {run["run"]: run for run in theirs.get("runs", [])}
    both = sorted(set(mine) & set(other))
    return {
        kind: pair_ratios([(mine[i][f"{kind}_s"], other[i][f"{kind}_s"]) for i in both]) for kind in ("push", "pull")
    }
