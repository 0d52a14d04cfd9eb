"""GC throughput: mark and sweep of many garbage blobs on moto, with workers 1 and 4.

Run as `python -m tests.bench.gc [--blobs N] [--workers 1,4] [--json FILE]` (the bench runs it in
a subprocess; N defaults to `BENCH_GC_BLOBS`, else 100,000). The garbage is created directly, not
pushed: N blob rows (old, held by no project) and N small objects under `blobs/`, plus as many
blobs that are not garbage (each with its blob, project-blob and reference rows), so the mark
phase's Scan reads 4N rows to collect N. Each worker count runs in a process of its own, so its
peak RSS (`ru_maxrss`) is its own: moto's tables and objects, plus what the GC run added on top
of the RSS it had once populated and had run GC once on the empty table (`gc_rss_mb`: the mark's
view, and whatever moto keeps for the run). `view_mb` is the mark's view itself (a deep
`sys.getsizeof`, shared objects once), measured after it is built, outside `mark_s`.
The run is the real one: moto's Step Functions executes `infra/statemachines/gc.asl.json`, its
Tasks dispatched in-process to the GC handlers, as in `make serve`. Every botocore call is counted
(`BaseClient._make_api_call`) while a run is measured.

Everything runs in one Python process on moto (GIL-bound, in-memory, every call serialised by the
local runner's lock), so the absolute rates say little about AWS, where each call costs
milliseconds of network but the scan segments and mark writes overlap on threads and the shards
run in separate Lambdas; the calls per collected blob carry over. `scan_s` is the mark's read of
the table (from the job's log), the rest of `mark_s` its conditional marks, orphan listing and
candidate writes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.bench.awscalls import CallCounter, _configure_environment, _create_resources
from tests.bench.common import PYTHON, REPO_ROOT, loopback_env, report

WORKERS = (1, 4)
DEFAULT_BLOBS = 100_000
_SCAN_LOG = re.compile(r"read (\d+) rows of .* in ([\d.]+) s")


def _populate(blobs: int, tag: str) -> int:
    """`blobs` garbage blobs (rows + objects) and as many live ones (rows, project-blob and reference rows)."""
    import boto3

    from chalicelib.config import get_settings

    settings = get_settings()
    dynamodb = boto3.client("dynamodb", region_name=settings.aws_region)
    s3 = boto3.client("s3", region_name=settings.aws_region)
    old = str(int(time.time()) - 30 * 24 * 3600)
    requests: list[dict[str, Any]] = []
    keys: list[str] = []
    manifest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
    for i in range(blobs):
        for kind in ("garbage", "held"):
            data = f"{tag}-{kind}-{i}".encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            requests.append({"PutRequest": {"Item": {
                "pk": {"S": f"BLOB#{digest}"}, "sk": {"S": "BLOB"}, "size": {"N": str(len(data))},
                "state": {"S": "none"}, "version": {"N": "0"}, "created_at": {"N": old}, "updated_at": {"N": old},
            }}})  # fmt: skip
            if kind == "held":  # counted by the project and referenced by a manifest of it
                requests.append({"PutRequest": {"Item": {
                    "pk": {"S": "PROJECT#library"}, "sk": {"S": f"BLOB#{digest}"}, "size": {"N": str(len(data))},
                    "created_at": {"N": old},
                }}})  # fmt: skip
                requests.append({"PutRequest": {"Item": {
                    "pk": {"S": "PROJECT#library"}, "sk": {"S": f"REF#{digest}#library/bench@{manifest}"},
                }}})  # fmt: skip
            else:
                keys.append(digest)
    for start in range(0, len(requests), 25):
        dynamodb.batch_write_item(RequestItems={settings.table_name: requests[start : start + 25]})

    def put(digest: str) -> None:
        s3.put_object(Bucket=settings.bucket_name, Key="blobs/sha256/" + digest[7:], Body=b"x" * 16)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    return len(keys)


def _run(http: Any, counter: CallCounter, workers: int) -> dict[str, Any]:
    from chalicelib.wiring import services

    marks: dict[str, float] = {}
    views = {"bytes": 0, "seconds": 0.0}

    def pause(phase: str, job_id: int) -> None:
        marks.setdefault(phase, time.monotonic())

    service = services().gc
    service.pause = pause
    # One Mark call, as on AWS, where the Scan of a table this size takes seconds: moto's can take
    # longer than the 600 s budget per call, and then every further call would scan it again.
    service.mark_budget = 24 * 3600.0
    build = service._view

    def measured_view(*args: Any, **kwargs: Any) -> Any:
        view = build(*args, **kwargs)
        started = time.monotonic()
        views["bytes"] = max(views["bytes"], _deep_size(view))
        views["seconds"] += time.monotonic() - started
        return view

    service._view = measured_view  # type: ignore[method-assign]
    try:
        return _measured_run(http, counter, workers, marks, views)
    finally:
        service._view = build  # type: ignore[method-assign]


def _measured_run(http: Any, counter: CallCounter, workers: int, marks: dict[str, float],
                  views: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    body = json.dumps({"schedule": {"type": "Manual"}, "parameters": {"workers": workers, "delete_untagged": False}})
    with counter.measure() as calls:
        started = time.monotonic()
        response = http.post("/api/v2.0/system/gc/schedule", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 201, response.get_data()
        job_id = response.headers["Location"].rsplit("/", 1)[-1]
        _wait_for_executions()  # Step Functions calls are not counted; polling the API would be
        ended = time.monotonic()
    job = http.get(f"/api/v2.0/system/gc/{job_id}").get_json()
    result = json.loads(job["job_parameters"])
    scans = _SCAN_LOG.findall(http.get(f"/api/v2.0/system/gc/{job_id}/log").get_data(as_text=True))
    assert job["job_status"] == "Success", job
    collected = int(result["purged_blobs"])
    mark_s = marks.get("sweep", ended) - marks["mark"] - views["seconds"]
    sweep_s = marks.get("finish", ended) - marks.get("sweep", ended)
    # Step Functions and Lambda calls are the engine's (one per Task), not per blob.
    by_kind = Counter(c for c in calls if not c.startswith(("stepfunctions:", "lambda:")))
    return {
        "workers": workers,
        "collected": collected,
        "total_s": round(ended - started, 2),
        "mark_s": round(mark_s, 2),
        "scan_s": round(sum(float(s) for _, s in scans), 2),
        "scanned_rows": sum(int(n) for n, _ in scans),
        "view_mb": round(views["bytes"] / 2**20, 1),
        "sweep_s": round(sweep_s, 2),
        "blobs_per_s": round(collected / (ended - started), 1) if collected else None,
        "mark_blobs_per_s": round(collected / mark_s, 1) if collected and mark_s else None,
        "sweep_blobs_per_s": round(collected / sweep_s, 1) if collected and sweep_s else None,
        "aws_calls": sum(by_kind.values()),
        "aws_calls_per_blob": round(sum(by_kind.values()) / collected, 2) if collected else None,
        "calls": dict(by_kind.most_common()),
    }


def _deep_size(root: object) -> int:
    """Bytes of `root` and everything it holds (containers, slots, dataclass fields), each object once."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dataclass_fields__"):
            stack.extend(getattr(obj, name) for name in obj.__dataclass_fields__)
    return total


