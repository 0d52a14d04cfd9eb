"""GC throughput: mark and sweep of many garbage blobs on moto, with workers 1 and 4.

Run as `python -m tests.bench.gc [--blobs N] [--json FILE]` (the bench runs it in a subprocess). The
garbage is created directly, not pushed: N blob rows (old, held by no project) and N small objects
under `blobs/`, plus as many rows that are not garbage (held blobs), so the mark phase's Scan reads
a table twice the size of what it collects. The run is the real one: moto's Step Functions executes
`infra/statemachines/gc.asl.json`, its Tasks dispatched in-process to the GC handlers, as in
`make serve`. Every botocore call is counted (`BaseClient._make_api_call`) while a run is measured.

Everything runs in one Python process on moto (GIL-bound, in-memory), so the absolute rates say
little about AWS, where each call costs milliseconds of network but shards run in separate Lambdas;
the calls per collected blob carry over.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.bench.awscalls import CallCounter, _configure_environment, _create_resources

WORKERS = (1, 4)


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

    def pause(phase: str, job_id: int) -> None:
        marks.setdefault(phase, time.monotonic())

    services().gc.pause = pause
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
    assert job["job_status"] == "Success", job
    collected = int(result["purged_blobs"])
    mark_s = marks.get("sweep", ended) - marks["mark"]
    sweep_s = marks.get("finish", ended) - marks.get("sweep", ended)
    # Step Functions and Lambda calls are the engine's (one per Task), not per blob.
    by_kind = Counter(c for c in calls if not c.startswith(("stepfunctions:", "lambda:")))
    return {
        "workers": workers,
        "collected": collected,
        "total_s": round(ended - started, 2),
        "mark_s": round(mark_s, 2),
        "sweep_s": round(sweep_s, 2),
        "blobs_per_s": round(collected / (ended - started), 1) if collected else None,
        "mark_blobs_per_s": round(collected / mark_s, 1) if collected and mark_s else None,
        "sweep_blobs_per_s": round(collected / sweep_s, 1) if collected and sweep_s else None,
        "aws_calls": sum(by_kind.values()),
        "aws_calls_per_blob": round(sum(by_kind.values()) / collected, 2) if collected else None,
        "calls": dict(by_kind.most_common()),
    }


def _wait_for_executions() -> None:
    import boto3

    client = boto3.client("stepfunctions", region_name="us-east-1")
    for machine in client.list_state_machines()["stateMachines"]:
        arn = machine["stateMachineArn"]
        while client.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            time.sleep(0.05)


def measure(blobs: int) -> dict[str, Any]:
    """One fresh moto world per worker count, so both runs see the same table."""
    _configure_environment()
    os.environ["REGISTRY_TABLE_NAME"], os.environ["REGISTRY_BUCKET_NAME"] = "bench-gc", "bench-gc"
    from chalicelib.local import moto_patches

    counter = CallCounter()
    counter.install()
    moto_patches.apply()
    runs = [_measure_one(blobs, workers, counter) for workers in WORKERS]
    return {"blobs": blobs, "runs": runs, "errors": [r for r in runs if r["collected"] != blobs]}


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
        started = time.monotonic()
        created = _populate(blobs, f"w{workers}")
        print(f"created {created} garbage + {created} live blobs in {time.monotonic() - started:.1f}s", flush=True)
        run = _run(http, counter, workers)
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
    print(f"{'workers':>8}{'total s':>9}{'mark s':>8}{'sweep s':>9}{'blobs/s':>9}{'sweep/s':>9}{'calls/blob':>11}")
    for r in result["runs"]:
        print(f"{r['workers']:>8}{r['total_s']:>9}{r['mark_s']:>8}{r['sweep_s']:>9}{r['blobs_per_s']!s:>9}"
              f"{r['sweep_blobs_per_s']!s:>9}{r['aws_calls_per_blob']!s:>11}")  # fmt: skip
    for r in result["runs"]:
        print(f"  workers {r['workers']} calls: {r['calls']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=int(os.environ.get("BENCH_GC_BLOBS", "100000")))
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    result = measure(args.blobs)
    print_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
