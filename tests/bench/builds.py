"""Two builds of the registry and CNCF distribution, skopeo push and pull interleaved.

`python -m tests.bench.builds --baseline DIR [--runs N] [--medium-mb MB] [--json FILE]`: DIR is
another build of this repository (`git archive COMMIT | tar -x -C DIR`, with `DIR/.venv` a link
to this checkout's venv). Each round runs the harness's `timing-baseline` once against `make
serve`'s command from this checkout, from DIR, and against distribution 2.8, the order rotating
round by round; printed: medians per server and, for each pair of servers, the median, quartiles
and range of the per-round ratios (a round's three runs are back to back, so a load swing on a
shared machine moves them together). What a code change does to a push is the `this/baseline` row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.bench import servers, transfer
from tests.bench.common import env_float, env_int, pair_ratios, ratio_text, report
from tests.bench.servers import Distribution, OurRegistry


class _Baseline(OurRegistry):
    """`make serve`'s command run from another build's directory."""

    def __init__(self, workdir: Path, root: Path) -> None:
        super().__init__(workdir, label="baseline")
        self._root = root

    def start(self) -> None:
        saved = servers.REPO_ROOT
        servers.REPO_ROOT = self._root
        try:
            super().start()
        finally:
            servers.REPO_ROOT = saved


def measure(baseline: Path, runs: int, medium_mb: float, workdir: Path) -> dict[str, Any]:
    this, other, dist = OurRegistry(workdir, label="this"), _Baseline(workdir, baseline), Distribution(workdir)
    measured: dict[str, list[dict[str, Any]]] = {"this": [], "baseline": [], "distribution": []}
    loads: list[float] = []
    with this, other, dist:
        targets = [
            ("this", this.url, this.creds),
            ("baseline", other.url, other.creds),
            ("distribution", dist.url, None),
        ]
        for index in range(1, runs + 1):
            order = targets[index % 3 :] + targets[: index % 3]
            order = order if index % 2 else list(reversed(order))
            for label, url, creds in order:
                usage = {"this": this, "baseline": other}.get(label)
                cpu = _cpu_seconds(usage)
                one = transfer.timing_baseline(
                    label, url, 1, medium_mb, workdir / f"{label}-{index}.json", f"library/builds-{index}", creds
                )
                cpu = _cpu_seconds(usage) - cpu
                measured[label] += [
                    {"run": index, "push_s": r["push_s"], "pull_s": r["pull_s"], "bytes": r["bytes"],
                     "server_cpu_s": round(cpu, 3) if usage is not None else None}
                    for r in one["runs"]
                ]  # fmt: skip
            loads.append(round(os.getloadavg()[0], 2))
    result: dict[str, Any] = {"runs": measured, "loadavg_per_round": loads, "medium_mb": medium_mb, "ratios": {}}
    for kind in ("push", "pull"):
        result[f"median_{kind}_s"] = {
            label: statistics.median(r[f"{kind}_s"] for r in rows) if rows else None for label, rows in measured.items()
        }
        for a, b in (("this", "distribution"), ("baseline", "distribution"), ("this", "baseline")):
            mine = {r["run"]: r[f"{kind}_s"] for r in measured[a]}
            theirs = {r["run"]: r[f"{kind}_s"] for r in measured[b]}
            pairs = [(mine[i], theirs[i]) for i in sorted(set(mine) & set(theirs))]
            result["ratios"][f"{kind} {a}/{b}"] = pair_ratios(pairs)
    # Server CPU (user + system of the whole process, the relay's threads included) over a round's
    # push and pull, per MB moved (the image's bytes twice): less load-sensitive than wall time.
    result["server_cpu_ms_per_mb"] = {
        label: round(statistics.median(r["server_cpu_s"] * 1000 / (2 * r["bytes"] / 1e6) for r in rows), 2)
        for label, rows in measured.items()
        if rows and rows[0]["server_cpu_s"] is not None
    }
    mine = {r["run"]: r["server_cpu_s"] for r in measured["this"]}
    theirs = {r["run"]: r["server_cpu_s"] for r in measured["baseline"]}
    result["ratios"]["cpu this/baseline"] = pair_ratios([(mine[i], theirs[i]) for i in sorted(set(mine) & set(theirs))])
    return result


def _cpu_seconds(server: OurRegistry | None) -> float:
    """CPU time (user + system, every thread) of one of our servers so far; 0 for distribution."""
    if server is None or server.process is None:
        return 0.0
    from tests.e2e.support import ProcessUsage

    return ProcessUsage(server.process.pid).cpu_seconds()


def print_table(result: dict[str, Any]) -> None:
    print(f"\n[builds] skopeo, {result['medium_mb']:g} MB image; load average per round {result['loadavg_per_round']}")
    for kind in ("push", "pull"):
        medians = ", ".join(f"{k} {v:.3f} s" for k, v in result[f"median_{kind}_s"].items() if v is not None)
        print(f"    {kind} medians: {medians}")
        for name, stats in result["ratios"].items():
            if name.startswith(kind):
                print(f"      {name}: {ratio_text(stats)}")
    per_mb = ", ".join(f"{k} {v:.2f}" for k, v in result.get("server_cpu_ms_per_mb", {}).items())
    print(f"    server CPU per MB moved (push + pull), median ms: {per_mb}")
    print(f"      cpu this/baseline: {ratio_text(result['ratios'].get('cpu this/baseline'))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.builds", description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=env_int("BENCH_RUNS", 5))
    parser.add_argument("--medium-mb", type=float, default=env_float("BENCH_MEDIUM_MB", 50.0))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not (args.baseline / "chalicelib" / "local" / "__main__.py").is_file():
        parser.error(f"{args.baseline} is not a build of this repository")
    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-builds-"))
    try:
        result = measure(args.baseline.resolve(), args.runs, args.medium_mb, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(result, print_table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
