"""Proxy-cache pull times: a proxy-cache project of `make serve` against CNCF distribution 2.8's own
proxy mode (`proxy.remoteurl`), both in front of the same plain distribution upstream.

`python -m tests.bench.proxy [--runs 5] [--image-mb 20] [--json FILE]`

Per run a fresh image (the harness's `make-images` medium case: three layers of random bytes,
a new seed each run) is pushed to the upstream with skopeo, untimed. Then each proxy pulls it with
`skopeo copy` into a `dir:` of its own: cold (nothing cached, the proxy fetches from the upstream),
then warm (the same image again, served from the proxy's cache). The two proxies take turns, the
first alternating from run to run, so that a load swing on the machine falls on both halves of a
pair; each pull's directory is checked against the pushed image (its manifest's digest).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.bench.common import (
    HARNESS,
    PYTHON,
    env_float,
    env_int,
    loopback_env,
    median,
    pair_ratios,
    ratio_text,
    run_in_workdir,
)
from tests.bench.servers import Distribution, OurRegistry
from tests.e2e.peers import Distribution as ConfiguredDistribution

API = "/api/v2.0"
PROJECT = "bench-proxy"
KINDS = ("cold", "warm")


def _skopeo(*args: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(["skopeo", "copy", "--retry-times", "0", *args], env=loopback_env(),
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo copy {' '.join(args)}: {proc.stderr.strip()[-1000:]}")
    return time.monotonic() - started


def _proxy_project(ours: OurRegistry, upstream: str) -> None:
    def post(path: str, body: dict[str, Any]) -> requests.Response:
        response = requests.post(ours.url + API + path, json=body, auth=ours.creds, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response

    registry = post("/registries", {"name": "bench-upstream", "type": "docker-registry", "url": upstream})
    registry_id = int(registry.headers["Location"].rsplit("/", 1)[1])
    post("/projects", {"project_name": PROJECT, "registry_id": registry_id, "metadata": {"public": "true"}})


def _image(workdir: Path, seed: str, image_mb: float) -> tuple[Path, str]:
    out = workdir / f"image-{seed}"
    subprocess.run([PYTHON, str(HARNESS / "make-images"), str(out), "--seed", seed, "--medium-mb", str(image_mb),
                    "--only", "medium"], check=True, capture_output=True, timeout=300)  # fmt: skip
    layout = out / "medium"
    index = json.loads((layout / "index.json").read_text())
    return layout, str(index["manifests"][0]["digest"])


def _pulled_digest(directory: Path) -> str:
    return "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()


def measure(workdir: Path, runs: int, image_mb: float) -> dict[str, Any]:
    result: dict[str, Any] = {"runs": runs, "image_mb": image_mb, "loadavg_start": _load()}
    timings: dict[str, list[dict[str, Any]]] = {"ours": [], "distribution": []}
    mismatches: list[str] = []
    egress = {"REGISTRY_EGRESS_ALLOW_NETWORKS": "127.0.0.0/8"}
    with Distribution(workdir) as upstream, OurRegistry(workdir, extra_env=egress) as ours:
        theirs = ConfiguredDistribution(workdir / "distribution-proxy", proxy=upstream.url).start()
        try:
            _proxy_project(ours, upstream.url)
            sources = {
                "ours": (f"{_host(ours.url)}/{PROJECT}", ["--src-creds", ":".join(ours.creds)]),
                "distribution": (_host(theirs.url), []),
            }
            stamp = int(time.time())
            for index in range(1, runs + 1):
                layout, digest = _image(workdir, f"proxy-{stamp}-{index}", image_mb)
                repo = f"bench/proxy-{index}:v1"
                _skopeo("--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{_host(upstream.url)}/{repo}")
                order = list(sources) if index % 2 else list(reversed(sources))
                row: dict[str, dict[str, Any]] = {label: {"run": index} for label in sources}
                for kind in KINDS:
                    for label in order:
                        host, creds = sources[label]
                        target = workdir / f"pull-{label}-{index}-{kind}"
                        seconds = _skopeo("--src-tls-verify=false", *creds, f"docker://{host}/{repo}", f"dir:{target}")
                        row[label][f"{kind}_s"] = round(seconds, 4)
                        if _pulled_digest(target) != digest:
                            mismatches.append(f"{label} {kind} run {index}")
                        shutil.rmtree(target, ignore_errors=True)
                for label in sources:
                    timings[label].append(row[label])
                shutil.rmtree(layout.parent, ignore_errors=True)
                print(f"  run {index}: " + "; ".join(f"{label} cold {row[label]['cold_s']:.3f} s warm "
                      f"{row[label]['warm_s']:.3f} s" for label in order), flush=True)  # fmt: skip
        finally:
            theirs.stop()
    result["timings"] = timings
    for kind in KINDS:
        ours_s, theirs_s = ([r[f"{kind}_s"] for r in timings[label]] for label in ("ours", "distribution"))
        result[f"median_{kind}_s"] = {"ours": round(median(ours_s), 4), "distribution": round(median(theirs_s), 4)}
        result[f"{kind}_pair_ratio"] = pair_ratios(list(zip(ours_s, theirs_s, strict=True)))
    result["mismatches"] = mismatches
    result["ok"] = not mismatches
    result["loadavg_end"] = _load()
    return result


def _host(url: str) -> str:
    return url.split("//", 1)[1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def print_table(result: dict[str, Any]) -> None:
    print(f"\n[proxy] skopeo pulls of a {result['image_mb']:g} MB image (3 layers) through a proxy-cache project vs "
          f"distribution 2.8's proxy mode, {result['runs']} interleaved runs; load average (1 min) "
          f"{result['loadavg_start'][0]} at start, {result['loadavg_end'][0]} at end")  # fmt: skip
    for kind in KINDS:
        medians = result[f"median_{kind}_s"]
        print(f"    {kind}: median ours {medians['ours']:.3f} s, distribution {medians['distribution']:.3f} s; "
              f"ours/distribution {ratio_text(result[f'{kind}_pair_ratio'])}")  # fmt: skip
    if result["mismatches"]:
        print(f"    PULLED IMAGE NOT AS PUSHED: {', '.join(result['mismatches'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.proxy", description=__doc__)
    parser.add_argument("--runs", type=int, default=env_int("BENCH_RUNS", 5))
    parser.add_argument("--image-mb", type=float, default=env_float("BENCH_PROXY_MB", 20.0))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    body = functools.partial(measure, runs=args.runs, image_mb=args.image_mb)
    return run_in_workdir("registry-bench-proxy-", body, print_table, args.json)


if __name__ == "__main__":
    sys.exit(main())
