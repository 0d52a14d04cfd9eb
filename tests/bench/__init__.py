"""`make bench`: performance checks of the registry, run with `python -m tests.bench` from the repo root.

Sections (each also runnable alone: `python -m tests.bench transfer latency`, ...):

- `awscalls`  AWS API calls per registry operation, counted in-process (moto `mock_aws`, the app
              behind `werkzeug.test.Client`), with a flag on any Scan or ListObjects.
- `import`    import time of the Lambda handler module (`app`) in a fresh interpreter with a
              Lambda-like environment, plus the `-X importtime` top offenders.
- `transfer`  skopeo push and pull of the ~50 MB `medium` image against our server (started as
              `make serve` does) and against CNCF distribution 2.8, with the ratios ours/distribution;
              the two take turns, one run each, so that uneven load hits both alike.
- `latency`   sequential and concurrent request latency against the running server.
- `apptime`   server-side cost per request kind (thread CPU and wall time measured inside our
              runner, see `apptime.py`) over BENCH_RUNS skopeo pushes and pulls: less sensitive to
              other load on the machine than the transfer times.

The summary is printed at the end and written to `build/bench.json`. Knobs (environment):
BENCH_RUNS (transfer runs per registry, default 5), BENCH_MEDIUM_MB (default 50), BENCH_LATENCY_N
(default 200), BENCH_STRICT=1 (exit 1 when a target is missed). Only 127.0.0.1 is used; every server
started here is stopped on exit, Ctrl-C or error.
"""
