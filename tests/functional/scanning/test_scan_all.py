"""Scan all over HTTP with its state machine running on moto: Harbor's schedule API, metrics and
stop, over 200 artifacts in several projects and repositories. The scans it starts are the scan
service's executions; here `ScanService.start` records a real IMAGE_SCAN execution row without an
adapter behind it (the scan machinery has its own tests), so the test decides how each one ends.
Scan on push is checked the same way. Bad input on every route: Harbor's 4xx envelope."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.core.jobs import JobStatus, Trigger, VendorType
from chalicelib.errors import BadRequest
from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import OCI_CONFIG, OCI_MANIFEST, REGION, canonical, descriptor
from tests.functional.jobs.conftest import wait_for_executions
from tests.functional.scanning.gate_support import API, create_project, register_scanner

HELM = "application/vnd.cncf.helm.config.v1+json"


class Scans:
    """What the stubbed scan service was asked, and the executions it recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[tuple[str, str, str, str, Any]] = []  # (trigger, repository, digest, scan type, job)
        self.stopped: list[str] = []
        self.finish_as: JobStatus | None = None  # end each scan at once with this status; None: leave it running

    def start(self, service: Any, who: Any, project: Any, repository: str, digest: str, scan_type: str) -> Any:
        from chalicelib.wiring import services

        if repository.endswith("chart"):
            raise BadRequest(f"artifact {repository}@{digest} of type CHART cannot be scanned")
        jobs = services().jobs
        job = jobs.record(VendorType.IMAGE_SCAN, who if isinstance(who, Trigger) else Trigger.MANUAL,
                          {"repository": repository, "digest": digest}, running=True)  # fmt: skip
        if self.finish_as is not None:
            status = self.finish_as if int(digest[-1], 16) % 2 == 0 else JobStatus.ERROR
            jobs.finish(job.job_id, status, None if status == JobStatus.SUCCESS else "scan failed")
        with self.lock:
            self.started.append((str(who), repository, digest, scan_type, job))
        return job

    def start_as_method(self) -> Any:
        def start(service: Any, *args: Any) -> Any:
            return self.start(service, *args)

        return start

    def stop_as_method(self) -> Any:
        def stop(service: Any, *args: Any) -> Any:
            return self.stop(service, *args)

        return stop

    def stop(self, service: Any, project: Any, repository: str, digest: str, scan_type: str) -> Any:
        from chalicelib.wiring import services

        with self.lock:
            job = next(j for _, r, d, _, j in self.started if r == repository and d == digest)
            self.stopped.append(f"{repository}@{digest}")
        return services().jobs.stop(job.job_id, VendorType.IMAGE_SCAN)


@pytest.fixture
def scans(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scans]:
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches, stepfunctions
    from chalicelib.services.scans import ScanService

    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)
    stepfunctions.install()
    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    recorder = Scans()
    monkeypatch.setattr(ScanService, "start", recorder.start_as_method())
    monkeypatch.setattr(ScanService, "stop", recorder.stop_as_method())
    registry.configure(scan_all_state_machine_arn=arns["SCAN_ALL"], scan_all_wait_seconds=1, scan_all_batch=25,
                       scan_all_max_active=1000)  # fmt: skip
    register_scanner()
    try:
        yield recorder
    finally:
        wait_for_executions(60)


def _push_many(registry: LiveRegistry, repository: str, count: int, config_type: str = OCI_CONFIG) -> list[str]:
    """`count` artifacts sharing one config blob (one request each after the first)."""
    config = canonical({"architecture": "amd64", "os": "linux", "repo": repository})
    registry.push_blob(repository, config)
    digests = []
    for n in range(count):
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(config_type, config),
                    "layers": [], "annotations": {"n": str(n)}}  # fmt: skip
        digests.append(registry.push_manifest(repository, f"v{n}", manifest))
    return digests


def _metrics(registry: LiveRegistry, path: str = "/scans/all/metrics") -> dict[str, Any]:
    response = registry.get(f"{API}{path}")
    assert response.status_code == 200, response.get_data()
    return dict(response.get_json())