def _wait_for_executions() -> None:
    import boto3

    client = boto3.client("stepfunctions", region_name="us-east-1")
    for machine in client.list_state_machines()["stateMachines"]:
        arn = machine["stateMachineArn"]
        while client.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            time.sleep(0.05)


def measure(blobs: int, workers: tuple[int, ...] = WORKERS) -> dict[str, Any]:
    """One fresh moto world per worker count, so every run sees the same table; with more than one
    count, each in a child process (its own peak RSS)."""
    if len(workers) > 1:
        runs = [run for count in workers for run in _child(blobs, count)["runs"]]
        return {"blobs": blobs, "runs": runs, "errors": [r for r in runs if r["collected"] != blobs]}
    _configure_environment()
    os.environ["REGISTRY_TABLE_NAME"], os.environ["REGISTRY_BUCKET_NAME"] = "bench-gc", "bench-gc"
    from chalicelib.local import moto_patches

    counter = CallCounter()
    counter.install()
    moto_patches.apply()
    runs = [_measure_one(blobs, workers[0], counter)]
    return {"blobs": blobs, "runs": runs, "errors": [r for r in runs if r["collected"] != blobs]}


def _child(blobs: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        out = os.path.join(tmp, "result.json")
        command = [PYTHON, "-m", "tests.bench.gc", "--blobs", str(blobs), "--workers", str(workers), "--json", out]
        subprocess.run(command, cwd=REPO_ROOT, env=loopback_env(), check=False)
        if not os.path.exists(out):
            raise RuntimeError(f"the GC bench with workers={workers} left no result")
        with open(out, encoding="utf-8") as handle:
            result: dict[str, Any] = json.load(handle)
            return result


def _rss_mb() -> float:
    """This process's resident set now (VmRSS), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(kb / 1024, 1)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux


def _measure_one(blobs: int, workers: int, counter: CallCounter) -> dict[str, Any]:
    import boto3
    from moto import mock_aws
    from werkzeug.test import Client

    from chalicelib import wiring
    from chalicelib.local import stepfunctions
    from chalicelib.local.wsgi import ChaliceWSGI

    with mock_aws():
        stepfunctions.install()
        _create_resources()
        machines = stepfunctions.create_state_machines(boto3.client("stepfunctions"), "us-east-1")
        os.environ["REGISTRY_GC_STATE_MACHINE_ARN"] = machines["GARBAGE_COLLECTION"]
        wiring.reset()
        from app import app

        credentials = base64.b64encode(f"admin:{os.environ['REGISTRY_ADMIN_PASSWORD']}".encode()).decode()
        http = _Authed(Client(ChaliceWSGI(app), use_cookies=False), {"Authorization": f"Basic {credentials}"})
        _run(http, counter, workers)  # warm-up on the empty table: the first run loads moto's ASL interpreter
        started = time.monotonic()
        created = _populate(blobs, f"w{workers}")
        print(f"created {created} garbage + {created} live blobs in {time.monotonic() - started:.1f}s", flush=True)
        populated = _rss_mb()
        run = _run(http, counter, workers)
        run.update(rss_before_gc_mb=populated, peak_rss_mb=_peak_rss_mb())
        run["gc_rss_mb"] = round(run["peak_rss_mb"] - populated, 1)
        print(json.dumps({k: v for k, v in run.items() if k != "calls"}), flush=True)
        return run


class _Authed:
    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self._client, self._headers = client, headers

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._client.get(path, headers=self._headers, **kwargs)

    def post(self, path: str, *, data: str, headers: dict[str, str]) -> Any:
        return self._client.post(path, data=data, headers={**self._headers, **headers})


def print_table(result: dict[str, Any]) -> None:
    print(f"\nGC of {result['blobs']} garbage blobs (table holds as many live ones):")
    print(f"{'workers':>8}{'total s':>9}{'scan s':>8}{'mark s':>8}{'sweep s':>9}{'blobs/s':>9}{'mark/s':>9}"
          f"{'sweep/s':>9}{'calls/blob':>11}{'peak MB':>9}{'GC MB':>7}{'view MB':>9}")  # fmt: skip
    for r in result["runs"]:
        print(f"{r['workers']:>8}{r['total_s']:>9}{r['scan_s']:>8}{r['mark_s']:>8}{r['sweep_s']:>9}"
              f"{r['blobs_per_s']!s:>9}{r['mark_blobs_per_s']!s:>9}{r['sweep_blobs_per_s']!s:>9}"
              f"{r['aws_calls_per_blob']!s:>11}{r['peak_rss_mb']:>9}{r['gc_rss_mb']:>7}{r['view_mb']:>9}")  # fmt: skip
    for r in result["runs"]:
        print(f"  workers {r['workers']} calls: {r['calls']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=int(os.environ.get("BENCH_GC_BLOBS", "") or DEFAULT_BLOBS))
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)), help="comma-separated worker counts")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    result = measure(args.blobs, tuple(int(w) for w in args.workers.split(",")))
    report(result, print_table, args.json)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
