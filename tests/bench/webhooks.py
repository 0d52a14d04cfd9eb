"""Webhook delivery latency of `make serve`: durable (the webhook state machine on moto's Step
Functions) against in-process (`REGISTRY_WEBHOOK_DELIVERY=threads`).

Run as `python -m tests.bench.webhooks [--pushes N] [--json FILE]`. For each mode it starts a
registry like `make serve` (fresh data dir), creates a PUSH_ARTIFACT policy aimed at a local HTTP
receiver, pushes one tiny image per tag, one after the other, and measures from the moment the
push starts (blob upload, manifest PUT) to the moment the receiver has the POST, and from the
moment the push returned (the event is published after the manifest write, before the answer).
The first push of each mode is a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.support import RegistryServer
from tests.e2e.test_webhook_restart import _push_tiny_image, _wait
from tests.functional.jobs.test_webhooks import Receiver

MODES = ("stepfunctions", "threads")


def _measure(mode: str, pushes: int, workdir: Path) -> dict[str, Any]:
    receiver = Receiver()
    server = RegistryServer(
        workdir / mode,
        workdir / f"{mode}.log",
        REGISTRY_WEBHOOK_DELIVERY=mode,
        REGISTRY_EGRESS_ALLOW_NETWORKS="127.0.0.1/32",
    ).start()
    try:
        policy = {"name": "bench", "enabled": True, "event_types": ["PUSH_ARTIFACT"],
                  "targets": [{"type": "http", "address": receiver.url}]}  # fmt: skip
        created = server.http("POST", "/api/v2.0/projects/library/webhook/policies", json=policy)
        assert created.status_code == 201, created.text
        latencies, puts, after = [], [], []
        for n in range(pushes + 1):
            seen = len(receiver.requests)
            started = time.monotonic()
            _push_tiny_image(server, "library/bench", f"t{n}")
            put_done = time.monotonic()
            _wait("the webhook", lambda seen=seen: len(receiver.requests) > seen, timeout=60)
            if n:  # the first push warms the clients and moto's interpreter
                latencies.append(receiver.requests[seen]["at"] - started)
                puts.append(put_done - started)
                after.append(receiver.requests[seen]["at"] - put_done)
        return {
            "pushes": pushes,
            "event_to_receiver_ms": _stats(latencies),
            "push_requests_ms": _stats(puts),
            "after_push_returned_ms": _stats(after),
        }
    finally:
        server.stop()
        receiver.close()


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values)
    return {"median": round(statistics.median(ordered), 1), "p90": round(ordered[int(len(ordered) * 0.9) - 1], 1),
            "max": round(ordered[-1], 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        results = {mode: _measure(mode, args.pushes, Path(tmp)) for mode in MODES}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