def _wait(registry: LiveRegistry, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = _metrics(registry)
        if done(stats):
            return stats
        time.sleep(0.25)  # each look reads the history: leave the run the table
    raise AssertionError(f"scan all did not get there: {_metrics(registry)}")


def _latest_job(registry: LiveRegistry) -> Any:
    from chalicelib.wiring import services

    job = services().scan_all.latest()
    assert job is not None
    return job


def test_scan_all_over_200_artifacts_keeps_harbors_counters(registry: LiveRegistry, scans: Scans) -> None:
    assert _metrics(registry) == {}  # no run yet
    expected: set[tuple[str, str]] = set()
    for p in range(4):
        create_project(registry, f"sa{p}")
        for r in range(5):
            repository = f"sa{p}/app{r}"
            expected |= {(repository, d) for d in _push_many(registry, repository, 10)}
    charts = _push_many(registry, "sa0/zchart", 3, HELM)
    assert len(expected) == 200
    scans.finish_as = JobStatus.SUCCESS

    response = registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}})
    assert response.status_code == 201, response.get_data()
    stats = _wait(registry, lambda s: bool(s) and not s.get("ongoing"))
    assert {(r, d) for _, r, d, _, _ in scans.started} == expected  # every artifact once, charts refused
    assert {t for t, *_ in scans.started} == {"Manual"} and {s for *_, s, _ in scans.started} == {"vulnerability"}
    success = sum(1 for _, _, d, _, _ in scans.started if int(d[-1], 16) % 2 == 0)
    assert stats == {"total": 200, "completed": 200, "trigger": "Manual",  # `ongoing` false: omitted, as Harbor
                     "metrics": {"Pending": 0, "Running": 0, "Success": success, "Error": 200 - success,
                                 "Stopped": 0}}  # fmt: skip
    job = _latest_job(registry)
    assert job.status == JobStatus.ERROR  # Harbor: an execution with failed tasks ends Error
    assert job.counts == {"total_count": 203, "submit_count": 200, "conflict_count": 0, "precondition_count": 0,
                          "unsupport_count": 3, "unknow_count": 0}  # fmt: skip
    assert all(f"{r}@{d}" not in scans.stopped for r, d in (("sa0/zchart", c) for c in charts))
    # Only scheduled runs count for the schedule metrics.
    assert _metrics(registry, "/scans/schedule/metrics") == {}
    # A second manual run is allowed once the first has ended.
    assert registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}}).status_code == 201
    _wait(registry, lambda s: bool(s) and not s.get("ongoing") and _latest_job(registry).job_id != job.job_id)


def test_stop_mid_run(registry: LiveRegistry, scans: Scans) -> None:
    registry.configure(scan_all_max_active=20)  # a step starts no more while 20 scans run
    create_project(registry, "stopme")
    for r in range(3):
        _push_many(registry, f"stopme/app{r}", 15)
    assert registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}}).status_code == 201
    running = _wait(registry, lambda s: s.get("total") == 20)
    assert running["ongoing"] is True and "completed" not in running  # 0: omitted, as Harbor
    assert running["metrics"]["Pending"] + running["metrics"]["Running"] == 20
    # The run waits for its scans; a second manual one is refused meanwhile (Harbor's 409).
    again = registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}})
    assert (
        again.status_code == 409 and "a previous scan all job aleady exits" in again.get_json()["errors"][0]["message"]
    )
    time.sleep(0.3)
    assert _metrics(registry)["total"] == 20  # no more than max_active were started

    stop = registry.post(f"{API}/system/scanAll/stop")
    assert stop.status_code == 202, stop.get_data()
    stats = _metrics(registry)
    assert "ongoing" not in stats and stats["total"] == 20 and stats["completed"] == 20
    assert stats["metrics"] == {"Pending": 0, "Running": 0, "Success": 0, "Error": 0, "Stopped": 20}
    assert len(scans.stopped) == 20  # the scans it started were stopped too
    assert _latest_job(registry).status == JobStatus.STOPPED
    wait_for_executions(30)
    assert len(scans.started) == 20  # nothing started after the stop
    # A new manual run may start once the last one has ended.
    assert registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}}).status_code == 201
    assert registry.post(f"{API}/system/scanAll/stop").status_code == 202


