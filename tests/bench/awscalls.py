"""AWS API calls per registry operation, counted in-process.

Run as `python -m tests.bench.awscalls [--json FILE]` (the bench runs it in a subprocess so that its
environment and moto's patches stay out of the other sections). The app runs under moto's
`mock_aws()` behind `werkzeug.test.Client(ChaliceWSGI(app))`, exactly the Lambda code path minus API
Gateway; every botocore call (boto3 and PynamoDB alike go through `BaseClient._make_api_call`) is
recorded as `service:Operation` while an operation is being measured.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tests.bench import oci
from tests.bench.common import report

# Operations that must never appear on a request path (docs/architecture.md, "Data model").
FORBIDDEN = {"dynamodb:Scan", "s3:ListObjects", "s3:ListObjectsV2", "s3:ListObjectVersions"}
# Worth pointing out when they appear on a request path (cold-start or metadata calls).
NOTABLE = {"dynamodb:DescribeTable", "s3:HeadBucket", "s3:ListBuckets", "dynamodb:ListTables"}
MIB = 1024 * 1024
# `library` is the project the registry creates at start (Harbor's default), so pushes need no setup.
REPO, MOUNTED, PUSH_A, PUSH_B, COLD = (f"library/bench-{n}" for n in ("app", "mounted", "push-a", "push-b", "cold"))
# A project whose pull gate is on (`prevent_vul`), with a scanned image the gate lets through.
GATED = "bench-gated/app"
ADMIN = ("admin", secrets.token_urlsafe(18))


class CallCounter:
    """Wraps `botocore.client.BaseClient._make_api_call`; records calls only inside `measure()`.

    With `measuring_thread_only`, only calls from the thread that measures (the one a request runs
    on): what event subscribers (audit log, pull times, icons) write later on their worker thread
    is off the request path. Without it every thread counts (a GC run's Tasks run on moto's)."""

    def __init__(self, *, measuring_thread_only: bool = False) -> None:
        self._lock = threading.Lock()
        self._thread_only = measuring_thread_only
        self._active = False
        self._owner: int | None = None
        self._calls: list[str] = []

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        counter = self

        def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            counter.record(f"{client.meta.service_model.service_name}:{operation_name}")
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    def record(self, name: str) -> None:
        with self._lock:
            if self._active and (not self._thread_only or threading.get_ident() == self._owner):
                self._calls.append(name)

    @contextmanager
    def measure(self) -> Iterator[list[str]]:
        with self._lock:
            self._calls = []
            self._owner = threading.get_ident()
            self._active = True
        calls = self._calls
        try:
            yield calls
        finally:
            with self._lock:
                self._active = False


class WerkzeugHttp:
    """The `oci.Http` protocol over werkzeug's test client; records the AWS calls of each request."""

    def __init__(self, client: Any, counter: CallCounter) -> None:
        self._client = client
        self._counter = counter
        self.per_request: list[tuple[str, int, list[str], float]] | None = None

    def request(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> oci.Reply:
        path = oci.path_of(target)
        started = time.perf_counter()
        with self._counter.measure() as calls:
            response = self._client.open(path, method=method, headers=dict(headers or {}), data=body)
            data = response.get_data()
        elapsed = time.perf_counter() - started
        if self.per_request is not None:
            self.per_request.append((method, response.status_code, list(calls), elapsed))
        return oci.Reply(response.status_code, response.headers, data)


def _configure_environment() -> None:
    """What the functional tests set: fake credentials, Powertools quiet, default registry settings."""
    for key in list(os.environ):
        if key.startswith("REGISTRY_"):
            del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "REGISTRY_ADMIN_PASSWORD": ADMIN[1],
        }
    )
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(key, None)


def _create_resources() -> None:
    import boto3

    from chalicelib.config import get_settings
    from chalicelib.local.emulator import table_properties

    settings = get_settings()
    skip = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}
    properties = {k: v for k, v in table_properties().items() if k not in skip}
    boto3.client("dynamodb", region_name=settings.aws_region).create_table(TableName=settings.table_name, **properties)
    boto3.client("s3", region_name=settings.aws_region).create_bucket(Bucket=settings.bucket_name)


Scenario = Callable[[oci.Http], list[oci.Reply]]


