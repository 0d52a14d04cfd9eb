"""Scans end to end over HTTP: the scan state machine on moto, a Trivy-shaped fake adapter on
127.0.0.1 registered as the default scanner, Harbor's scan routes and the results in Harbor's shapes
(`scan_overview`, `additions/vulnerabilities`, `sbom_overview`, the SBOM accessory), the SCANNING_*
events and their webhook payloads, the audit rows, and the scan robot's life."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from werkzeug.wrappers import Request, Response

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    REGION,
    canonical,
    descriptor,
    digest_of,
    index_manifest,
)
from tests.functional.jobs.conftest import API, wait_for_executions
from tests.unit.adapters.trivy_fake import FINDING, SBOM, VULN, TrivyFake

NATIVE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
REPO = "library/app"
ART = f"{API}/projects/library/repositories/app/artifacts"
FINAL = {"Success", "Error", "Stopped"}
HARBOR_ITEM_FIELDS = ("id", "package", "version", "fix_version", "severity", "status", "description", "links",
                      "artifact_digests", "preferred_cvss", "cwe_ids", "vendor_attributes")  # fmt: skip

F2 = {"id": "CVE-2026-0002", "package": "zlib1g", "version": "1:1.2.13", "fix_version": "", "severity": "Medium"}
F3 = {"id": "CVE-2026-0003", "package": "libc6", "version": "2.36-9", "fix_version": "2.36-9+deb12u4",
      "severity": "Low"}  # fmt: skip
F4 = {"id": "CVE-2026-0004", "package": "bash", "version": "5.2.15", "severity": "UNKNOWN"}


class Fake(TrivyFake):
    """The Trivy-shaped fake, with findings chosen per scanned digest (`by_digest`)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_digest: dict[str, list[dict[str, Any]]] = {}

    def _scan(self, request: Request) -> Response:
        response = super()._scan(request)
        if response.status_code == 202:
            job = self.jobs[json.loads(response.get_data())["id"]]
            digest = job.request["artifact"]["digest"]
            if digest in self.by_digest:
                job.findings = list(self.by_digest[digest])
        return response

    def scan_requests(self) -> list[dict[str, Any]]:
        return [job.request for job in self.jobs.values()]


