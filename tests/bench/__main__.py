"""`python -m tests.bench [awscalls] [dynamocalls] [import] [transfer] [latency] [apptime] [listing] [gc] [durability]
[replication] [proxy]`.

All sections run when none is named."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import apptime, durability, gc, importtime, latency, proxy, relaypush, replication, transfer
from tests.bench.common import (
    BUILD,
    PYTHON,
    REPO_ROOT,
    SHARED,
    banner,
    env_float,
    env_int,
    loopback_env,
    ratio_text,
)
from tests.bench.servers import Distribution, OurRegistry

SECTIONS = (
    "awscalls", "dynamocalls", "import", "transfer", "latency", "apptime", "listing", "gc", "durability",
    "replication", "proxy",
)  # fmt: skip
# ours/distribution medians (issue 11: push and pull below 1.0).
RATIO_TARGET = 1.0


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout
    except OSError:
        return "not installed"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_changes": len(changed)}


def _environment() -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "skopeo": _version(["skopeo", "--version"]),
        "distribution": _version(["docker-registry", "--version"]),
        "git": _git(),
    }


class Bench:
    def __init__(self, sections: list[str]) -> None:
        self.sections = sections
        self.runs = env_int("BENCH_RUNS", 5)
        self.medium_mb = env_float("BENCH_MEDIUM_MB", 50.0)
        self.latency_n = env_int("BENCH_LATENCY_N", 200)
        self.summary: dict[str, Any] = {
            "environment": _environment(),
            "config": {"runs": self.runs, "medium_mb": self.medium_mb, "latency_n": self.latency_n},
            "requested": sections,
            "sections": {},
            "errors": {},
        }
        self.workdir = Path(tempfile.mkdtemp(prefix="registry-bench-"))

    def section(self, name: str, title: str, body: Callable[[], Any]) -> None:
        if name not in self.sections:
            return
        banner(title)
        started = time.monotonic()
        try:
            self.summary["sections"][name] = body()
        except Exception as exc:
            traceback.print_exc()
            self.summary["errors"][name] = f"{type(exc).__name__}: {exc}"
        print(f"({name}: {time.monotonic() - started:.1f}s)", flush=True)

    def run(self) -> None:
        self.section("awscalls", "AWS calls per operation (in-process, moto mock_aws)", self._awscalls)
        self.section("dynamocalls", "CPU per DynamoDB call on moto, direct path and botocore's (tests/bench/"
                     "dynamocalls.py)", lambda: self._in_subprocess("dynamocalls", 900))  # fmt: skip
        self.section("import", "import time of the Lambda handler module (`import app`)", self._import)
        self.section("listing", "artifact and tag lists of a 5,000-artifact, 10,000-tag repository", self._listing)
        self.section("gc", "GC mark and sweep throughput on moto, workers 1 and 4 (tests/bench/gc.py)", self._gc)
        if "transfer" in self.sections or "latency" in self.sections:
            banner("starting registries on 127.0.0.1")
            dist, ours = Distribution(self.workdir), OurRegistry(self.workdir)
            try:
                with dist, ours:
                    self.summary["servers"] = {"ours": ours.url, "distribution": dist.url, "startup_s": ours.startup_s}
                    self.section(
                        "transfer",
                        f"skopeo push/pull of the medium image ({self.medium_mb:g} MB), {self.runs} runs per registry",
                        lambda: self._transfer(ours, dist),
                    )
                    self.section(
                        "latency",
                        f"request latency: {self.latency_n} sequential per kind, {2 * self.latency_n} at concurrency 8",
                        lambda: self._latency(ours, dist),
                    )
            except Exception as exc:  # a server that does not start: report it, keep the other sections
                traceback.print_exc()
                self.summary["errors"]["servers"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
            finally:
                self.summary["servers_stopped"] = {"ours_exit": ours.exit_code, "ours_shutdown_s": ours.shutdown_s}
                self._keep_logs(ours, dist)
        self.section("apptime", f"server-side cost per request over {self.runs} skopeo pushes and pulls", self._apptime)
        self.section("durability", "what the journal and fsyncs cost: pushes with and without, start-up after "
                     "100,000 journaled writes (tests/bench/durability.py)", self._durability)  # fmt: skip
        self.section("replication", "replication throughput: images pushed here, replicated push-based to distribution "
                     "2.8 (tests/bench/replication.py)", self._replication)  # fmt: skip
        self.section("proxy", f"proxy-cache cold and warm skopeo pulls vs distribution's proxy mode, {self.runs} "
                     "interleaved runs (tests/bench/proxy.py)", self._proxy)  # fmt: skip

    def _awscalls(self) -> dict[str, Any]:
        result = self._in_subprocess("awscalls", 600)
        if result["errors"]:
            self.summary["errors"]["awscalls"] = "; ".join(result["errors"])
        return result

    def _listing(self) -> dict[str, Any]:
        return self._in_subprocess("listing", 1800)

    def _in_subprocess(self, module: str, timeout: int, *args: str) -> dict[str, Any]:
        """Run `tests.bench.<module> [args] --json` in its own process (its moto patches stay there)."""
        out = self.workdir / f"{module}.json"
        proc = subprocess.run(
            [PYTHON, "-m", f"tests.bench.{module}", *args, "--json", str(out)],
            cwd=REPO_ROOT,
            env=loopback_env(),
            timeout=timeout,
            check=False,
        )
        if not out.exists():
            raise RuntimeError(f"{module} exited with {proc.returncode} and no result")
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def _gc(self) -> dict[str, Any]:
        result = self._in_subprocess("gc", 14400, "--blobs", str(env_int("BENCH_GC_BLOBS", gc.DEFAULT_BLOBS)))
        if result["errors"]:
            self.summary["errors"]["gc"] = f"runs that did not collect every blob: {result['errors']}"
        return result

    def _durability(self) -> dict[str, Any]:
        args = ("--runs", str(self.runs), "--medium-mb", str(self.medium_mb))
        return self._in_subprocess("durability", 7200, *args)

    def _replication(self) -> dict[str, Any]:
        result = self._in_subprocess("replication", 1800)
        if not result["ok"]:
            self.summary["errors"]["replication"] = f"{result['status']}, {result['tasks']} tasks, " + (
                f"not on distribution as pushed: {len(result['destination_mismatches'])}"
            )
        return result

    def _proxy(self) -> dict[str, Any]:
        result = self._in_subprocess("proxy", 3600, "--runs", str(self.runs))
        if not result["ok"]:
            self.summary["errors"]["proxy"] = f"pulled images not as pushed: {', '.join(result['mismatches'])}"
        return result

    def _import(self) -> dict[str, Any]:
        result = importtime.measure(env_int("BENCH_IMPORT_RUNS", 5))
        importtime.print_report(result)
        return result

    def _transfer(self, ours: OurRegistry, dist: Distribution) -> dict[str, Any]:
        # Same namespace on both; `library` is the project ours creates at start.
        namespace = f"library/bench-timing-{int(time.time())}"
        both = transfer.interleaved(
            [("distribution", dist.url, dist.creds), ("ours", ours.url, ours.creds)],
            self.runs, self.medium_mb, self.workdir, namespace,
        )  # fmt: skip
        theirs, mine = both["distribution"], both["ours"]
        for label, result in both.items():
            push, pull = _fmt_s(result["median_push_s"]), _fmt_s(result["median_pull_s"])
            print(f"{label}: median push {push}, pull {pull} over {len(result['runs'])} runs", flush=True)
        ratios = transfer.ratios(mine, theirs)
        pairs = transfer.pair_ratio_stats(mine, theirs)
        for kind in ("push", "pull"):
            value = ratios[kind]
            shown = "n/a" if value is None else f"{value:.2f}x"
            verdict = "" if value is None else ("OK" if value <= RATIO_TARGET else "OVER TARGET")
            print(f"ratio ours/distribution {kind}: {shown} (target <= {RATIO_TARGET}x) {verdict}; "
                  f"per interleaved pair: {ratio_text(pairs[kind])}", flush=True)  # fmt: skip
        failed = [r for r, res in (("ours", mine), ("distribution", theirs)) if not res["ok"]]
        if failed:
            self.summary["errors"]["transfer"] = f"failed runs against: {', '.join(failed)}"
        docker = relaypush.docker_interleaved(ours, dist, self.runs, round(self.medium_mb), self.workdir)
        gib = relaypush.gib_push(ours)
        _print_push_side(docker, gib)
        return {"ours": mine, "distribution": theirs, "ratios": ratios, "pair_ratios": pairs,
                "target_ratio": RATIO_TARGET, "docker": docker, "gib_push": gib}  # fmt: skip

    def _latency(self, ours: OurRegistry, dist: Distribution) -> dict[str, Any]:
        results = {
            "ours": latency.measure(ours.url, self.latency_n, 8, blob_get_status=307, creds=ours.creds),
            # distribution's filesystem driver answers blob GET with 200 and the (4 KiB) bytes.
            "distribution": latency.measure(dist.url, self.latency_n, 8, blob_get_status=200),
        }
        latency.print_report(results)
        rules = latency.measure_rules(ours.url, ours.creds, max(self.latency_n // 2, 20))
        latency.print_rules_report(rules)
        return {**results, "immutable_rules": rules}

    def _apptime(self) -> dict[str, Any]:
        """Our runner alone, under `tests.bench.apptime` (requests timed inside the process)."""
        log = self.workdir / "apptime.jsonl"
        namespace = f"library/bench-apptime-{int(time.time())}"
        with OurRegistry(self.workdir, ("tests.bench.apptime", str(log)), label="apptime") as ours:
            run = transfer.timing_baseline(
                "apptime", ours.url, self.runs, self.medium_mb, self.workdir / "a.json", namespace, ours.creds
            )
        if not run["ok"]:
            raise RuntimeError(f"timing-baseline failed against the timed server (exit {run['returncode']})")
        rows = apptime.summarise(log)
        apptime.print_table(rows, self.runs)
        return {"runs": self.runs, "median_push_s": run["median_push_s"], "requests": rows}

    def _keep_logs(self, ours: OurRegistry, dist: Distribution) -> None:
        logs = BUILD / "bench-logs"
        logs.mkdir(parents=True, exist_ok=True)
        for source, name in ((ours.log_path, "registry.log"), (dist.state / "registry.log", "distribution.log")):
            if source.exists():
                shutil.copyfile(source, logs / name)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _print_push_side(docker: dict[str, Any], gib: dict[str, Any]) -> None:
    for label in ("ours", "distribution"):
        d = docker[label]
        print(f"    docker push {label:<13}median {_fmt_s(d['median_push_s'])} over {len(d['runs'])} runs, "
              f"server CPU {d['cpu_ms_per_mb'] if d['cpu_ms_per_mb'] is not None else 'n/a'} ms per MB")  # fmt: skip
    ratio = docker["ratio"]
    print(f"    docker push ratio ours/distribution: {'n/a' if ratio is None else f'{ratio:.2f}x'} "
          f"(target < {RATIO_TARGET}x); per interleaved pair: {ratio_text(docker.get('pair_ratio'))}")  # fmt: skip
    print(f"    1 GiB chunked PATCH through the relay: {gib['push_s']} s, peak RSS +{gib['peak_rss_growth_mb']} MB, "
          f"server CPU {gib['cpu_ms_per_mb']} ms per MB")  # fmt: skip


def _fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def print_summary(summary: dict[str, Any]) -> list[str]:
    """Print the summary block; returns the targets that were missed."""
    missed: list[str] = []
    sections = summary["sections"]
    env = summary["environment"]
    banner("SUMMARY")
    print(
        f"{env['date']}  {env['cpus']} CPUs  python {env['python']}  {env['skopeo']}  {env['distribution']}  "
        f"git {env['git']['commit']} (+{env['git']['uncommitted_changes']} uncommitted)"
    )
    load = max(env["loadavg_start"][0], env.get("loadavg_end", [0])[0])
    print(f"load average (1 min) at start {env['loadavg_start'][0]}, at end {env.get('loadavg_end', ['?'])[0]}")
    if env["cpus"] and load > 0.5 * env["cpus"]:
        print("WARNING: the machine was busy with other work; timings are noisy (ratios less so)")
    if "transfer" in sections:
        t = sections["transfer"]
        ours, theirs, ratios = t["ours"], t["distribution"], t["ratios"]
        size = ours["runs"][0]["bytes"] / 1e6 if ours.get("runs") else float("nan")
        counts = f"{len(ours['runs'])}/{len(theirs['runs'])}"
        print(f"\n[1] skopeo medium image ({size:.1f} MB), runs ours/distribution: {counts}")
        print(f"    {'':<6}{'ours median':>14}{'distribution':>14}{'ratio':>9}  target")
        for kind in ("push", "pull"):
            ratio = ratios[kind]
            ok = ratio is not None and ratio <= t["target_ratio"]
            if not ok:
                missed.append(f"{kind} ratio {'n/a' if ratio is None else f'{ratio:.2f}x'} > {t['target_ratio']}x")
            shown = "n/a" if ratio is None else f"{ratio:.2f}x"
            print(
                f"    {kind:<6}{_fmt_s(ours[f'median_{kind}_s']):>14}{_fmt_s(theirs[f'median_{kind}_s']):>14}"
                f"{shown:>9}  <= {t['target_ratio']}x {'OK' if ok else 'MISSED'}"
            )
        if "docker" in t:
            docker_ratio = t["docker"]["ratio"]
            if docker_ratio is None or docker_ratio > t["target_ratio"]:
                missed.append(f"docker push ratio {'n/a' if docker_ratio is None else f'{docker_ratio:.2f}x'}")
            _print_push_side(t["docker"], t["gib_push"])
    if "awscalls" in sections:
        a = sections["awscalls"]
        print("\n[2] AWS calls per operation (in-process)")
        for row in a["operations"]:
            breakdown = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in row["breakdown"].items())
            print(f"    {row['operation']:<58}{row['total_calls']:>4}  {breakdown}")
        if a["forbidden_calls"]:
            missed.append("Scan/ListObjects on a request path")
            print(f"    FLAG: Scan/ListObjects on a request path: {', '.join(a['forbidden_calls'])}")
        else:
            print("    Scan/ListObjects on these paths: none (OK)")
    if "dynamocalls" in sections:
        d = sections["dynamocalls"]
        print(f"\n[2b] CPU per DynamoDB call on moto (ms, direct / botocore), load {d['loadavg_start']}")
        for op, direct_path in d["per_call_cpu"]["direct"].items():
            botocore_path = d["per_call_cpu"]["botocore"][op]
            print(f"    {op:<20}{direct_path['median_ms']:>8.3f}{botocore_path['median_ms']:>8.3f}")
    if "import" in sections:
        i = sections["import"]
        ok = i["meets_target"]
        if not ok:
            missed.append(f"import app {i['median_s'] * 1000:.0f} ms >= {i['target_s'] * 1000:.0f} ms")
        print(
            f"\n[3] import app (Lambda env): median {i['median_s'] * 1000:.1f} ms wall of {len(i['runs'])} "
            f"(target < {i['target_s'] * 1000:.0f} ms {'OK' if ok else 'MISSED'}), "
            f"CPU {i['cpu_median_s'] * 1000:.1f} ms; "
            f"without .pyc {i['no_bytecode_median_s'] * 1000:.1f} ms; moto imported: {i['moto_imported']}"
        )
        top = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in i["importtime_top10"][:10])
        print(f"    importtime top 10 cumulative (ms): {top}")
        top = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in i["importtime_top10_third_party"][:10])
        print(f"    outside app/chalicelib (ms): {top}")
    if "latency" in sections:
        servers = {name: r for name, r in sections["latency"].items() if name != "immutable_rules"}
        print("\n[4] latency (ms)       " + "".join(f"{name + ' median/p95':>30}" for name in servers))
        for key, label in latency.LABELS.items():
            pairs = [
                f"{r[key]['median_ms']:.2f} / {r[key]['p95_ms']:.2f}" if key in r else "-" for r in servers.values()
            ]
            cells = "".join(f"{pair:>30}" for pair in pairs)
            print(f"    {label:<46}{cells}")
        for name, r in servers.items():
            c = r["manifest_get_concurrent"]
            rate = f"{c['wall_s']:.2f} s, {c['throughput_rps']:.0f} req/s"
            print(f"    {name}: {c['n']} manifest GETs at concurrency 8: {rate}")
        if "immutable_rules" in sections["latency"]:
            latency.print_rules_report(sections["latency"]["immutable_rules"])
    if "apptime" in sections:
        a = sections["apptime"]
        print(f"\n[5] server-side cost per request (thread CPU inside the app), {a['runs']} pushes and pulls")
        apptime.print_table(a["requests"], a["runs"])
    if "listing" in sections:
        r = sections["listing"]
        sizes = f"{r['artifacts']} artifacts / {r['tags']} tags, page_size {r['page_size']}"
        print(f"\n[6] lists of {sizes} (ms are moto's)")
        for row in r["pages"]:
            print(f"    {row['list']:<30}{row['page']:<34}{row['calls']:>4} calls {row['ms']:>9.1f} ms")
    if "gc" in sections:
        g = sections["gc"]
        print(f"\n[7] GC of {g['blobs']} garbage blobs on moto (as many live ones in the table)")
        for r in g["runs"]:
            print(f"    workers {r['workers']}: {r['total_s']} s ({r['blobs_per_s']} blobs/s; mark {r['mark_s']} s "
                  f"= {r['mark_blobs_per_s']} blobs/s, of which the scan {r['scan_s']} s; sweep {r['sweep_s']} s "
                  f"= {r['sweep_blobs_per_s']} blobs/s), {r['aws_calls_per_blob']} AWS calls per collected blob, "
                  f"peak RSS {r['peak_rss_mb']} MB (+{r['gc_rss_mb']} MB during GC; the mark's view "
                  f"{r['view_mb']} MB)")  # fmt: skip
    if "durability" in sections:
        d = sections["durability"]
        durability.print_table(d)
        for kind, target in (("image", durability.IMAGE_TARGET), ("small", durability.SMALL_TARGET)):
            stats = d[kind].get("pair_ratio")  # the median of the interleaved pairs' ratios
            ratio = None if stats is None else stats["median"]
            if ratio is None or ratio > target:
                missed.append(f"durability {kind} push ratio {'n/a' if ratio is None else f'{ratio:.3f}x'} > {target}x")
    if "replication" in sections:
        print("\n[8] replication")
        replication.print_table(sections["replication"])
    if "proxy" in sections:
        print("\n[9] proxy cache")
        proxy.print_table(sections["proxy"])
    if summary["errors"]:
        print("\nERRORS: " + "; ".join(f"{k}: {v}" for k, v in summary["errors"].items()))
    not_run = [name for name in summary["requested"] if name not in sections]
    if not_run:
        print(f"\nsections without a result: {', '.join(not_run)}")
    print("\ntargets missed: " + ("; ".join(missed) if missed else "none") + (" (incomplete run)" if not_run else ""))
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if not (SHARED / "harness").is_dir():
        print(f"missing {SHARED}/harness (expected next to the repository)", file=sys.stderr)
        return 2
    # SIGTERM/SIGHUP unwind like Ctrl-C, so every `finally` stops its server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    bench = Bench(list(args.sections) or list(SECTIONS))
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        bench.summary["errors"]["interrupted"] = "stopped by a signal before the end"
        print("\ninterrupted: servers stopped", file=sys.stderr, flush=True)
    finally:
        bench.cleanup()
    bench.summary["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    missed = print_summary(bench.summary)
    bench.summary["targets_missed"] = missed
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / "bench.json"
    out.write_text(json.dumps(bench.summary, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(REPO_ROOT)}")
    if interrupted:
        return 130
    if bench.summary["errors"]:
        return 1
    return 1 if missed and os.environ.get("BENCH_STRICT") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