def _scenarios(http: oci.Http) -> list[tuple[str, str, Scenario]]:
    """(key, label, run) for each measured operation; the fixture image is pushed first."""
    repo = REPO
    config, layers = oci.config_blob(), [oci.random_blob(32 * 1024), oci.random_blob(64 * 1024)]
    oci.push_image(http, repo, "v1", config, layers, style="single")
    body = oci.image_manifest(config, layers)
    digest = oci.manifest_digest(body)
    layer = layers[0]
    accept = {"Accept": oci.MANIFEST_ACCEPT}

    def one(method: str, path: str, what: str, status: int, headers: dict[str, str] | None = None) -> Scenario:
        return lambda h: [oci.expect(h.request(method, path, headers), what, status)]

    def upload(flow: Callable[..., list[oci.Reply]], size: int, *extra: int) -> Scenario:
        return lambda h: flow(h, repo, oci.random_blob(size), *extra)

    second = oci.image_manifest(config, layers, {"bench.manifest": "v2"})
    # Above REGISTRY_INLINE_MANIFEST_MAX_BYTES (300 kB by default) a manifest body lives in S3.
    large = oci.image_manifest(config, layers, {"bench.padding": "x" * 400_000})
    absent = oci.random_blob(16).digest
    _gated_image(http, config, layers)
    # Manifest pulls: GET and HEAD, by tag and by digest, without and with the pull gate.
    pulls = [
        (
            f"manifest_{method.lower()}_{by}{'_gated' if gated else ''}",
            f"manifest {method} by {by}{', pull gate on (scanned, allowed)' if gated else ''}",
            one(method, f"/v2/{GATED if gated else repo}/manifests/{ref}", method, 200, accept),
        )
        for gated in (False, True)
        for method in ("GET", "HEAD")
        for by, ref in (("tag", "v1"), ("digest", digest))
    ]
    return [
        *pulls,
        (
            "security_summary",
            "security hub summary, with dangerous CVEs and artifacts",
            _management("/api/v2.0/security/summary?with_dangerous_cve=true&with_dangerous_artifact=true"),
        ),
        (
            "security_vul",
            "security hub vulnerability list, q=severity=Low",
            _management("/api/v2.0/security/vul?q=severity%3DLow"),
        ),
        ("blob_head", "blob HEAD", one("HEAD", f"/v2/{repo}/blobs/{layer.digest}", "HEAD", 200)),
        ("blob_head_miss", "blob HEAD (absent, 404)", one("HEAD", f"/v2/{repo}/blobs/{absent}", "HEAD", 404)),
        ("blob_get", "blob GET (307 redirect)", one("GET", f"/v2/{repo}/blobs/{layer.digest}", "GET", 307)),
        ("upload_monolithic", "blob upload monolithic POST+PUT (64 KiB)", upload(oci.upload_post_put, 64 * 1024)),
        ("upload_single_post", "blob upload single POST ?digest= (64 KiB)", upload(oci.upload_single_post, 64 * 1024)),
        ("upload_patch", "blob upload POST+PATCH+PUT (skopeo, 64 KiB)", upload(oci.upload_patch_put, 64 * 1024)),
        ("upload_chunked_3", "blob upload chunked, 3 x 256 KiB", upload(oci.upload_chunked, 768 * 1024, 3)),
        (
            "upload_chunked_3_large",
            "blob upload chunked, 3 x 6 MiB (multipart)",
            upload(oci.upload_chunked, 18 * MIB, 3),
        ),
        ("blob_mount", "cross-repo mount POST ?mount=&from=", lambda h: oci.mount(h, MOUNTED, layer, repo)),
        ("manifest_put", "manifest PUT by tag", lambda h: [oci.put_manifest(h, repo, "v2", second)]),
        ("tags_list", "tags list", one("GET", f"/v2/{repo}/tags/list", "tags", 200)),
        (
            "manifest_put_large",
            "manifest PUT by tag, 400 kB (body in S3)",
            lambda h: [oci.put_manifest(h, repo, "big", large)],
        ),
        (
            "manifest_get_large",
            "manifest GET by tag, 400 kB (body in S3)",
            one("GET", f"/v2/{repo}/manifests/big", "GET", 200, accept),
        ),
        (
            "manifest_head_large",
            "manifest HEAD by tag, 400 kB (body in S3)",
            one("HEAD", f"/v2/{repo}/manifests/big", "HEAD", 200, accept),
        ),
        ("image_push", "image push: config + 2 layers + manifest (skopeo-style)", _push(PUSH_A, "patch")),
        (
            "image_push_monolithic",
            "image push: config + 2 layers + manifest (oras-style)",
            _push(PUSH_B, "monolithic"),
        ),
    ]


