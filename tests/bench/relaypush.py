"""The push side of the `transfer` section beyond skopeo: docker push, server CPU per MB, peak RSS.

- docker push: Debian's dockerd (docker.io) in a temporary directory, one new single-layer image
  per run (its own random bytes: no dedupe, no mount), the registries taking turns as in
  `transfer.interleaved`. `docker load` is untimed; `docker push` is timed, wall clock.
- Server CPU per MB pushed: the registry process's user+system CPU (from /proc) over those docker
  pushes, divided by the megabytes pushed; for our registry and for distribution.
- Peak RSS during a 1 GiB push: one chunked PATCH of 1 GiB through our relay, the process's peak
  resident size (VmHWM, reset just before) minus its resident size then; and that push's CPU per MB.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.bench.common import pair_ratios
from tests.bench.servers import Distribution, OurRegistry
from tests.e2e.support import Dockerd, ProcessUsage, push_streamed_blob, single_layer_image

GIB = 1024**3
MB = 1e6


def _distribution_pid(dist: Distribution) -> int | None:
    """distribution's process, found by the port it serves (run-distribution keeps no pid we can read)."""
    proc = subprocess.run(["ss", "-Hltnp", f"sport = :{dist.port}"], capture_output=True, text=True, check=False)
    for part in proc.stdout.split("pid=")[1:]:
        digits = part.split(",", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None


def docker_interleaved(ours: OurRegistry, dist: Distribution, runs: int, size_mb: int, workdir: Path) -> dict[str, Any]:
    daemon = Dockerd(workdir / "dockerd").start()
    config = workdir / "docker-config"
    usage = {"ours": ProcessUsage(ours.process.pid) if ours.process else None}
    dist_pid = _distribution_pid(dist)
    usage["distribution"] = ProcessUsage(dist_pid) if dist_pid else None
    hosts = {"ours": ours.url.split("//", 1)[1], "distribution": dist.url.split("//", 1)[1]}
    results: dict[str, Any] = {label: {"runs": [], "cpu_s": 0.0, "bytes": 0} for label in hosts}
    try:
        login = daemon.docker_cmd("--config", str(config), "login", "-u", ours.creds[0], "--password-stdin")
        subprocess.run([*login, hosts["ours"]], input=ours.creds[1], text=True, check=True, capture_output=True)
        for index in range(1, runs + 1):
            layout = single_layer_image(workdir / f"docker-image-{index}", size_mb, f"bench-docker-{time.time()}")
            archive = workdir / f"docker-image-{index}.tar"
            local = f"bench/docker:{index}"
            subprocess.run(["skopeo", "copy", "-q", f"oci:{layout.path}:latest", f"docker-archive:{archive}:{local}"],
                           check=True, timeout=600)  # fmt: skip
            daemon.docker("load", "-q", "-i", str(archive))
            size = sum(p.stat().st_size for p in (layout.path / "blobs" / "sha256").iterdir())
            order = ["distribution", "ours"] if index % 2 else ["ours", "distribution"]
            for label in order:
                ref = f"{hosts[label]}/library/bench-docker-{index}:v1"
                daemon.docker("tag", local, ref)
                meter = usage[label]
                cpu = meter.cpu_seconds() if meter else 0.0
                started = time.monotonic()
                daemon.docker("--config", str(config), "push", ref, timeout=900)
                seconds = time.monotonic() - started
                results[label]["runs"].append({"run": index, "push_s": round(seconds, 3), "bytes": size})
                if meter:
                    results[label]["cpu_s"] += meter.cpu_seconds() - cpu
                results[label]["bytes"] += size
                print(f"  [docker] run {index} {label}: push {seconds:.3f} s ({size / MB:.1f} MB)", flush=True)
            daemon.docker("rmi", "-f", local)
    finally:
        daemon.stop()
    for label, result in results.items():
        values = [run["push_s"] for run in result["runs"]]
        result["median_push_s"] = statistics.median(values) if values else None
        measured = usage[label] is not None and result["bytes"]
        result["cpu_ms_per_mb"] = round(result["cpu_s"] * 1000 / (result["bytes"] / MB), 3) if measured else None
    mine, theirs = results["ours"]["median_push_s"], results["distribution"]["median_push_s"]
    results["ratio"] = mine / theirs if mine and theirs else None
    pairs = zip(results["ours"]["runs"], results["distribution"]["runs"], strict=False)
    results["pair_ratio"] = pair_ratios([(a["push_s"], b["push_s"]) for a, b in pairs if a["run"] == b["run"]])
    return results


def gib_push(ours: OurRegistry) -> dict[str, Any]:
    assert ours.process is not None
    usage = ProcessUsage(ours.process.pid)
    repo = f"library/bench-gib-{int(time.time())}"
    push_streamed_blob(ours.url, repo, 32 * 1024**2, ours.creds, "bench-warm-up")
    usage.reset_peak()
    rss, cpu, started = usage.rss_bytes(), usage.cpu_seconds(), time.monotonic()
    push_streamed_blob(ours.url, repo, GIB, ours.creds, f"bench-gib-{time.time()}")
    seconds = time.monotonic() - started
    return {
        "bytes": GIB,
        "push_s": round(seconds, 3),
        "peak_rss_growth_mb": round((usage.peak_bytes() - rss) / MB, 1),
        "cpu_ms_per_mb": round((usage.cpu_seconds() - cpu) * 1000 / (GIB / MB), 3),
    }
