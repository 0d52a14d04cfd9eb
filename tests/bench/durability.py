"""What durability costs the embedded runner (`python -m tests.bench durability`).

1. skopeo push of the harness's medium image (~52 MB at the default 50 MB setting) to two
   `make serve` runners: one as shipped (journal, blob files fsync'ed), one with
   `REGISTRY_UNSAFE_NO_JOURNAL=true` (neither); runs interleaved (tests/bench/transfer.py says why).
2. 100 small manifests pushed over HTTP (a fresh config and a 1 KiB layer each, monolithic blob
   uploads, then the manifest), to the same two runners, taking turns per batch of 100.
3. Start-up time of `make serve`'s command after 100,000 journaled writes (distinct ~300-byte
   items, never compacted: the worst case, every record replayed), after the same state compacted
   into a snapshot, and on an empty data dir.

Targets: push of the image under 5% slower with the journal, the small manifests under 20%.
The verdict is the median of per-pair ratios: each run pushes to both runners back to back (the
first of a pair alternating), and a load swing on this shared machine moves both halves of a pair
together. Quartiles and range of the ratios are printed beside it, and the server processes' CPU
time (user + system, from /proc) per run, which other work on the machine disturbs less than wall
time. A quick re-run of one part: `python -m tests.bench.durability --parts image --runs 9`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.bench import transfer
from tests.bench.common import (
    PYTHON,
    REPO_ROOT,
    env_float,
    env_int,
    loopback_env,
    pair_ratios,
    ratio_text,
    report,
)
from tests.bench.servers import OurRegistry, ServerError
from tests.e2e.support import ProcessUsage

IMAGE_TARGET = 1.05
SMALL_TARGET = 1.20
UNSAFE = {"REGISTRY_UNSAFE_NO_JOURNAL": "true"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _ratio(with_journal: float | None, without: float | None) -> float | None:
    return with_journal / without if with_journal and without else None


def _cpu_seconds(server: OurRegistry) -> float:
    """The server process's CPU time so far (user + system, every thread)."""
    assert server.process is not None
    return ProcessUsage(server.process.pid).cpu_seconds()


def _pairs(runs: dict[str, list[dict[str, Any]]], key: str) -> list[tuple[float, float]]:
    """(journal, no-journal) values of `key`, run by run (the runs of one index were back to back)."""
    return [(a[key], b[key]) for a, b in zip(runs["journal"], runs["no-journal"], strict=True)]


def _summary(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
    return {
        "median": {label: statistics.median(r[key] for r in values) for label, values in runs.items()},
        "pair_ratio": pair_ratios(_pairs(runs, key)),
    }


# 2. Small manifests.


class _Client:
    """Just enough of a registry client: Basic, or a Bearer token from the challenge's realm."""

    def __init__(self, url: str, creds: tuple[str, str]) -> None:
        self.url, self.creds = url, creds
        self.session = requests.Session()
        self.tokens: dict[str, str] = {}

    def call(self, method: str, path: str, repo: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if repo in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[repo]}"
        response = self.session.request(method, self.url + path, headers=headers, auth=None if repo in self.tokens
                                        else self.creds, timeout=60, **kwargs)  # fmt: skip
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.lower().startswith("bearer"):
            params = dict(part.split("=", 1) for part in challenge[7:].replace('"', "").split(","))
            realm = params.pop("realm")
            params["scope"] = f"repository:{repo}:push,pull"
            token = self.session.get(realm, params=params, auth=self.creds, timeout=60).json()
            self.tokens[repo] = token.get("token") or token["access_token"]
            return self.call(method, path, repo, headers=headers, **kwargs)
        return response

    def blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.call("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", repo, data=data,
                      headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        if r.status_code == 202:  # no monolithic POST: PUT to the session
            location = r.headers["Location"]
            path = location if location.startswith("/") else location[len(self.url) :]
            sep = "&" if "?" in path else "?"
            r = self.call("PUT", f"{path}{sep}digest={digest}", repo, data=data,
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        if r.status_code != 201:
            raise RuntimeError(f"blob upload to {repo}: {r.status_code} {r.text[:300]}")
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, tag: str) -> None:
        nonce = os.urandom(8).hex()
        config = self.blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "nonce": nonce}).encode())
        layer = self.blob(repo, os.urandom(1024))
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
            }
        ).encode()
        r = self.call("PUT", f"/v2/{repo}/manifests/{tag}", repo, data=body, headers={"Content-Type": OCI_MANIFEST})
        if r.status_code != 201:
            raise RuntimeError(f"manifest PUT {repo}:{tag}: {r.status_code} {r.text[:300]}")


