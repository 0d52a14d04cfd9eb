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
A quick re-run of one part: `python -m tests.bench.durability --parts image --runs 9`.
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
from tests.bench.common import PYTHON, REPO_ROOT, env_float, env_int, loopback_env, report
from tests.bench.servers import OurRegistry, ServerError

IMAGE_TARGET = 1.05
SMALL_TARGET = 1.20
UNSAFE = {"REGISTRY_UNSAFE_NO_JOURNAL": "true"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _ratio(with_journal: float | None, without: float | None) -> float | None:
    return with_journal / without if with_journal and without else None


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
    times: dict[str, list[float]] = {label: [] for label in registries}
    for index in range(runs):
        order = list(registries.items()) if index % 2 == 0 else list(reversed(registries.items()))
        for label, server in order:
            client = _Client(server.url, server.creds)
            repo = f"library/bench-small-{index}"
            client.manifest(repo, "warm")  # the token and connection, untimed
            started = time.monotonic()
            for n in range(count):
                client.manifest(repo, f"t{n}")
            times[label].append(time.monotonic() - started)
            print(f"  [{label}] {count} manifests in {times[label][-1]:.2f} s", flush=True)
    medians = {label: statistics.median(values) for label, values in times.items()}
    return {"count": count, "runs": times, "median_s": medians,
            "ratio": _ratio(medians["journal"], medians["no-journal"])}  # fmt: skip


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
    namespace = f"library/bench-durability-{int(time.time())}"
    both = transfer.interleaved(
        [("journal", journal.url, journal.creds), ("no-journal", unsafe.url, unsafe.creds)],
        runs, medium_mb, workdir, namespace,
    )  # fmt: skip
    pushes = {label: r["median_push_s"] for label, r in both.items()}
    runs_by_label = {label: [run["push_s"] for run in r["runs"]] for label, r in both.items()}
    pairs = list(zip(runs_by_label["journal"], runs_by_label["no-journal"], strict=False))
    return {
        "medium_mb": medium_mb,
        "runs": runs_by_label,
        "median_push_s": pushes,
        "ratio": _ratio(pushes["journal"], pushes["no-journal"]),
        # Each run's pair was pushed back to back: the median of their ratios shrugs off load swings.
        "median_pair_ratio": statistics.median(a / b for a, b in pairs) if pairs else None,
        "ok": all(r["ok"] for r in both.values()),
    }


def print_table(result: dict[str, Any]) -> None:

    def verdict(ratio: float | None, target: float) -> str:
        return "n/a" if ratio is None else f"{ratio:.3f}x ({'OK' if ratio <= target else 'OVER'} target {target}x)"

    print(f"\n[durability] journal vs REGISTRY_UNSAFE_NO_JOURNAL; load average (1 min) "
          f"{result['loadavg_start'][0]} at start, {result['loadavg_end'][0]} at end")  # fmt: skip
    if "image" in result:
        image = result["image"]
        print(f"    skopeo push {image['medium_mb']:g} MB image, medians of {len(image['runs']['journal'])} "
              f"interleaved runs: journal {image['median_push_s']['journal']:.3f} s, none "
              f"{image['median_push_s']['no-journal']:.3f} s: {verdict(image['ratio'], IMAGE_TARGET)}; "
              f"median of the runs' pair ratios {image['median_pair_ratio']:.3f}x")  # fmt: skip
    if "small" in result:
        small = result["small"]
        print(f"    {small['count']} small manifests: journal {small['median_s']['journal']:.3f} s, "
              f"none {small['median_s']['no-journal']:.3f} s: {verdict(small['ratio'], SMALL_TARGET)}")  # fmt: skip
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