def _management(path: str) -> Scenario:
    """A GET on the management API with Basic credentials (it refuses registry tokens)."""
    import base64

    basic = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()

    def run(h: oci.Http) -> list[oci.Reply]:
        inner = getattr(h, "inner", h)
        return [oci.expect(inner.request("GET", path, {"Authorization": f"Basic {basic}"}), "management GET", 200)]

    return run


def _gated_project(raw: WerkzeugHttp) -> None:
    """The gated project (created through the management API with Basic credentials)."""
    import base64
    import json

    basic = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    body = {"project_name": GATED.split("/", maxsplit=1)[0], "metadata": {"prevent_vul": "true", "severity": "high"}}
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
    oci.expect(raw.request("POST", "/api/v2.0/projects", headers, json.dumps(body).encode()), "project", 201)


def _gated_image(http: oci.Http, config: oci.Blob, layers: list[oci.Blob]) -> None:
    """Push the fixture image into the gated project, register a scanner and record a scan of it
    with one Low finding (below the project's `high` threshold), as a finished scan does."""
    from chalicelib.config import get_settings
    from chalicelib.core import scans
    from chalicelib.core.scanners import ScannerRegistration
    from chalicelib.stores.scanners import ScannerStore
    from chalicelib.stores.scans import ScanStore
    from chalicelib.wiring import object_store

    oci.push_image(http, GATED, "v1", config, layers, style="single")
    digest = oci.manifest_digest(oci.image_manifest(config, layers))
    ScannerStore().save([ScannerRegistration(uuid="bench", name="bench", url="http://scanner.invalid",
                                             is_default=True)], 0)  # fmt: skip
    base = scans.ReportSummary(mime_type=scans.VULNERABILITY_REPORT_GENERIC, report_id="bench", digest=digest,
                               registration="bench", scan_status="Pending", start_time=1)  # fmt: skip
    finding = scans.Finding("CVE-2024-0001", "openssl", "3.0.0", "", "Low")
    summary = scans.completed(base, [finding], scans.ScannerInfo("bench", "bench", "1"), 2)
    ScanStore(object_store(get_settings())).save_summary(GATED, digest, summary)
    # What the scan's store step tells the security hub (its summary and list read these).
    document = {"vulnerabilities": [{"id": "CVE-2024-0001", "package": "openssl", "version": "3.0.0",
                                     "severity": "Low", "preferred_cvss": {"score_v3": 3.1}}]}  # fmt: skip
    from chalicelib.wiring import services

    services().securityhub.report_stored("bench", GATED, digest, project_id=2, summary=summary, document=document)


def _push(repo: str, style: str) -> Scenario:
    def run(http: oci.Http) -> list[oci.Reply]:
        config, layers = oci.config_blob(), [oci.random_blob(48 * 1024), oci.random_blob(96 * 1024)]
        return oci.push_image(http, repo, "latest", config, layers, style=style)

    return run


@contextmanager
def in_process_app(counter: CallCounter) -> Iterator[Any]:
    """The app behind werkzeug's test client on a fresh moto world, with `counter` installed.

    moto runs with the local runner's patches (`chalicelib/local/moto_patches.py`), as under `make
    serve`: unpatched moto is not thread-safe, and an event subscriber's transaction on its worker
    thread could break a request's (a 500 in the middle of a measured push). The patches sit below
    botocore, so the calls counted are the same."""
    _configure_environment()
    from moto import mock_aws

    from chalicelib.local import moto_patches

    moto_patches.apply()

    with mock_aws():
        counter.install()
        _create_resources()
        from chalicelib import wiring

        wiring.reset()
        from werkzeug.test import Client

        from app import app
        from chalicelib.local.wsgi import ChaliceWSGI

        yield Client(ChaliceWSGI(app))