def small_manifests(registries: dict[str, OurRegistry], runs: int, count: int) -> dict[str, Any]:
    """`runs` pairs of batches of `count` manifests, one batch per runner, back to back."""
    measured: dict[str, list[dict[str, Any]]] = {label: [] for label in registries}
    for index in range(runs):
        order = list(registries.items()) if index % 2 == 0 else list(reversed(registries.items()))
        for label, server in order:
            client = _Client(server.url, server.creds)
            repo = f"library/bench-small-{index}"
            client.manifest(repo, "warm")  # the token and connection, untimed
            cpu, started = _cpu_seconds(server), time.monotonic()
            for n in range(count):
                client.manifest(repo, f"t{n}")
            seconds, cpu = time.monotonic() - started, _cpu_seconds(server) - cpu
            measured[label].append({"run": index + 1, "s": round(seconds, 3), "cpu_s": round(cpu, 3),
                                    "load": round(os.getloadavg()[0], 2)})  # fmt: skip
            print(f"  [{label}] {count} manifests in {seconds:.2f} s, server CPU {cpu:.2f} s", flush=True)
    wall, cpu = _summary(measured, "s"), _summary(measured, "cpu_s")
    return {"count": count, "runs": measured, "median_s": wall["median"], "pair_ratio": wall["pair_ratio"],
            "median_cpu_s": cpu["median"], "cpu_pair_ratio": cpu["pair_ratio"],
            "ratio": _ratio(wall["median"]["journal"], wall["median"]["no-journal"])}  # fmt: skip


# 3. Start-up after many journaled writes.


def _open_state(data_dir: Path) -> tuple[Any, Any]:
    """What the runner does at start, minus the server: moto restored from `data_dir`, journaling."""
    from chalicelib.config import Settings
    from chalicelib.local import moto_patches
    from chalicelib.local.emulator import Emulator
    from chalicelib.local.persistence import Persistence

    moto_patches.apply()
    settings = Settings()
    emulator = Emulator(settings)
    emulator.start()
    persistence = Persistence(data_dir, settings.aws_region)
    persistence.restore()
    emulator.create_resources()
    return settings, persistence


def _fill(data_dir: Path, writes: int) -> None:
    """`writes` puts of distinct ~300-byte items through moto's journaled backend from 8 threads,
    then an exit without a clean stop (nothing compacted)."""
    from moto.dynamodb.models import dynamodb_backends

    settings, _ = _open_state(data_dir)
    backend = dynamodb_backends["123456789012"][settings.aws_region]

    def work(first: int) -> None:
        for i in range(first, writes, 8):
            item = {"pk": {"S": f"BENCH#{i}"}, "sk": {"S": "ROW"}, "size": {"N": str(i)}, "body": {"S": "x" * 200}}
            backend.put_item(settings.table_name, item)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os._exit(0)


def _in_child(*args: str) -> None:
    env = {k: v for k, v in loopback_env().items() if not k.startswith("REGISTRY_")}
    command = [PYTHON, "-m", "tests.bench.durability", *args]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, timeout=3600)


def _startup(workdir: Path, label: str) -> float | None:
    """Seconds until the runner listens on the data dir `<label>-data`; None past the servers' ready timeout."""
    server = OurRegistry(workdir, label=label)
    try:
        with server:
            return server.startup_s
    except ServerError as exc:
        print(f"  start-up, {label} data dir: {exc}", flush=True)
        return None


def startup(workdir: Path, writes: int) -> dict[str, Any]:
    journaled = workdir / "journaled-data"
    started = time.monotonic()
    _in_child("--fill", str(journaled), "--writes", str(writes))
    write_s = time.monotonic() - started
    journal_bytes = sum(p.stat().st_size for p in (journaled / "dynamodb").glob("journal-*.log"))
    print(f"  {writes} journaled writes in {write_s:.1f} s ({journal_bytes / 1e6:.1f} MB of journal)", flush=True)
    compacted = workdir / "compacted-data"
    shutil.copytree(journaled, compacted)
    _in_child("--compact", str(compacted))
    result = {"writes": writes, "write_s": round(write_s, 2), "journal_mb": round(journal_bytes / 1e6, 2)}
    for label in ("empty", "journaled", "compacted"):
        seconds = _startup(workdir, label)
        result[f"{label}_startup_s"] = None if seconds is None else round(seconds, 2)
        print(f"  start-up, {label} data dir: {result[f'{label}_startup_s']} s", flush=True)
    return result


PARTS = ("image", "small", "startup")