class Scanning(LiveRegistry):
    fake: Fake
    events: list[Any]

    def scan(self, reference: str, scan_type: str | None = None, repo: str = "app", **kwargs: Any) -> Any:
        body = {"scan_type": scan_type} if scan_type else None
        return self.post(f"{API}/projects/library/repositories/{repo}/artifacts/{reference}/scan", json=body,
                         **kwargs)  # fmt: skip

    def artifact(self, reference: str, **headers: str) -> dict[str, Any]:
        response = self.get(f"{ART}/{reference}?with_scan_overview=true&with_sbom_overview=true&with_accessory=true",
                            headers=headers)  # fmt: skip
        assert response.status_code == 200, response.get_data()[:500]
        return dict(response.get_json())

    def overview(self, reference: str, mime: str = VULN) -> dict[str, Any]:
        return dict(self.artifact(reference).get("scan_overview", {}).get(mime) or {})

    def wait(self, reference: str, mime: str = VULN, key: str = "scan_overview") -> dict[str, Any]:
        """The overview once the scan has ended and its execution has stopped running."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = self.artifact(reference).get(key) or {}
            found = view.get(mime) if key == "scan_overview" else view
            if found and found["scan_status"] in FINAL:
                wait_for_executions(deadline - time.monotonic())
                from chalicelib.wiring import services

                services().events.drain()
                return dict(found)
            time.sleep(0.05)
        raise AssertionError(f"the scan did not end: {self.artifact(reference)}")

    def scanner_robots(self) -> list[str]:
        from chalicelib.wiring import services

        return [r.name for r in services().robots.list(None, None) if "+scanner-" in r.name]

    def push_tagged(self, tag: str, seed: bytes) -> str:
        digest, _ = self.push_image(REPO, tag, layers=1, seed=seed)
        return digest


@pytest.fixture
def scanning(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scanning]:
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches, stepfunctions
    from chalicelib.services.scanners import RegistrationChange

    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)
    stepfunctions.install()
    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    registry.__class__ = Scanning
    assert isinstance(registry, Scanning)
    registry.configure(scan_state_machine_arn=arns["IMAGE_SCAN"], scanner_allow_networks="127.0.0.1/32",
                       scanner_metadata_cache_seconds=0)  # fmt: skip
    fake = Fake().start()
    registry.fake = fake
    from chalicelib.wiring import services

    created = services().scanners.create(RegistrationChange(name="trivy-fake", url=fake.url))
    services().scanners.set_default(created.uuid)
    registry.events = []
    services().events.subscribe(registry.events.append)
    try:
        yield registry
    finally:
        wait_for_executions(60)
        fake.close()


def _login(request: dict[str, Any]) -> tuple[str, str]:
    kind, _, value = request["registry"]["authorization"].partition(" ")
    assert kind == "Basic"
    user, _, secret = base64.b64decode(value).decode().partition(":")
    return user, secret


# Success, exact summary, results in Harbor's shapes, the robot, events and audit.


def test_scan_success_has_harbor_summary_report_events_and_no_robot_left(scanning: Scanning) -> None:
    digest = scanning.push_tagged("v1", b"one")
    scanning.fake.findings = [FINDING, F2, F3, F4, dict(FINDING)]  # the last repeats id-package-version
    scanning.fake.polls_until_ready = 1
    response = scanning.scan("v1")
    assert response.status_code == 202, response.get_data()
    overview = scanning.wait("v1")
    assert overview["scan_status"] == "Success"
    assert overview["severity"] == "High"
    assert overview["summary"] == {"total": 4, "fixable": 2, "summary": {"High": 1, "Medium": 1, "Low": 1,
                                                                         "Unknown": 1}}  # fmt: skip
    assert overview["scanner"] == {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.72.0"}
    assert overview["complete_percent"] == 100
    assert overview["duration"] >= 0 and overview["start_time"] and overview["end_time"]
    # Only the first accepted MIME type with a report appears; native only: none.
    assert list(scanning.artifact("v1")["scan_overview"]) == [VULN]
    assert scanning.artifact("v1", **{"X-Accept-Vulnerabilities": NATIVE}).get("scan_overview") in (None, {})

    additions = scanning.get(f"{ART}/v1/additions/vulnerabilities").get_json()
    assert list(additions) == [VULN]
    report = additions[VULN]
    assert report["severity"] == "High" and report["scanner"]["name"] == "Trivy"
    first = next(v for v in report["vulnerabilities"] if v["id"] == "CVE-2026-0001")
    assert first["preferred_cvss"]["score_v3"] == 7.5  # from vendor_attributes, nvd first
    assert next(v for v in report["vulnerabilities"] if v["id"] == "CVE-2026-0004")["severity"] == "Unknown"
    # Every item has each field of Harbor's vulnerability item, typed as Harbor writes it, even
    # when the adapter left it out (F4 has no fix, status, description, links, scores or CWEs).
    assert set(report) == {"generated_at", "scanner", "severity", "vulnerabilities"}
    bare = next(v for v in report["vulnerabilities"] if v["id"] == "CVE-2026-0004")
    assert {k: bare[k] for k in HARBOR_ITEM_FIELDS} == {
        "id": "CVE-2026-0004", "package": "bash", "version": "5.2.15", "fix_version": "", "severity": "Unknown",
        "status": "", "description": "", "links": [], "artifact_digests": [digest], "cwe_ids": [],
        "preferred_cvss": {"score_v3": None, "score_v2": None, "vector_v3": "", "vector_v2": ""},
        "vendor_attributes": None,
    }  # fmt: skip
    assert first["preferred_cvss"] == {"score_v3": 7.5, "score_v2": None, "vector_v3": FINDING["vendor_attributes"][
        "CVSS"]["nvd"]["V3Vector"], "vector_v2": ""}  # fmt: skip
    assert first["layer"] == FINDING["layer"] and first["artifact_digests"] == [digest]  # Trivy's extra field kept
    native = scanning.get(f"{ART}/v1/additions/vulnerabilities", headers={"X-Accept-Vulnerabilities": NATIVE})
    assert native.get_json() == {}

    # The adapter was asked as Harbor asks: one capability, the generic report, the tag, a robot.
    (request,) = scanning.fake.scan_requests()
    assert request["artifact"] == {"repository": REPO, "tag": "v1", "digest": digest, "mime_type": OCI_MANIFEST,
                                   "size": request["artifact"]["size"]}  # fmt: skip
    assert request["enabled_capabilities"] == [{"type": "vulnerability", "produces_mime_types": [VULN],
                                                "parameters": None}]  # fmt: skip
    user, secret = _login(request)
    assert user.startswith("robot$library+scanner-trivy-fake-")
    assert scanning.scanner_robots() == []  # deleted when the task ended
    assert scanning.get("/v2/", auth=(user, secret)).status_code == 401

    # The report is stored once per digest, registration and MIME type.
    assert [k for k in scanning.object_keys("scan-reports/") if k.endswith("vulnerability-1.1.json")] == [
        k for k in scanning.object_keys("scan-reports/") if digest.split(":")[1] in k
    ]

    completed = [e for e in scanning.events if e.type == "SCANNING_COMPLETED"]
    assert len(completed) == 1 and completed[0].operator == "admin"
    from chalicelib.core.webhooks import Target, payload

    sent = json.loads(payload(completed[0], Target("http", "http://hook.example"), "", "reg.example", False).body)
    assert sent["type"] == "SCANNING_COMPLETED"
    resource = sent["event_data"]["resources"][0]
    assert resource["digest"] == digest and resource["tag"] == "v1"
    assert resource["resource_url"] == f"reg.example/{REPO}:v1"
    assert resource["scan_overview"][VULN]["summary"]["total"] == 4
    assert sent["event_data"]["repository"] == {
        "name": "app",
        "namespace": "library",
        "repo_full_name": REPO,
        "repo_type": "private",  # public=False above
    }

    logs = scanning.get(f"{API}/projects/library/logs", query_string={"q": "operation=scan"}).get_json()
    assert [(entry["operation"], entry["resource"]) for entry in logs] == [("scan", f"{REPO}@{digest}")]

    log = scanning.get(f"{ART}/v1/scan/{overview['report_id']}/log")
    assert log.status_code == 200 and "report received: 4 vulnerabilities" in log.get_data(as_text=True)


def test_a_clean_image_is_severity_none(scanning: Scanning) -> None:
    scanning.push_tagged("clean", b"clean")
    assert scanning.scan("clean").status_code == 202
    overview = scanning.wait("clean")
    assert (overview["scan_status"], overview["severity"]) == ("Success", "None")
    assert overview["summary"] == {"total": 0, "fixable": 0, "summary": {}}


# Running scans: 409, stop, deletion while running.


def test_second_scan_while_running_is_409_and_stop_ends_it(scanning: Scanning) -> None:
    scanning.push_tagged("slow", b"slow")
    scanning.fake.polls_until_ready = 1000
    assert scanning.scan("slow").status_code == 202
    again = scanning.scan("slow")
    assert again.status_code == 409
    assert again.get_json()["errors"][0] == {"code": "CONFLICT", "message": "a previous scan process is Running"}
    assert scanning.overview("slow")["scan_status"] in ("Pending", "Running")
    # A different scan type is not the same scan.
    deadline = time.monotonic() + 30
    while not scanning.scanner_robots():  # the robot exists while the scan runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop = scanning.post(f"{ART}/slow/scan/stop", json={"scan_type": "vulnerability"})
    assert stop.status_code == 202, stop.get_data()
    overview = scanning.wait("slow")
    assert overview["scan_status"] == "Stopped" and overview["summary"] is None and overview["severity"] == ""
    assert scanning.scanner_robots() == []
    assert [e.type for e in scanning.events if e.type.startswith("SCANNING")] == ["SCANNING_STOPPED"]
    again = scanning.post(f"{ART}/slow/scan/stop", json={})
    assert again.status_code == 400 and again.get_json()["errors"][0]["code"] == "BAD_REQUEST"
    # Once stopped, the artifact can be scanned again.
    scanning.fake.polls_until_ready = 0
    assert scanning.scan("slow").status_code == 202
    assert scanning.wait("slow")["scan_status"] == "Success"


def test_artifact_deleted_while_it_is_scanned_ends_cleanly(scanning: Scanning) -> None:
    from chalicelib.wiring import services

    digest = scanning.push_tagged("gone", b"gone")
    scanning.fake.polls_until_ready = 1  # one 302: a 5 s wait before the report
    assert scanning.scan("gone").status_code == 202
    deadline = time.monotonic() + 30
    while not scanning.fake.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert scanning.delete(f"{ART}/gone").status_code == 200
    wait_for_executions(60)
    (job,) = services().jobs.history("IMAGE_SCAN", 5)
    assert job.status == "Error"
    (task,) = services().jobs.tasks(job.job_id)
    assert task.status == "Error" and "deleted while it was scanned" in (task.error or "")
    assert scanning.get(f"{ART}/{digest}").status_code == 404  # the row is not brought back
    assert scanning.scanner_robots() == []
    services().events.drain()
    assert [e.type for e in scanning.events if e.type.startswith("SCANNING")] == ["SCANNING_FAILED"]


def test_scanner_down_is_error_with_the_reason_in_the_log(scanning: Scanning) -> None:
    scanning.push_tagged("down", b"down")
    scanning.fake.close()
    assert scanning.scan("down").status_code == 202
    overview = scanning.wait("down")
    assert overview["scan_status"] == "Error" and overview["summary"] is None
    log = scanning.get(f"{ART}/down/scan/{overview['report_id']}/log")
    assert log.status_code == 200
    assert "cannot be reached" in log.get_data(as_text=True), log.get_data(as_text=True)
    assert scanning.scanner_robots() == []
    assert [e.type for e in scanning.events if e.type.startswith("SCANNING")] == ["SCANNING_FAILED"]


# An index: one task per child, merged as Harbor merges.


def test_index_scans_its_children_and_merges(scanning: Scanning) -> None:
    one, one_body = scanning.push_image(REPO, None, layers=1, seed=b"amd")
    two, two_body = scanning.push_image(REPO, None, layers=1, seed=b"arm")
    scanning.fake.by_digest = {one: [FINDING, F2], two: [dict(FINDING), F3]}  # CVE-2026-0001 in both
    index = canonical(index_manifest([descriptor(OCI_MANIFEST, one_body, platform={"architecture": "amd64",
                                                                                  "os": "linux"}),
                                      descriptor(OCI_MANIFEST, two_body, platform={"architecture": "arm64",
                                                                                  "os": "linux"})]))  # fmt: skip
    index_digest = scanning.push_manifest(REPO, "multi", index, OCI_INDEX)
    assert scanning.scan("multi").status_code == 202
    overview = scanning.wait("multi")
    assert overview["scan_status"] == "Success"
    assert overview["summary"] == {"total": 3, "fixable": 2, "summary": {"High": 1, "Medium": 1, "Low": 1}}
    assert overview["complete_percent"] == 100
    ids = base64.b64decode(overview["report_id"]).decode().split("|")
    assert sorted(ids) == sorted([scanning.overview(one)["report_id"], scanning.overview(two)["report_id"]])
    assert sorted(r["artifact"]["digest"] for r in scanning.fake.scan_requests()) == sorted([one, two])
    log = scanning.get(f"{ART}/multi/scan/{overview['report_id']}/log").get_data(as_text=True)
    assert sorted(line for line in log.splitlines() if line.startswith("-----")) == sorted(
        f"---------- Logs of report {i} ----------" for i in ids
    )
    report = scanning.get(f"{ART}/multi/additions/vulnerabilities").get_json()[VULN]
    shared = next(v for v in report["vulnerabilities"] if v["id"] == "CVE-2026-0001")
    assert sorted(shared["artifact_digests"]) == sorted([one, two])
    assert len(report["vulnerabilities"]) == 3
    assert index_digest == digest_of(index)
    assert [e.type for e in scanning.events if e.type.startswith("SCANNING")] == ["SCANNING_COMPLETED"]


# SBOM generation: sbom_overview and the accessory.


def test_sbom_is_stored_as_an_accessory_of_the_scanned_manifest(scanning: Scanning) -> None:
    digest = scanning.push_tagged("bom", b"bom")
    assert scanning.scan("bom", "sbom").status_code == 202
    overview = scanning.wait("bom", key="sbom_overview")
    assert overview["scan_status"] == "Success" and overview["report_id"] == ""
    sbom_digest = overview["sbom_digest"]
    assert sbom_digest.startswith("sha256:")
    accessories = scanning.artifact("bom")["accessories"]
    assert [(a["type"], a["digest"]) for a in accessories] == [("harbor.sbom", sbom_digest)]
    manifest = json.loads(scanning.get(f"/v2/{REPO}/manifests/{sbom_digest}").get_data())
    assert manifest["config"]["mediaType"] == "application/vnd.goharbor.harbor.sbom.v1"
    assert manifest["subject"]["digest"] == digest
    assert manifest["annotations"]["org.opencontainers.artifact.description"] == "SPDX JSON SBOM"
    sbom = scanning.get(f"{ART}/{sbom_digest}/additions/sbom")
    assert sbom.status_code == 200 and json.loads(sbom.get_data()) == {"spdxVersion": "SPDX-2.3"}
    (request,) = scanning.fake.scan_requests()
    assert request["enabled_capabilities"][0]["type"] == "sbom"
    assert request["enabled_capabilities"][0]["produces_mime_types"] == [SBOM]
    assert scanning.scanner_robots() == []


# What cannot be scanned, and bad input on every route.


def test_non_image_artifacts_cannot_be_scanned(scanning: Scanning) -> None:
    chart, _ = scanning.push_image(REPO, "chart", config_media_type="application/vnd.cncf.helm.config.v1+json")
    image = scanning.push_tagged("img", b"img")
    signature, _ = scanning.push_image(REPO, None, config_media_type="application/vnd.dev.cosign.artifact.sig.v1+json",
                                       subject={"mediaType": OCI_MANIFEST, "digest": image, "size": 1})  # fmt: skip
    for reference in (chart, signature):
        response = scanning.scan(reference)
        assert response.status_code == 400, response.get_data()
        error = response.get_json()["errors"][0]
        assert error["code"] == "BAD_REQUEST"
        assert (
            error["message"] == f"the configured scanner trivy-fake does not support scanning artifact with mime "
            f"type {OCI_MANIFEST}"
        )
    assert scanning.fake.jobs == {}


def test_scan_routes_refuse_bad_input(scanning: Scanning) -> None:
    scanning.push_tagged("v1", b"bad")
    cases = [
        (scanning.scan("v1", "malware"), 400),
        (scanning.post(f"{ART}/v1/scan", data=b"{not json", headers={"Content-Type": "application/json"}), 400),
        (scanning.post(f"{ART}/v1/scan", json={"scan_type": "sbom", "extra": 1}), 400),
        (scanning.post(f"{ART}/v1/scan", json={"scan_type": 5}), 400),
        (scanning.post(f"{ART}/v1/scan", data=b"[" * 5000 + b"]" * 5000), 400),
        (scanning.post(f"{ART}/v1/scan", data=b'{"scan_type":"' + b"a" * 2_000_000 + b'"}'), 400),
        (scanning.post(f"{ART}/v1/scan/stop", json={"scan_type": "nope"}), 400),
        (scanning.scan("missing"), 404),
        (scanning.scan("sha256:" + "0" * 64), 404),
        (scanning.scan("x" * 300), 400),
        (scanning.post(f"{API}/projects/nope/repositories/app/artifacts/v1/scan", json={}), 404),
        (scanning.post(f"{API}/projects/library/repositories/nope/artifacts/v1/scan", json={}), 404),
        (scanning.post(f"{ART}/missing/scan/stop", json={}), 404),
        (scanning.get(f"{ART}/v1/scan/nope/log"), 404),
        (scanning.get(f"{ART}/v1/scan/{'r' * 600}/log"), 400),
        (scanning.get(f"{ART}/missing/scan/nope/log"), 404),
        (scanning.post(f"{ART}/v1/scan", json={}, auth=None), 401),
        (scanning.post(f"{ART}/v1/scan", json={}, auth=("admin", "wrong")), 401),
        (scanning.post(f"{ART}/v1/scan/stop", json={}, auth=None), 401),
        (scanning.get(f"{ART}/v1/scan/x/log", auth=("admin", "wrong")), 401),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.path, response.status_code, response.get_data()[:300])
        assert response.get_json()["errors"][0]["code"]
    assert scanning.fake.jobs == {}


def test_a_user_without_the_scan_permission_is_refused(scanning: Scanning) -> None:
    scanning.push_tagged("v1", b"perm")
    created = scanning.post(f"{API}/users", json={"username": "guest1", "email": "g@example.com", "realname": "g",
                                                  "password": "Guest12345", "comment": ""})  # fmt: skip
    assert created.status_code == 201, created.get_data()
    body = {"role_id": 3, "member_user": {"username": "guest1"}}
    member = scanning.post(f"{API}/projects/library/members", json=body)
    assert member.status_code == 201, member.get_data()
    guest = ("guest1", "Guest12345")
    assert scanning.post(f"{ART}/v1/scan", json={}, auth=guest).status_code == 403
    assert scanning.post(f"{ART}/v1/scan/stop", json={}, auth=guest).status_code == 403
    assert scanning.fake.jobs == {}


def test_a_disabled_scanner_is_a_precondition_failure(scanning: Scanning) -> None:
    from chalicelib.services.scanners import RegistrationChange
    from chalicelib.wiring import services

    scanning.push_tagged("v1", b"none")
    url = scanning.fake.url.replace("127.0.0.1", "localhost")
    other = services().scanners.create(RegistrationChange(name="other", url=url))
    services().scanners.set_project(1, "library", other.uuid)
    services().scanners.update(other.uuid, RegistrationChange(name="other", url=url, disabled=True))
    response = scanning.scan("v1")
    assert response.status_code == 412 and response.get_json()["errors"][0]["code"] == "PRECONDITION"
    assert "disabled" in response.get_json()["errors"][0]["message"]
    assert scanning.fake.jobs == {}


def test_a_scan_whose_execution_died_is_settled_error_and_its_robot_deleted(scanning: Scanning) -> None:
    from chalicelib.wiring import services

    scanning.push_tagged("lost", b"lost")
    scanning.fake.polls_until_ready = 1000
    assert scanning.scan("lost").status_code == 202
    deadline = time.monotonic() + 30
    while not scanning.scanner_robots():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (job,) = services().jobs.recorded("IMAGE_SCAN", 5)
    assert job.execution_arn
    # The engine loses the execution (a crash, a timeout outside any Catch): nothing of ours ran.
    boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=job.execution_arn)
    wait_for_executions(30)
    assert scanning.scanner_robots() != []
    overview = scanning.overview("lost")
    assert overview["scan_status"] == "Error" and overview["summary"] is None
    assert scanning.scanner_robots() == []
    scanning.fake.polls_until_ready = 0
    again = scanning.scan("lost")  # the lock went with the execution
    assert again.status_code == 202, again.get_data()
    assert scanning.wait("lost")["scan_status"] == "Success"
