"""Paths, ports, statistics and environment helpers shared by the benchmark sections."""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path:
    """`shared/` beside the checkout; for a git worktree, beside its main checkout."""
    beside = (REPO_ROOT / ".." / "shared").resolve()
    git = REPO_ROOT / ".git"
    if beside.is_dir() or not git.is_file():  # a worktree's `.git` is a file naming its git dir
        return beside
    gitdir = Path(git.read_text().split("gitdir:", 1)[-1].strip())
    main = gitdir.parents[2] if gitdir.parent.name == "worktrees" and len(gitdir.parents) > 2 else None
    return (main / ".." / "shared").resolve() if main is not None else beside


SHARED = _shared_dir()
HARNESS = SHARED / "harness"
BUILD = REPO_ROOT / "build"
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def loopback_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: no proxy may intercept 127.0.0.1."""
    env = dict(os.environ if base is None else base)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 200 samples is the 190th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def pair_ratios(pairs: Sequence[tuple[float, float]]) -> dict[str, Any] | None:
    """Ratios a/b of A/B pairs measured back to back: their median (the verdict), quartiles, range.

    On a machine shared with other work a load swing moves both halves of a pair together, so
    the ratio of each pair varies far less than either side's times do."""
    ratios = sorted(a / b for a, b in pairs if a and b)
    if not ratios:
        return None
    return {
        "n": len(ratios),
        "median": round(float(statistics.median(ratios)), 4),
        "q1": round(percentile(ratios, 25), 4),
        "q3": round(percentile(ratios, 75), 4),
        "min": round(ratios[0], 4),
        "max": round(ratios[-1], 4),
    }


def ratio_text(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    return (f"{stats['median']:.3f}x median of {stats['n']} pairs (quartiles {stats['q1']:.3f}-{stats['q3']:.3f}, "
            f"range {stats['min']:.3f}-{stats['max']:.3f})")  # fmt: skip


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def banner(title: str) -> None:
    print(f"\n{'=' * 100}\n== {title}\n{'=' * 100}", flush=True)


def run_in_workdir(
    prefix: str,
    measure: Callable[[Path], dict[str, Any]],
    print_table: Callable[[dict[str, Any]], None],
    json_path: str | None,
) -> int:
    """A section's CLI body: `measure` in a temporary directory (removed after), then `report`;
    exit 0 when the result says `ok`."""
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = measure(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(result, print_table, json_path)
    return 0 if result["ok"] else 1


def report(result: dict[str, Any], print_table: Callable[[dict[str, Any]], None], json_path: str | None) -> None:
    """A section's CLI ending: its table, and its result as JSON where `--json` asked."""
    print_table(result)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