def measure() -> dict[str, Any]:
    counter = CallCounter(measuring_thread_only=True)
    with in_process_app(counter) as client:
        from chalicelib import wiring

        raw = WerkzeugHttp(client, counter)
        http = oci.Authenticated(raw, ADMIN)
        rows: list[dict[str, Any]] = []
        errors: list[str] = []

        def measured(key: str, label: str, run: Callable[[], object]) -> None:
            raw.per_request = []
            try:
                run()
            except oci.BenchError as exc:
                errors.append(f"{label}: {exc}")
            rows.append(_row(key, label, raw.per_request))
            raw.per_request = None

        # The very first request builds the clients and bootstraps (admin user, `library` project).
        measured(
            "cold_first_request", "first request after start: GET /v2/ anonymous", lambda: raw.request("GET", "/v2/")
        )
        # A new Lambda container on an existing table: what every later cold start pays.
        wiring.reset()
        measured(
            "cold_restart", "first request of a new container (bootstrap done)", lambda: raw.request("GET", "/v2/")
        )
        _gated_project(raw)
        scopes = [oci.pull_push_scope(r) for r in (REPO, MOUNTED, PUSH_A, PUSH_B, COLD, GATED)]
        measured("token_first", "token GET, Basic admin, first (password hashed)", lambda: http.login(scopes))
        measured("token_again", "token GET, Basic admin, again (cached check)", lambda: http.login(scopes))
        measured("v2_bearer", "GET /v2/ with the bearer token", lambda: http.request("GET", "/v2/"))
        scenarios = _scenarios(http)  # pushes the fixture image, not measured
        for key, label, scenario in scenarios:
            measured(key, label, lambda scenario=scenario: scenario(http))
    forbidden = sorted({c for row in rows for c in row["breakdown"] if c in FORBIDDEN})
    return {"operations": rows, "forbidden_calls": forbidden, "errors": errors}


def _row(key: str, label: str, requests: list[tuple[str, int, list[str], float]]) -> dict[str, Any]:
    calls = [c for _, _, cs, _ in requests for c in cs]
    return {
        "key": key,
        "operation": label,
        "http_requests": [f"{method} {status}" for method, status, _, _ in requests],
        "calls_per_request": [len(cs) for _, _, cs, _ in requests],
        "in_process_ms": round(sum(t for *_, t in requests) * 1000, 2),
        "total_calls": len(calls),
        "breakdown": dict(sorted(Counter(calls).items())),
        "forbidden": sorted({c for c in calls if c in FORBIDDEN}),
        "notable": sorted({c for c in calls if c in NOTABLE}),
    }


def _short(name: str) -> str:
    service, _, operation = name.partition(":")
    return f"{'ddb' if service == 'dynamodb' else service}:{operation}"


def print_table(result: dict[str, Any]) -> None:
    rows = result["operations"]
    width = max(len(r["operation"]) for r in rows)
    print(f"{'operation':<{width}}  {'HTTP':>4}  {'ms':>7}  {'calls':>5}  breakdown [calls per HTTP request]")
    print("-" * (width + 80))
    for row in rows:
        breakdown = ", ".join(f"{_short(k)} x{v}" for k, v in row["breakdown"].items()) or "-"
        flags = ""
        if row["forbidden"]:
            flags += "  <<< FORBIDDEN: " + ", ".join(row["forbidden"])
        if row["notable"]:
            flags += "  (notable: " + ", ".join(row["notable"]) + ")"
        per = "/".join(str(n) for n in row["calls_per_request"])
        head = f"{row['operation']:<{width}}  {len(row['http_requests']):>4}  {row['in_process_ms']:>7.1f}"
        head += f"  {row['total_calls']:>5}"
        print(f"{head}  {breakdown}  [{per}]{flags}")
    if result["forbidden_calls"]:
        print(f"\nFLAG: Scan/ListObjects on a request path: {', '.join(result['forbidden_calls'])}")
    else:
        print("\nno Scan or ListObjects call on any measured path")
    for error in result["errors"]:
        print(f"ERROR {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    result = measure()
    report(result, print_table, args.json)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
