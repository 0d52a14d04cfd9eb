"""Request latency against a running registry, with `requests` Sessions (keep-alive).

A small image is pushed first; then N sequential manifest GETs by tag, N blob HEADs and N blob GETs
that do not follow the redirect, and 2N manifest GETs from 8 threads (one Session each). A few
warm-up requests of each kind are not counted. With credentials, one bearer token is fetched first
(as a client would) and sent with every request, so the token check is part of what is measured.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.bench import oci
from tests.bench.common import median, percentile

WARMUP = 10


class RequestsHttp:
    """The `oci.Http` protocol over a requests Session bound to one base URL."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy for 127.0.0.1

    def request(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> oci.Reply:
        url = target if target.startswith("http") else self.base + target
        response = self.session.request(
            method, url, headers=dict(headers or {}), data=body or None, allow_redirects=False, timeout=60
        )
        return oci.Reply(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self.session.close()


def _stats(samples: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "median_ms": median(samples) * 1000,
        "p95_ms": percentile(samples, 95) * 1000,
        "min_ms": min(samples) * 1000,
        "max_ms": max(samples) * 1000,
    }


def _timed(http: oci.Http, method: str, path: str, headers: dict[str, str], status: int, n: int) -> list[float]:
    samples = []
    for i in range(WARMUP + n):
        started = time.perf_counter()
        reply = http.request(method, path, headers)
        elapsed = time.perf_counter() - started
        oci.expect(reply, f"{method} {path}", status)
        if i >= WARMUP:
            samples.append(elapsed)
    return samples


def measure(
    base: str, n: int = 200, concurrency: int = 8, blob_get_status: int = 307, creds: tuple[str, str] | None = None
) -> dict[str, Any]:
    raw = RequestsHttp(base)
    http = oci.Authenticated(raw, creds)
    try:
        # `library` exists from the start on ours (Harbor's default project); distribution takes any name.
        repo = f"library/bench-latency-{time.time_ns()}"
        http.login([oci.pull_push_scope(repo)])
        config, layers = oci.config_blob(), [oci.random_blob(4096)]
        oci.push_image(http, repo, "latest", config, layers, style="patch")
        manifest_path = f"/v2/{repo}/manifests/latest"
        blob_path = f"/v2/{repo}/blobs/{layers[0].digest}"
        accept = {"Accept": oci.MANIFEST_ACCEPT}
        result: dict[str, Any] = {
            "manifest_get": _stats(_timed(http, "GET", manifest_path, accept, 200, n)),
            "blob_head": _stats(_timed(http, "HEAD", blob_path, {}, 200, n)),
            "blob_get_no_redirect": _stats(_timed(http, "GET", blob_path, {}, blob_get_status, n)),
        }
        if creds is not None:
            # A token request as docker/skopeo make it: Basic credentials, one repository scope.
            basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            token_path = f"/service/token?service=harbor-registry&scope=repository:{repo}:pull,push"
            result["token_get"] = _stats(_timed(raw, "GET", token_path, {"Authorization": basic}, 200, n))
    finally:
        raw.close()

    local = threading.local()
    sessions: list[RequestsHttp] = []
    lock = threading.Lock()

    def one(_: int) -> float:
        client = getattr(local, "http", None)
        if client is None:
            session = RequestsHttp(base)
            client = local.http = oci.Authenticated(session, creds)
            client.authorization, client.scopes = http.authorization, list(http.scopes)
            with lock:
                sessions.append(session)
        started = time.perf_counter()
        reply = client.request("GET", manifest_path, accept)
        elapsed = time.perf_counter() - started
        oci.expect(reply, "concurrent manifest GET", 200)
        return elapsed

    total = 2 * n
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(concurrency * 2)))  # warm-up: one connection per thread
            started = time.perf_counter()
            samples = list(pool.map(one, range(total)))
            wall = time.perf_counter() - started
    finally:
        for session in sessions:
            session.close()
    concurrent = _stats(samples)
    concurrent.update({"concurrency": concurrency, "wall_s": wall, "throughput_rps": total / wall})
    result["manifest_get_concurrent"] = concurrent
    return result


LABELS = {
    "manifest_get": "manifest GET by tag (sequential)",
    "blob_head": "blob HEAD (sequential)",
    "blob_get_no_redirect": "blob GET, redirect not followed (sequential)",
    "manifest_get_concurrent": "manifest GET by tag, concurrency 8",
    "token_get": "token GET, Basic credentials (sequential)",
}


