"""Replication throughput: N small images pushed into `make serve`, then one push-based replication
(manual trigger, through the /api/v2.0 registries and replication API) to CNCF distribution 2.8.

`python -m tests.bench.replication [--images 50] [--layer-kb 1024] [--json FILE]`

- The registry runs under `tests.bench.awscounted`, which logs every AWS call it makes (DynamoDB,
  Step Functions; the local object store's calls under the S3 operation each is on AWS). The calls
  counted for the replication are those from the trigger's POST on: the POST itself and every call
  on the job's threads, not the section's polling of the execution, not the runner's periodic
  threads (job schedules, registry health).
- Time: from the POST to the execution's `Succeed` as the API reports it (polled every 0.1 s), so
  Step Functions' start, every Task and the Finish state are in it.
- MB: the bytes of the blobs and manifests that crossed (every image has its own config and layer,
  so nothing is deduplicated), checked on distribution afterwards: each tag there names the digest
  pushed here.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.bench import awscounted, oci
from tests.bench.common import env_int, run_in_workdir
from tests.bench.latency import RequestsHttp
from tests.bench.servers import Distribution, OurRegistry

API = "/api/v2.0"
ENDED = {"Succeed", "Failed", "Stopped"}


def _api(ours: OurRegistry, method: str, path: str, body: Any = None) -> requests.Response:
    response = requests.request(method, ours.url + API + path, json=body, auth=ours.creds, timeout=60)
    if response.status_code >= 300:
        raise oci.BenchError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
    return response


def _created(response: requests.Response) -> int:
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _push_images(ours: OurRegistry, namespace: str, images: int, layer_kb: int) -> tuple[int, dict[str, str]]:
    """`images` one-layer images, each in a repository of its own; (bytes pushed, repo -> digest)."""
    raw = RequestsHttp(ours.url)
    total, digests = 0, {}
    for n in range(images):
        repo = f"{namespace}/img-{n:03d}"
        http = oci.Authenticated(raw, ours.creds)  # one token per repository (a token holds 32 scopes at most)
        config, layer = oci.config_blob(), oci.random_blob(layer_kb * 1024)
        oci.push_image(http, repo, "v1", config, [layer], style="single")
        body = oci.image_manifest(config, [layer])
        total += len(config.data) + len(layer.data) + len(body)
        digests[repo] = oci.manifest_digest(body)
    return total, digests


def _replicate(ours: OurRegistry, policy_id: int, log: Path) -> dict[str, Any]:
    time.sleep(2)  # what the pushes' event subscribers write lands before the counted part
    offset = log.stat().st_size
    started = time.monotonic()
    execution = _created(_api(ours, "POST", "/replication/executions", {"policy_id": policy_id}))
    while True:
        found = _api(ours, "GET", f"/replication/executions/{execution}").json()
        if found["status"] in ENDED:
            break
        if time.monotonic() - started > 1800:
            raise oci.BenchError(f"execution {execution} still {found['status']} after 30 minutes")
        time.sleep(0.1)
    seconds = time.monotonic() - started
    time.sleep(1)  # the execution's last writes (its event) after the status the API answered
    rows = awscounted.read(log, offset)
    start = f"POST {API}/replication/executions"
    counted = [r for r in rows if r["request"] == start or (r["request"] is None and _job_thread(r["thread"]))]
    trigger = sum(r["request"] == start for r in rows)
    return {"execution": found, "seconds": seconds, "calls": counted, "start_calls": trigger}


def _job_thread(name: str) -> bool:
    """Not a request thread (waitress') nor one of the runner's periodic ones."""
    return name not in awscounted.PERIODIC_THREADS and not name.startswith("waitress")


def _check_destination(dist: Distribution, digests: dict[str, str]) -> list[str]:
    wrong = []
    accept = {"Accept": oci.MANIFEST_ACCEPT}
    with requests.Session() as session:
        session.trust_env = False
        for repo, digest in digests.items():
            reply = session.head(f"{dist.url}/v2/{repo}/manifests/v1", headers=accept, timeout=60)
            if reply.status_code != 200 or reply.headers.get("Docker-Content-Digest") != digest:
                wrong.append(f"{repo}: HTTP {reply.status_code} {reply.headers.get('Docker-Content-Digest')}")
    return wrong


def measure(workdir: Path, images: int, layer_kb: int) -> dict[str, Any]:
    log = workdir / "aws-calls.jsonl"
    log.touch()
    extra = {"REGISTRY_EGRESS_ALLOW_NETWORKS": "127.0.0.0/8"}
    result: dict[str, Any] = {"images": images, "layer_kb": layer_kb, "loadavg_start": _load()}
    counted = OurRegistry(workdir, ("tests.bench.awscounted", str(log)), extra_env=extra)
    with Distribution(workdir) as dist, counted as ours:
        namespace = f"library/bench-replication-{int(time.time())}"
        pushed_at = time.monotonic()
        total, digests = _push_images(ours, namespace, images, layer_kb)
        print(f"  pushed {images} images ({total / 1e6:.1f} MB) in {time.monotonic() - pushed_at:.1f} s", flush=True)
        registry = _created(_api(ours, "POST", "/registries", {"name": "bench-distribution", "type": "docker-registry",
                                                                "url": dist.url, "insecure": True}))  # fmt: skip
        policy = {"name": "bench", "dest_registry": {"id": registry}, "dest_namespace": "",
                  "filters": [{"type": "name", "value": f"{namespace}/**"}], "trigger": {"type": "manual"},
                  "enabled": True, "override": True}  # fmt: skip
        run = _replicate(ours, _created(_api(ours, "POST", "/replication/policies", policy)), log)
        tasks = _api(ours, "GET", f"/replication/executions/{run['execution']['id']}/tasks?page_size=100").json()
        wrong = _check_destination(dist, digests)
    # Step Functions' Lambda Task invocations: moto's interpreter makes them as Lambda API calls, on
    # AWS they are the service's own, so they are counted apart from what the registry's code calls.
    calls = [r for r in run["calls"] if r["call"] != "lambda:Invoke"]
    invocations = len(run["calls"]) - len(calls)
    result.update({
        "status": run["execution"]["status"],
        "tasks": len(tasks),
        "bytes": total,
        "seconds": round(run["seconds"], 3),
        "mb_per_s": round(total / 1e6 / run["seconds"], 2),
        "aws_calls": len(calls),
        "aws_calls_per_artifact": round(len(calls) / images, 2),
        "aws_calls_of_the_trigger": run["start_calls"],
        "lambda_task_invocations": invocations,
        "breakdown": awscounted.breakdown(calls),
        "breakdown_per_artifact": {k: round(v / images, 2) for k, v in awscounted.breakdown(calls).items()},
        "destination_mismatches": wrong,
        "loadavg_end": _load(),
    })  # fmt: skip
    result["ok"] = result["status"] == "Succeed" and not wrong and len(tasks) == images
    return result


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def print_table(result: dict[str, Any]) -> None:
    r = result
    print(f"\n[replication] {r['images']} images of one {r['layer_kb']} KiB layer, push-based to distribution 2.8; "
          f"load average (1 min) {r['loadavg_start'][0]} at start, {r['loadavg_end'][0]} at end")  # fmt: skip
    print(f"    {r['status']}, {r['tasks']} tasks: {r['bytes'] / 1e6:.1f} MB in {r['seconds']:.2f} s "
          f"= {r['mb_per_s']:.2f} MB/s ({r['images'] / r['seconds']:.1f} artifacts/s)")  # fmt: skip
    per = ", ".join(f"{name} {n:g}" for name, n in result["breakdown_per_artifact"].items())
    print(f"    AWS calls: {result['aws_calls']} = {result['aws_calls_per_artifact']:g} per artifact ({per}); "
          f"the trigger's POST {result['aws_calls_of_the_trigger']}; Lambda Tasks invoked by Step Functions "
          f"{result['lambda_task_invocations']}")  # fmt: skip
    if result["destination_mismatches"]:
        print(f"    NOT ON DISTRIBUTION AS PUSHED: {'; '.join(result['destination_mismatches'][:5])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.replication", description=__doc__)
    parser.add_argument("--images", type=int, default=env_int("BENCH_REPLICATION_IMAGES", 50))
    parser.add_argument("--layer-kb", type=int, default=env_int("BENCH_REPLICATION_LAYER_KB", 1024))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    body = functools.partial(measure, images=args.images, layer_kb=args.layer_kb)
    return run_in_workdir("registry-bench-replication-", body, print_table, args.json)


if __name__ == "__main__":
    sys.exit(main())
