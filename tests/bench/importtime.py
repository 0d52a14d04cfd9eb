"""Cold-start cost of the Lambda handler module: `import app` in fresh interpreters.

The child gets the environment a Lambda function of this app would have (runtime variables,
the stage's `environment_variables` from `.chalice/config.json`, X-Ray active as `"xray": true`
asks) and nothing from the developer's shell, so Powertools' Tracer is enabled as on AWS and no
test-only module (moto) can leak in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from typing import Any

from tests.bench.common import PYTHON, REPO_ROOT, median

TARGET_S = 0.3  # the cold-start budget the Lambda handler is held to
_PROBE = """
import json, sys, time
c0, t0 = time.process_time(), time.perf_counter()
import app
t1, c1 = time.perf_counter(), time.process_time()
heavy = ["moto", "werkzeug", "flask", "waitress", "aws_xray_sdk", "boto3", "botocore", "pynamodb", "pydantic",
         "cryptography"]
loaded = [m for m in heavy if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "cpu_s": c1 - c0, "modules": len(sys.modules), "loaded": loaded}))
"""
_IMPORTTIME_RE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def lambda_environment(stage: str = "prod") -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(REPO_ROOT),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "app.app",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": f"registry-{stage}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/registry-{stage}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE00",
        "AWS_SECRET_ACCESS_KEY": "example-not-a-secret",
        "AWS_SESSION_TOKEN": "example-not-a-token",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
    }
    try:
        config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
        env.update(config.get("environment_variables", {}))
        env.update(config.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    except (OSError, ValueError):
        pass
    return env


def _probe(env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [PYTHON, "-c", _PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"import app failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def importtime_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = []
    for line in proc.stderr.splitlines():
        match = _IMPORTTIME_RE.match(line)
        if match:
            rows.append(
                {
                    "module": match[4],
                    "self_ms": int(match[1]) / 1000,
                    "cumulative_ms": int(match[2]) / 1000,
                    "depth": len(match[3]) // 2,
                }
            )
    rows.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return rows


def third_party_top(rows: list[dict[str, Any]], top: int = 10) -> list[dict[str, Any]]:
    """The heaviest imports that are not the app's own modules (the ones a change of dependency moves)."""
    own = ("app", "chalicelib")
    return [r for r in rows if r["module"].split(".")[0] not in own][:top]


def measure(runs: int = 5) -> dict[str, Any]:
    env = lambda_environment()
    _probe(env)  # compile bytecode once so every timed run sees the same (warm) .pyc cache
    samples, cpu = [], []
    for i in range(runs):
        result = _probe(env)
        samples.append(result["import_s"])
        cpu.append(result["cpu_s"])
        print(
            f"run {i + 1}: import app {result['import_s'] * 1000:.1f} ms wall, {result['cpu_s'] * 1000:.1f} ms CPU "
            f"({result['modules']} modules)",
            flush=True,
        )
    # A Lambda zip built by `chalice package` carries no .pyc and /var/task is read-only: every cold
    # start compiles from source. Simulate it with an empty, unwritable-by-design pycache prefix.
    cold = []
    with tempfile.TemporaryDirectory(prefix="bench-nopyc-") as empty:
        nopyc = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        for _ in range(3):
            cold.append(_probe(nopyc)["import_s"])
    rows = importtime_rows(env)
    return {
        "runs": samples,
        "median_s": median(samples),
        "cpu_runs": cpu,
        "cpu_median_s": median(cpu),
        "target_s": TARGET_S,
        "meets_target": median(samples) < TARGET_S,
        "no_bytecode_median_s": median(cold),
        "modules_loaded": result["modules"],
        "heavy_modules_loaded": result["loaded"],
        "moto_imported": "moto" in result["loaded"],
        "importtime_top10": rows[:10],
        "importtime_top10_third_party": third_party_top(rows),
        "environment": {k: v for k, v in env.items() if not k.startswith("AWS_SECRET") and k != "AWS_SESSION_TOKEN"},
    }


def print_report(result: dict[str, Any]) -> None:
    verdict = "OK" if result["meets_target"] else "OVER TARGET"
    print(
        f"median import app: {result['median_s'] * 1000:.1f} ms wall over {len(result['runs'])} runs "
        f"(target < {result['target_s'] * 1000:.0f} ms: {verdict}); CPU {result['cpu_median_s'] * 1000:.1f} ms"
    )
    print(
        f"without .pyc (Lambda zip compiles from source): {result['no_bytecode_median_s'] * 1000:.1f} ms (median of 3)"
    )
    heavy = ", ".join(result["heavy_modules_loaded"])
    print(f"modules after import: {result['modules_loaded']}; heavy packages loaded: {heavy}")
    if result["moto_imported"]:
        print("FLAG: moto is imported by the Lambda handler module")
    print("\n-X importtime, top 10 by cumulative time:")
    print(f"  {'cumulative':>10}  {'self':>8}  module")
    for row in result["importtime_top10"]:
        print(f"  {row['cumulative_ms']:>8.1f}ms  {row['self_ms']:>6.1f}ms  {'  ' * row['depth']}{row['module']}")
    print("\n-X importtime, top 10 outside app/chalicelib (cumulative; nested rows overlap):")
    for row in result["importtime_top10_third_party"]:
        print(f"  {row['cumulative_ms']:>8.1f}ms  {row['self_ms']:>6.1f}ms  {row['module']} (depth {row['depth']})")


if __name__ == "__main__":
    report = measure(int(os.environ.get("BENCH_IMPORT_RUNS", "5")))
    print_report(report)