def print_report(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    header = "".join(f"  {name + ' median':>20} {name + ' p95':>17}" for name in names)
    print(f"{'request':<46}{'n':>5}{header}")
    for key, label in LABELS.items():
        measured = [r[key] for r in results.values() if key in r]
        if not measured:
            continue
        cells = "".join(
            f"  {r[key]['median_ms']:>17.2f} ms {r[key]['p95_ms']:>14.2f} ms" if key in r else f"  {'-':>20} {'-':>17}"
            for r in results.values()
        )
        print(f"{label:<46}{measured[0]['n']:>5}{cells}")
    for name, result in results.items():
        c = result["manifest_get_concurrent"]
        print(f"{name}: {c['n']} concurrent manifest GETs in {c['wall_s']:.2f}s = {c['throughput_rps']:.0f} req/s")


# Tagged manifest PUTs under immutable rules: the cost of matching the rules on the push path.

# Patterns a backtracking matcher took seconds on against a long tag of `a`s; none matches it, so
# every rule is evaluated on every PUT and the tag stays mutable.
ADVERSARIAL_PATTERNS = ["*a*a*a*a*a*b", "*a*a*a*a*a*a*a*a*c", "{*,?*}{*,?*}{*,?*}*a*a*d", "**/*a*a*a*e"]
RULES_TAG = "a" * 128
RULES_IN_PROCESS = 50


def _rule(pattern: str) -> dict[str, Any]:
    return {
        "action": "immutable",
        "template": "immutable_template",
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": pattern}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    }


def _project_with_rules(http: oci.Http, name: str, rules: int) -> None:
    body = json.dumps({"project_name": name, "metadata": {"public": "false"}}).encode()
    oci.expect(http.request("POST", "/api/v2.0/projects", _JSON, body), "create project", 201)
    for index in range(rules):
        pattern = f"{ADVERSARIAL_PATTERNS[index % len(ADVERSARIAL_PATTERNS)]}{index}"
        rule = json.dumps(_rule(pattern)).encode()
        oci.expect(http.request("POST", f"/api/v2.0/projects/{name}/immutabletagrules", _JSON, rule), "add rule", 201)


_JSON = {"Content-Type": "application/json"}


def _tag_moves(http: oci.Http, repo: str, n: int) -> list[float]:
    """N PUTs of a tag that moves between two manifests each time (so the rules are checked)."""
    config, other, layers = oci.config_blob(), oci.config_blob(), [oci.random_blob(4096)]
    oci.push_image(http, repo, RULES_TAG, config, layers)
    oci.push_image(http, repo, "other", other, layers)
    bodies = [oci.image_manifest(other, layers), oci.image_manifest(config, layers)]
    samples = []
    for i in range(WARMUP + n):
        started = time.perf_counter()
        oci.put_manifest(http, repo, RULES_TAG, bodies[i % 2])
        elapsed = time.perf_counter() - started
        if i >= WARMUP:
            samples.append(elapsed)
    return samples


def measure_rules(base: str, creds: tuple[str, str], n: int = 100) -> dict[str, Any]:
    """Manifest PUTs by a 128-character tag into a project without rules and into one holding the
    most immutable rules a project may have (adversarial patterns), alternating so that both see
    the same server state; plus the in-process cost of matching RULES_IN_PROCESS such rules."""
    from chalicelib.core.selectors import Candidate, Selector, select_all
    from chalicelib.services.immutability import MAX_RULES

    basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    raw = RequestsHttp(base)
    api = _FixedAuth(raw, basic)
    stamp = time.time_ns()
    plain, ruled = f"bench-norules-{stamp}", f"bench-rules-{stamp}"
    try:
        _project_with_rules(api, plain, 0)
        _project_with_rules(api, ruled, MAX_RULES)
        http = oci.Authenticated(raw, creds)
        http.login([oci.pull_push_scope(f"{plain}/app"), oci.pull_push_scope(f"{ruled}/app")])
        result = {
            "manifest_put_no_rules": _stats(_tag_moves(http, f"{plain}/app", n)),
            "manifest_put_max_rules": _stats(_tag_moves(http, f"{ruled}/app", n)),
            "rules_per_project": MAX_RULES,
        }
    finally:
        raw.close()
    rules = [
        [
            Selector("doublestar", "matches", f"{ADVERSARIAL_PATTERNS[i % len(ADVERSARIAL_PATTERNS)]}{i}"),
            Selector("doublestar", "repoMatches", "**"),
        ]
        for i in range(RULES_IN_PROCESS)
    ]
    candidate = Candidate("app", tags=(RULES_TAG,))
    rounds = 20
    # CPU time (what holds the GIL), first match of each pattern and then warm, as on a busy server.
    started = time.process_time()
    assert not any(select_all(rule, candidate) for rule in rules)
    result["match_50_rules_first_cpu_ms"] = (time.process_time() - started) * 1000
    started = time.process_time()
    for _ in range(rounds):
        assert not any(select_all(rule, candidate) for rule in rules)
    result["match_50_rules_cpu_ms"] = (time.process_time() - started) / rounds * 1000
    return result


class _FixedAuth:
    """The `oci.Http` protocol with one Authorization header on every request (management API)."""

    def __init__(self, inner: RequestsHttp, authorization: str) -> None:
        self.inner = inner
        self.authorization = authorization

    def request(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> oci.Reply:
        return self.inner.request(method, target, {**(headers or {}), "Authorization": self.authorization}, body)


def print_rules_report(result: dict[str, Any]) -> None:
    none, ruled = result["manifest_put_no_rules"], result["manifest_put_max_rules"]
    print(f"{'tagged manifest PUT (128-char tag)':<46}{'n':>5}{'median':>12}{'p95':>12}")
    print(f"{'  no immutable rules':<46}{none['n']:>5}{none['median_ms']:>9.2f} ms{none['p95_ms']:>9.2f} ms")
    label = f"  {result['rules_per_project']} adversarial rules (a project's most)"
    print(f"{label:<46}{ruled['n']:>5}{ruled['median_ms']:>9.2f} ms{ruled['p95_ms']:>9.2f} ms")
    print(f"median difference: {ruled['median_ms'] - none['median_ms']:+.2f} ms; "
          f"matching {RULES_IN_PROCESS} such rules in-process: {result['match_50_rules_cpu_ms']:.2f} ms CPU "
          f"({result['match_50_rules_first_cpu_ms']:.2f} ms the first time)")  # fmt: skip
