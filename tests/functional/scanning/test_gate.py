"""The pull gate over HTTP: `prevent_vul` + `severity` on manifest GET and HEAD with Harbor's rules
and 412 PROJECTPOLICYVIOLATION, allowlists (system and project, expiry), exemptions, and its cost:
no call of its own, but one GetItem on a gated pull by tag (`tests/functional/test_push_cost.py`
pins the whole sequences)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from chalicelib.core import scans
from tests.clock import MovableClock
from tests.functional.helpers import OCI_MANIFEST, Registry, assert_error, dynamodb_calls
from tests.functional.scanning.gate_support import API, create_project, register_scanner, set_metadata, write_summary

ACCEPT = {"Accept": OCI_MANIFEST}


def _pull(registry: Registry, repo: str, ref: str, **kwargs: Any) -> Any:
    return registry.get(f"/v2/{repo}/manifests/{ref}", headers={**ACCEPT, **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture
def gated(registry: Registry) -> tuple[Registry, str, str]:
    register_scanner()
    create_project(registry, "gated", prevent_vul="true", severity="high")
    digest, _ = registry.push_image("gated/app", "v1")
    return registry, "gated/app", digest


def test_unscanned_image_is_refused_with_harbors_412(gated: tuple[Registry, str, str]) -> None:
    registry, repo, digest = gated
    for ref in ("v1", digest):
        entry = assert_error(_pull(registry, repo, ref), 412, "PROJECTPOLICYVIOLATION")
        assert entry["message"].startswith("current image without vulnerability scanning cannot be pulled due to "
                                           "configured policy in 'Prevent images with vulnerability severity of "
                                           '"High" or higher from running.')  # fmt: skip
        head = registry.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
        assert head.status_code == 412


@pytest.mark.parametrize("status", ["Pending", "Running", "Error", "Stopped"])
def test_a_scan_that_did_not_succeed_refuses(gated: tuple[Registry, str, str], status: str) -> None:
    registry, repo, digest = gated
    write_summary(repo, digest, status)
    entry = assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    assert f'current image with "{status}" status of vulnerability scanning' in entry["message"]


def test_threshold_decides_and_allowlists_let_it_through(gated: tuple[Registry, str, str], clock: Any) -> None:
    registry, repo, digest = gated
    write_summary(repo, digest, "Success", [("CVE-2024-1", "High"), ("CVE-2024-2", "Low"), ("CVE-2024-3", "Critical")])
    entry = assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    assert entry["message"].startswith("current image with 3 vulnerabilities cannot be pulled")
    assert entry["message"].endswith("exempt matched vulnerabilities through configuring the CVE allowlist.")

    # The system allowlist applies by default (reuse_sys_cve_allowlist absent).
    listed = {"items": [{"cve_id": "CVE-2024-1"}, {"cve_id": "CVE-2024-3"}]}
    assert registry.put(f"{API}/system/CVEAllowlist", json=listed).status_code == 200
    assert _pull(registry, repo, "v1").status_code == 200
    assert registry.head(f"/v2/{repo}/manifests/{digest}", headers=ACCEPT).status_code == 200

    # An expired allowlist is ignored.
    expiring = {**listed, "expires_at": int(clock()) + 60}
    assert registry.put(f"{API}/system/CVEAllowlist", json=expiring).status_code == 200
    assert _pull(registry, repo, "v1").status_code == 200
    clock.advance(61)
    assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")

    # The project's own list, once it stops reusing the system's.
    set_metadata(registry, "gated", reuse_sys_cve_allowlist="false")
    assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    own = {"cve_allowlist": {"items": [{"cve_id": "CVE-2024-3"}]}}
    assert registry.put(f"{API}/projects/gated", json=own).status_code == 200
    entry = assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    assert "with 2 vulnerabilities" in entry["message"]  # CVE-2024-3 no longer counts
    own = {"cve_allowlist": {"items": [{"cve_id": "CVE-2024-1"}, {"cve_id": "CVE-2024-3"}]}}
    assert registry.put(f"{API}/projects/gated", json=own).status_code == 200
    assert _pull(registry, repo, "v1").status_code == 200

    # A higher threshold passes without any allowlist; turning the gate off passes everything.
    set_metadata(registry, "gated", reuse_sys_cve_allowlist="true", severity="critical")
    assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")  # the Critical one
    set_metadata(registry, "gated", prevent_vul="false")
    assert _pull(registry, repo, "v1").status_code == 200


def test_no_threshold_blocks_any_finding_low_threshold_ignores_unknown(registry: Registry) -> None:
    register_scanner()
    create_project(registry, "strict", prevent_vul="true")
    digest, _ = registry.push_image("strict/app", "v1")
    write_summary("strict/app", digest, "Success", [("CVE-9", "Unknown")])
    entry = assert_error(_pull(registry, "strict/app", "v1"), 412, "PROJECTPOLICYVIOLATION")
    assert 'severity of "Unknown" or higher' in entry["message"] and "with 1 vulnerability cannot" in entry["message"]
    set_metadata(registry, "strict", severity="low")
    assert _pull(registry, "strict/app", "v1").status_code == 200
    clean, _ = registry.push_image("strict/app", "clean")
    write_summary("strict/app", clean, "Success", [])
    set_metadata(registry, "strict", severity="none")
    assert _pull(registry, "strict/app", "clean").status_code == 200


def test_native_report_is_consulted_first(gated: tuple[Registry, str, str]) -> None:
    registry, repo, digest = gated
    write_summary(repo, digest, "Success", [], mime=scans.VULNERABILITY_REPORT_GENERIC)
    write_summary(repo, digest, "Error", mime=scans.VULNERABILITY_REPORT_NATIVE)
    assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")


def test_summary_without_ids_reads_the_report_when_an_allowlist_applies(
    gated: tuple[Registry, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, repo, digest = gated
    monkeypatch.setattr(scans, "MAX_CVES", 1)
    write_summary(repo, digest, "Success", [("CVE-A", "High"), ("CVE-B", "Critical")], report=True)
    assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    both = {"items": [{"cve_id": "CVE-A"}, {"cve_id": "CVE-B"}]}
    assert registry.put(f"{API}/system/CVEAllowlist", json=both).status_code == 200
    assert _pull(registry, repo, "v1").status_code == 200
    one = {"items": [{"cve_id": "CVE-B"}]}
    assert registry.put(f"{API}/system/CVEAllowlist", json=one).status_code == 200
    entry = assert_error(_pull(registry, repo, "v1"), 412, "PROJECTPOLICYVIOLATION")
    assert "with 1 vulnerability" in entry["message"]


def test_unscannable_artifacts_and_indexes_and_no_scanner_pass(registry: Registry) -> None:
    create_project(registry, "noscan", prevent_vul="true", severity="low")
    registry.push_image("noscan/app", "v1")
    assert _pull(registry, "noscan/app", "v1").status_code == 200  # no scanner registered: nothing is scannable
    register_scanner(disabled=True)
    assert _pull(registry, "noscan/app", "v1").status_code == 200
    register_scanner()
    assert_error(_pull(registry, "noscan/app", "v1"), 412, "PROJECTPOLICYVIOLATION")
    registry.push_image("noscan/chart", "v1", config_media_type="application/vnd.cncf.helm.config.v1+json")
    assert _pull(registry, "noscan/chart", "v1").status_code == 200  # not an image


def test_exemptions_scanner_robot_signers_and_signatures(registry: Registry) -> None:
    register_scanner()
    create_project(registry, "signed", prevent_vul="true", severity="low")
    digest, _ = registry.push_image("signed/app", "v1")
    assert_error(_pull(registry, "signed/app", "v1"), 412, "PROJECTPOLICYVIOLATION")

    def robot(access: list[dict[str, str]]) -> tuple[str, str]:
        body = {"name": f"bot{len(access)}", "level": "project", "duration": -1,
                "permissions": [{"kind": "project", "namespace": "signed", "access": access}]}  # fmt: skip
        response = registry.post(f"{API}/robots", json=body)
        assert response.status_code == 201, response.get_data()
        created = response.get_json()
        return created["name"], created["secret"]

    def bearer(auth: tuple[str, str], actions: str) -> dict[str, str]:
        query = {"service": "harbor-registry", "scope": f"repository:signed/app:{actions}"}
        response = registry.get("/service/token", auth=auth, query_string=query)
        assert response.status_code == 200, response.get_data()
        return {"Authorization": f"Bearer {response.get_json()['token']}"}

    scanner = robot(
        [{"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "scanner-pull"}]
    )
    assert (
        _pull(registry, "signed/app", "v1", auth=None, headers=bearer(scanner, "pull,scanner-pull")).status_code == 200
    )
    assert _pull(registry, "signed/app", "v1", auth=scanner).status_code == 200  # Basic on /v2: the robot's grants
    puller = robot([{"resource": "repository", "action": "pull"}])
    assert_error(_pull(registry, "signed/app", "v1", auth=None, headers=bearer(puller, "pull")), 412,
                 "PROJECTPOLICYVIOLATION")  # fmt: skip
    pusher = robot([{"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "push"},
                    {"resource": "tag", "action": "create"}])  # fmt: skip
    token = bearer(pusher, "pull,push")
    assert_error(_pull(registry, "signed/app", "v1", auth=None, headers=token), 412, "PROJECTPOLICYVIOLATION")
    for agent in ("cosign/v2.2.0 (linux; amd64)", "notation/1.1.0"):
        assert _pull(registry, "signed/app", "v1", auth=None, headers={**token, "User-Agent": agent}).status_code == 200

    # A cosign signature (an accessory with a subject) and a legacy `.sig` tag are never gated.
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}
    cosign = "application/vnd.dev.cosign.artifact.sig.v1+json"
    signature, _ = registry.push_image("signed/app", None, artifact_type=cosign, subject=subject)
    assert _pull(registry, "signed/app", signature).status_code == 200
    legacy_tag = f"sha256-{digest.split(':')[1]}.sig"
    registry.push_image("signed/app", legacy_tag)
    assert _pull(registry, "signed/app", legacy_tag).status_code == 200


def test_the_gate_costs_a_call_only_on_a_gated_pull_by_tag(gated: tuple[Registry, str, str],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           clock: MovableClock) -> None:  # fmt: skip
    """Its policy rows ride on the pull's own read: with the check patched out the read is the same.
    A gated pull by tag reads the manifest row's scan summaries as well (the tag row has none)."""
    from chalicelib.wiring import services

    registry, repo, digest = gated
    write_summary(repo, digest, "Success", [("CVE-1", "Low")])
    with clock.frozen():  # a cached read that expired between the two runs would be counted as the gate's
        _compare_gated_and_ungated(registry, repo, digest, monkeypatch, services)