def measure(
    workdir: Path, runs: int, medium_mb: float, small: int, writes: int, parts: tuple[str, ...] = PARTS
) -> dict[str, Any]:
    result: dict[str, Any] = {"loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    if "image" in parts or "small" in parts:
        journal = OurRegistry(workdir, label="journal")
        unsafe = OurRegistry(workdir, label="no-journal", extra_env=UNSAFE)
        with journal, unsafe:
            if "image" in parts:
                result["image"] = _image(journal, unsafe, runs, medium_mb, workdir)
            if "small" in parts:
                result["small"] = small_manifests({"journal": journal, "no-journal": unsafe}, runs, small)
    if "startup" in parts:
        result["startup"] = startup(workdir, writes)
    result["targets"] = {"image": IMAGE_TARGET, "small": SMALL_TARGET}
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _image(journal: OurRegistry, unsafe: OurRegistry, runs: int, medium_mb: float, workdir: Path) -> dict[str, Any]:
    """`runs` pairs of skopeo runs (push, then pull: the harness's `timing-baseline`), one per runner,
    back to back, the first of a pair alternating; each run's server CPU beside its times."""
    namespace = f"library/bench-durability-{int(time.time())}"
    servers = {"journal": journal, "no-journal": unsafe}
    measured: dict[str, list[dict[str, Any]]] = {label: [] for label in servers}
    ok = True
    for index in range(1, runs + 1):
        order = list(servers) if index % 2 else list(reversed(servers))
        for label in order:
            server = servers[label]
            cpu = _cpu_seconds(server)
            one = transfer.timing_baseline(label, server.url, 1, medium_mb, workdir / f"{label}-{index}.json",
                                           f"{namespace}-{index}", server.creds)  # fmt: skip
            cpu = _cpu_seconds(server) - cpu
            ok = ok and one["ok"]
            for run in one["runs"]:
                measured[label].append({"run": index, "push_s": run["push_s"], "pull_s": run["pull_s"],
                                        "cpu_s": round(cpu, 3), "load": round(os.getloadavg()[0], 2)})  # fmt: skip
            print(f"  [{label}] server CPU over the push and pull {cpu:.2f} s", flush=True)
    if not ok or len(measured["journal"]) != len(measured["no-journal"]):
        return {"medium_mb": medium_mb, "runs": measured, "ok": False}
    push, cpu = _summary(measured, "push_s"), _summary(measured, "cpu_s")
    return {
        "medium_mb": medium_mb,
        "runs": measured,
        "median_push_s": push["median"],
        "ratio": _ratio(push["median"]["journal"], push["median"]["no-journal"]),
        "pair_ratio": push["pair_ratio"],
        "median_cpu_s": cpu["median"],
        "cpu_pair_ratio": cpu["pair_ratio"],
        "ok": True,
    }


def print_table(result: dict[str, Any]) -> None:

    def verdict(stats: dict[str, Any] | None, target: float) -> str:
        if stats is None:
            return "n/a"
        return f"{ratio_text(stats)}: {'OK' if stats['median'] <= target else 'OVER'} target {target}x"

    print(f"\n[durability] journal vs REGISTRY_UNSAFE_NO_JOURNAL; load average (1 min) "
          f"{result['loadavg_start'][0]} at start, {result['loadavg_end'][0]} at end")  # fmt: skip
    if "image" in result:
        image = result["image"]
        if not image["ok"]:
            print("    skopeo push of the image: some runs failed (see above)")
        else:
            push, cpu = image["median_push_s"], image["median_cpu_s"]
            pairs = len(image["runs"]["journal"])
            print(f"    skopeo push {image['medium_mb']:g} MB image, {pairs} interleaved pairs: "
                  f"median push journal {push['journal']:.3f} s, none {push['no-journal']:.3f} s")  # fmt: skip
            print(f"      push time, journal/none: {verdict(image['pair_ratio'], IMAGE_TARGET)}")
            print(f"      server CPU per run (push + pull), journal {cpu['journal']:.2f} s, none "
                  f"{cpu['no-journal']:.2f} s: {ratio_text(image['cpu_pair_ratio'])}")  # fmt: skip
    if "small" in result:
        small = result["small"]
        wall, cpu = small["median_s"], small["median_cpu_s"]
        print(f"    {small['count']} small manifests, {len(small['runs']['journal'])} interleaved pairs: median "
              f"journal {wall['journal']:.3f} s, none {wall['no-journal']:.3f} s")  # fmt: skip
        print(f"      time, journal/none: {verdict(small['pair_ratio'], SMALL_TARGET)}")
        print(f"      server CPU per batch, journal {cpu['journal']:.2f} s, none {cpu['no-journal']:.2f} s: "
              f"{ratio_text(small['cpu_pair_ratio'])}")  # fmt: skip
    if "startup" in result:
        start = result["startup"]
        print(f"    start-up after {start['writes']} journaled writes ({start['journal_mb']} MB): "
              f"{start['journaled_startup_s']} s; same state compacted: {start['compacted_startup_s']} s; "
              f"empty data dir: {start['empty_startup_s']} s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.durability", description=__doc__)
    parser.add_argument("--runs", type=int, default=env_int("BENCH_RUNS", 5))
    parser.add_argument("--medium-mb", type=float, default=env_float("BENCH_MEDIUM_MB", 50.0))
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, any of {', '.join(PARTS)}")
    parser.add_argument("--json")
    parser.add_argument("--fill", type=Path, help=argparse.SUPPRESS)  # the child processes of part 3
    parser.add_argument("--compact", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fill:
        _fill(args.fill, args.writes)
    if args.compact:
        _open_state(args.compact)[1].close()
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-durability-"))
    try:
        parts = tuple(part for part in args.parts.split(",") if part)
        if unknown := set(parts) - set(PARTS):
            parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
        result = measure(workdir, args.runs, args.medium_mb, args.small, args.writes, parts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(result, print_table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