def test_schedule_get_post_put_and_the_scheduled_run(registry: LiveRegistry, scans: Scans, clock: Any) -> None:
    assert registry.get(f"{API}/system/scanAll/schedule").get_json() == {}
    body = {"schedule": {"type": "Custom", "cron": "0 0 * * * *"}}
    assert registry.post(f"{API}/system/scanAll/schedule", json=body).status_code == 201
    got = registry.get(f"{API}/system/scanAll/schedule").get_json()
    assert got["schedule"]["type"] == "Custom" and got["schedule"]["cron"] == "0 0 * * * *"
    assert got["schedule"]["next_scheduled_time"].endswith("Z")
    # A second create is refused while one exists (Harbor's 412); PUT changes it.
    again = registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Daily"}})
    assert again.status_code == 412 and again.get_json()["errors"][0]["code"] == "PRECONDITION"
    assert registry.put(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Daily"}}).status_code == 200
    got = registry.get(f"{API}/system/scanAll/schedule").get_json()
    assert got["schedule"] == {**got["schedule"], "type": "Daily", "cron": "0 0 0 * * *"}

    # The scheduler's tick starts a run with trigger Schedule once a slot has passed.
    from chalicelib.wiring import services

    create_project(registry, "sched")
    _push_many(registry, "sched/app", 3)
    scans.finish_as = JobStatus.SUCCESS
    clock.advance(2 * 86_400)
    assert services().jobs.run_due(str(VendorType.SCAN_ALL), clock()) is not None
    stats = _wait(registry, lambda s: bool(s) and not s.get("ongoing"))
    assert stats["trigger"] == "Schedule" and stats["total"] == 3
    assert _metrics(registry, "/scans/schedule/metrics") == stats

    assert registry.put(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "None"}}).status_code == 200
    assert registry.get(f"{API}/system/scanAll/schedule").get_json() == {}
    assert registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "None"}}).status_code == 201


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/system/scanAll/schedule", {"schedule": {"type": "Sometimes"}}, 400),
    ("POST", "/system/scanAll/schedule", {"schedule": {"type": "Custom", "cron": "not a cron"}}, 400),
    ("POST", "/system/scanAll/schedule", {"schedule": {"type": "Custom", "cron": "0 0 * * *"}}, 400),
    ("POST", "/system/scanAll/schedule", {"schedule": "Manual"}, 400),
    ("POST", "/system/scanAll/schedule", {}, 400),
    ("POST", "/system/scanAll/schedule", {"schedule": {"type": "Manual"}, "extra": 1}, 400),
    ("POST", "/system/scanAll/schedule", [1, 2], 400),
    ("PUT", "/system/scanAll/schedule", {"schedule": {"type": "Manual"}}, 400),
    ("PUT", "/system/scanAll/schedule", {"schedule": {"type": "Custom", "cron": "* * *"}}, 400),
    ("PUT", "/system/scanAll/schedule", {"schedule": {"type": 5}}, 400),
    ("POST", "/system/scanAll/stop", None, 400),  # no run yet: Harbor's 400
])  # fmt: skip
def test_bad_input_is_a_4xx_envelope(registry: LiveRegistry, scans: Scans, method: str, path: str, body: Any,
                                     status: int) -> None:  # fmt: skip
    response = (
        registry.request(method, f"{API}{path}", json=body)
        if body is not None
        else registry.request(method, f"{API}{path}")
    )
    assert response.status_code == status, response.get_data()
    entry = response.get_json()["errors"][0]
    assert entry["code"] and entry["message"]
    assert registry.get(f"{API}/system/scanAll/schedule").get_json() == {}


def test_malformed_bodies_and_permissions(registry: LiveRegistry, scans: Scans) -> None:
    for data in (b"{", b'{"schedule":' + b"[" * 3000 + b"]" * 3000 + b"}", b"x" * 3_000_000):
        response = registry.post(
            f"{API}/system/scanAll/schedule", data=data, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.status_code
    user = {"username": "carol", "password": "Carol-Pass-1", "email": "carol@example.com", "realname": "Carol"}
    assert registry.post(f"{API}/users", json=user).status_code == 201
    carol = ("carol", "Carol-Pass-1")
    for method, path in (("GET", "/system/scanAll/schedule"), ("POST", "/system/scanAll/schedule"),
                         ("PUT", "/system/scanAll/schedule"), ("POST", "/system/scanAll/stop"),
                         ("GET", "/scans/all/metrics"), ("GET", "/scans/schedule/metrics")):  # fmt: skip
        body = {"schedule": {"type": "Manual"}}
        assert registry.request(method, f"{API}{path}", json=body, auth=carol).status_code == 403, path
        assert registry.request(method, f"{API}{path}", json=body, auth=None).status_code == 401, path


def test_no_default_scanner_is_harbors_412(registry: LiveRegistry) -> None:
    for method, path in (("GET", "/system/scanAll/schedule"), ("GET", "/scans/all/metrics"),
                         ("POST", "/system/scanAll/stop")):  # fmt: skip
        response = registry.request(method, f"{API}{path}")
        assert response.status_code == 412, response.get_data()
        assert "no scanner is configured" in response.get_json()["errors"][0]["message"]
    manual = registry.post(f"{API}/system/scanAll/schedule", json={"schedule": {"type": "Manual"}})
    assert manual.status_code == 412


def test_scan_on_push(registry: LiveRegistry, scans: Scans) -> None:
    from chalicelib.wiring import services

    create_project(registry, "auto", auto_scan="true")
    create_project(registry, "both", auto_scan="true", auto_sbom_generation="true")
    create_project(registry, "manual")
    auto, _ = registry.push_image("auto/app", "v1")
    both, _ = registry.push_image("both/app", "v1")
    registry.push_image("manual/app", "v1")
    registry.push_image("auto/zchart", "v1", config_media_type=HELM)  # refused by the scan service: skipped
    services().events.drain()
    got = sorted((t, r, d, s) for t, r, d, s, _ in scans.started)
    assert got == sorted([("Event", "auto/app", auto, "vulnerability"), ("Event", "both/app", both, "vulnerability"),
                          ("Event", "both/app", both, "sbom")])  # fmt: skip
    # Turning it off stops it.
    assert registry.put(f"{API}/projects/auto", json={"metadata": {"auto_scan": "false"}}).status_code == 200
    registry.push_image("auto/app", "v2")
    services().events.drain()
    assert len(scans.started) == 3