def _compare_gated_and_ungated(registry: Registry, repo: str, digest: str, monkeypatch: pytest.MonkeyPatch,
                               services: Any) -> None:  # fmt: skip
    measured: dict[str, list[str]] = {}
    for ref in ("v1", digest):
        for method in ("GET", "HEAD"):
            with dynamodb_calls() as calls:
                assert registry.request(method, f"/v2/{repo}/manifests/{ref}", headers=ACCEPT).status_code == 200
            measured[f"{method} {ref}"] = calls
    with monkeypatch.context() as patched:
        patched.setattr(type(services().gate), "check", lambda *args: None)
        for ref in ("v1", digest):
            for method in ("GET", "HEAD"):
                with dynamodb_calls() as calls:
                    assert registry.request(method, f"/v2/{repo}/manifests/{ref}", headers=ACCEPT).status_code == 200
                ungated = calls
                gated_calls = measured[f"{method} {ref}"]
                assert gated_calls == ([*ungated, "GetItem"] if ref == "v1" else ungated), (method, ref, gated_calls)


def test_a_policy_turned_on_refuses_the_next_pull(registry: Registry, clock: MovableClock) -> None:
    """Nothing of the policy is cached: the pull after the change is refused, with no time passing."""
    register_scanner()
    create_project(registry, "later")
    digest, _ = registry.push_image("later/app", "v1")
    with clock.frozen():
        for ref in ("v1", digest):
            assert _pull(registry, "later/app", ref).status_code == 200
            assert registry.head(f"/v2/later/app/manifests/{ref}", headers=ACCEPT).status_code == 200
        set_metadata(registry, "later", prevent_vul="true", severity="high")
        for ref in ("v1", digest):
            assert_error(_pull(registry, "later/app", ref), 412, "PROJECTPOLICYVIOLATION")
            assert registry.head(f"/v2/later/app/manifests/{ref}", headers=ACCEPT).status_code == 412
        set_metadata(registry, "later", prevent_vul="false")
        assert _pull(registry, "later/app", "v1").status_code == 200


def test_gate_answers_bad_references_as_before(gated: tuple[Registry, str, str]) -> None:
    registry, repo, _ = gated
    assert_error(_pull(registry, repo, "nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(_pull(registry, repo, "sha256:" + "0" * 64), 404, "MANIFEST_UNKNOWN")
    assert _pull(registry, repo, "bad:tag:x").status_code in (400, 404)
    assert_error(_pull(registry, "gated/missing", "v1"), 404, "MANIFEST_UNKNOWN")
    basic = base64.b64encode(b"admin:wrong").decode()
    assert _pull(registry, repo, "v1", auth=None, headers={"Authorization": f"Basic {basic}"}).status_code == 401
