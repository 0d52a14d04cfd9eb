"""Server-side cost per request: `make serve`'s runner with every request timed inside the process.

Wall-clock push times move with whatever else the machine runs; the CPU a request costs the server
moves much less. `python -m tests.bench.apptime LOG` runs `python -m chalicelib.local` unchanged
except that the WSGI adapter records, per request, its kind (method and route), body size, wall time
and the CPU time of the thread that served it (`time.thread_time`: GIL waits are not counted).
Waitress reads the body before the app is called, so that part is outside these numbers; it is the
same for every variant of the app. The log is one JSON object per line, flushed per request.

`summarise(LOG)` groups the lines by kind for the `apptime` section of the bench.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Path shapes -> request kinds (the name part of /v2/<name>/... varies per run).
_KINDS = (
    (re.compile(r"^/v2/.+/blobs/uploads/[^/]+$"), "upload"),
    (re.compile(r"^/v2/.+/blobs/uploads/?$"), "uploads"),
    (re.compile(r"^/v2/.+/blobs/[^/]+$"), "blob"),
    (re.compile(r"^/v2/.+/manifests/[^/]+$"), "manifest"),
    (re.compile(r"^/service/token$"), "token"),
    (re.compile(r"^/v2/?$"), "base"),
)


def kind_of(method: str, path: str) -> str:
    for pattern, name in _KINDS:
        if pattern.match(path):
            return f"{method} {name}"
    return f"{method} other"


def _install(log_path: Path) -> None:
    from chalicelib.local.wsgi import ChaliceWSGI

    original = ChaliceWSGI.__call__
    lock = threading.Lock()
    log = log_path.open("a", encoding="utf-8")

    def timed(self: ChaliceWSGI, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        wall, cpu = time.perf_counter(), time.thread_time()
        status: list[str] = []

        def recording_start_response(line: str, headers: Any, *rest: Any) -> Any:
            status.append(line.split(" ", 1)[0])
            return start_response(line, headers, *rest)

        result = original(self, environ, recording_start_response)
        row = {
            "kind": kind_of(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")),
            "status": status[0] if status else "?",
            "bytes": int(environ.get("CONTENT_LENGTH") or 0),
            "wall_ms": round((time.perf_counter() - wall) * 1000, 3),
            "cpu_ms": round((time.thread_time() - cpu) * 1000, 3),
            "start": round(time.time() - (time.perf_counter() - wall), 4),
        }
        with lock:
            log.write(json.dumps(row) + "\n")
            log.flush()
        return result

    ChaliceWSGI.__call__ = timed  # type: ignore[method-assign]


def summarise(log_path: Path) -> list[dict[str, Any]]:
    """Per request kind: count, median/total CPU and wall ms, MB moved, CPU ms per MB of body."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in log_path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            groups[row["kind"]].append(row)
    out = []
    for kind, rows in sorted(groups.items(), key=lambda item: -sum(r["cpu_ms"] for r in item[1])):
        megabytes = sum(r["bytes"] for r in rows) / 1e6
        cpu_total = sum(r["cpu_ms"] for r in rows)
        out.append(
            {
                "kind": kind,
                "n": len(rows),
                "cpu_median_ms": round(statistics.median(r["cpu_ms"] for r in rows), 2),
                "wall_median_ms": round(statistics.median(r["wall_ms"] for r in rows), 2),
                "cpu_total_ms": round(cpu_total, 1),
                "mb": round(megabytes, 1),
                "cpu_ms_per_mb": round(cpu_total / megabytes, 2) if megabytes >= 1 else None,
            }
        )
    return out


def print_table(rows: list[dict[str, Any]], runs: int) -> None:
    print(f"    {'kind':<22}{'n':>5}{'cpu med ms':>12}{'wall med ms':>13}{'cpu/run ms':>12}{'MB':>8}{'cpu ms/MB':>11}")
    for r in rows:
        per_mb = "-" if r["cpu_ms_per_mb"] is None else f"{r['cpu_ms_per_mb']:.2f}"
        print(
            f"    {r['kind']:<22}{r['n']:>5}{r['cpu_median_ms']:>12.2f}{r['wall_median_ms']:>13.2f}"
            f"{r['cpu_total_ms'] / max(runs, 1):>12.1f}{r['mb']:>8.1f}{per_mb:>11}"
        )


def main() -> int:
    _install(Path(sys.argv[1]))
    from chalicelib.local.__main__ import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
