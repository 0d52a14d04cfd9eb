"""The security hub over HTTP (`/security/summary`, `/security/vul`) with real scans: the scan state
machine on moto and the Trivy-shaped fake adapter as the default scanner, findings chosen per
digest. Counts after scans of several images, after a re-scan and after a delete; every `q` filter;
paging; the dangerous CVE and artifact rankings; bad input on both routes (never a 500)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.functional.conftest import LiveRegistry
from tests.functional.jobs.test_scans import Scanning
from tests.functional.scanning.gate_support import API

SUMMARY = f"{API}/security/summary"
VUL = f"{API}/security/vul"


def finding(cve: str, package: str, severity: str, score: float | None, fix: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"id": cve, "package": package, "version": "1.0", "fix_version": fix,
                            "severity": severity, "description": f"about {cve}",
                            "links": [f"https://example.com/{cve}"]}  # fmt: skip
    if score is not None:
        item["preferred_cvss"] = {"score_v3": score, "vector_v3": "CVSS:3.1/AV:N"}
    return item


C1 = finding("CVE-2026-1001", "openssl", "Critical", 9.8, fix="3.0.12")
H1 = finding("CVE-2026-1002", "zlib", "High", 7.5, fix="1.3")
M1 = finding("CVE-2026-1003", "bash", "Medium", 5.0)
L1 = finding("CVE-2026-1004", "tar", "Low", 3.1)
U1 = finding("CVE-2026-1005", "curl", "Unknown", None)
N1 = finding("CVE-2026-1006", "gzip", "Negligible", 1.0, fix="1.13")


def _scan(hub: Scanning, tag: str, findings: list[dict[str, Any]], seed: bytes) -> str:
    digest = hub.push_tagged(tag, seed)
    hub.fake.by_digest[digest] = findings
    response = hub.scan(tag)
    assert response.status_code == 202, response.get_data()
    assert hub.wait(tag)["scan_status"] == "Success"
    return digest


def _summary(hub: Scanning, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = hub.get(f"{SUMMARY}?{query}")
    assert response.status_code == 200, response.get_data()
    return dict(response.get_json())


def _vul(hub: Scanning, q: str | None = None, **params: str) -> tuple[list[dict[str, Any]], Any]:
    parts = [f"q={quote(q)}"] if q is not None else []
    parts += [f"{k}={v}" for k, v in params.items()]
    response = hub.get(f"{VUL}?{'&'.join(parts)}")
    assert response.status_code == 200, response.get_data()
    return list(response.get_json()), response.headers


@pytest.fixture
def three(scanning: Scanning) -> dict[str, str]:
    """Three scanned images in library/app: a (C1 H1 M1), b (H1 L1 U1 N1), c (clean)."""
    return {
        "a": _scan(scanning, "a", [C1, H1, M1], b"a"),
        "b": _scan(scanning, "b", [H1, L1, U1, N1], b"b"),
        "c": _scan(scanning, "c", [], b"c"),
    }


def test_summary_counts_rankings_rescan_and_delete(scanning: Scanning, three: dict[str, str]) -> None:
    assert _summary(scanning) == {
        "critical_cnt": 1, "high_cnt": 2, "medium_cnt": 1, "low_cnt": 1, "none_cnt": 1, "unknown_cnt": 1,
        "total_vuls": 7, "scanned_cnt": 3, "total_artifact": 3, "fixable_cnt": 4,
    }  # fmt: skip
    full = _summary(scanning, with_dangerous_cve="true", with_dangerous_artifact="true")
    assert [c["cve_id"] for c in full["dangerous_cves"]] == [C1["id"], H1["id"], M1["id"], L1["id"], N1["id"]]
    assert full["dangerous_cves"][0] == {"cve_id": C1["id"], "severity": "Critical", "cvss_score_v3": 9.8,
                                         "desc": "about CVE-2026-1001", "package": "openssl",
                                         "version": "1.0"}  # fmt: skip
    assert full["dangerous_artifacts"] == [
        {"project_id": 1, "repository_name": "library/app", "digest": three["a"], "critical_cnt": 1,
         "high_cnt": 1, "medium_cnt": 1},
        {"project_id": 1, "repository_name": "library/app", "digest": three["b"], "critical_cnt": 0,
         "high_cnt": 1, "medium_cnt": 0},
    ]  # fmt: skip

    # A re-scan replaces b's share: now two Critical findings, nothing else.
    scanning.fake.by_digest[three["b"]] = [C1, finding("CVE-2026-2001", "git", "Critical", 9.1)]
    assert scanning.scan("b").status_code == 202
    assert scanning.wait("b")["scan_status"] == "Success"
    after = _summary(scanning, with_dangerous_artifact="true")
    assert after == {
        "critical_cnt": 3, "high_cnt": 1, "medium_cnt": 1, "low_cnt": 0, "total_vuls": 5, "scanned_cnt": 3,
        "total_artifact": 3, "fixable_cnt": 3,
        "dangerous_artifacts": [
            {"project_id": 1, "repository_name": "library/app", "digest": three["b"], "critical_cnt": 2,
             "high_cnt": 0, "medium_cnt": 0},
            {"project_id": 1, "repository_name": "library/app", "digest": three["a"], "critical_cnt": 1,
             "high_cnt": 1, "medium_cnt": 0 + 1},
        ],
    }  # fmt: skip

    # Deleting a takes its share and the artifact away.
    assert scanning.delete(f"{API}/projects/library/repositories/app/artifacts/a").status_code == 200
    from chalicelib.wiring import services

    services().events.drain()
    assert _summary(scanning) == {"critical_cnt": 2, "medium_cnt": 0, "low_cnt": 0, "total_vuls": 2,
                                  "scanned_cnt": 2, "total_artifact": 2, "fixable_cnt": 1}  # fmt: skip
    items, headers = _vul(scanning)
    assert headers["X-Total-Count"] == "2" and {i["digest"] for i in items} == {three["b"]}


def test_vul_list_filters_paging_and_tags(scanning: Scanning, three: dict[str, str]) -> None:
    items, headers = _vul(scanning, page_size="100")
    assert headers["X-Total-Count"] == "7" and "Link" not in headers
    # Harbor's order: CVSS v3 descending, findings without a score last.
    assert [i["cve_id"] for i in items] == [C1["id"], H1["id"], H1["id"], M1["id"], L1["id"], N1["id"], U1["id"]]
    first = items[0]
    assert first == {"project_id": 1, "repository_name": "library/app", "digest": three["a"], "cve_id": C1["id"],
                     "severity": "Critical", "cvss_v3_score": 9.8, "package": "openssl", "version": "1.0",
                     "fixed_version": "3.0.12", "desc": "about CVE-2026-1001",
                     "links": ["https://example.com/CVE-2026-1001"]}  # fmt: skip
    assert "tags" not in first

    def ids(q: str) -> list[tuple[str, str]]:
        found, _ = _vul(scanning, q, page_size="100")
        return [(i["cve_id"], i["digest"]) for i in found]

    a, b = three["a"], three["b"]
    assert ids(f"cve_id={H1['id']}") == [(H1["id"], a), (H1["id"], b)] or ids(f"cve_id={H1['id']}") == [
        (H1["id"], b), (H1["id"], a)]  # fmt: skip
    assert ids("severity=Critical") == [(C1["id"], a)]
    assert ids("package=tar") == [(L1["id"], b)]
    assert ids(f"digest={b}") == [(H1["id"], b), (L1["id"], b), (N1["id"], b), (U1["id"], b)]
    assert len(ids("repository_name=library/app")) == 7
    assert ids("repository_name=library/other") == []
    assert len(ids("project_id=1")) == 7 and ids("project_id=2") == []
    assert ids("cvss_score_v3=[7~9.8]") == [(C1["id"], a), (H1["id"], a), (H1["id"], b)] or ids(
        "cvss_score_v3=[7~9.8]") == [(C1["id"], a), (H1["id"], b), (H1["id"], a)]  # fmt: skip
    assert ids("cvss_score_v3=[3.1~5]") == [(M1["id"], a), (L1["id"], b)]
    assert ids("cvss_score_v3=[~2]") == [(N1["id"], b)]
    assert ids("tag=a") == [(C1["id"], a), (H1["id"], a), (M1["id"], a)]
    assert ids("tag=nope") == []
    assert ids(f"severity=High,digest={a}") == [(H1["id"], a)]
    assert ids("status=fixed") == []

    # Paging: Harbor's headers; a page past the end is empty.
    page1, headers = _vul(scanning, page="1", page_size="3")
    assert [i["cve_id"] for i in page1] == [C1["id"], H1["id"], H1["id"]]
    assert headers["X-Total-Count"] == "7" and 'rel="next"' in headers["Link"] and "page=2" in headers["Link"]
    page3, headers = _vul(scanning, page="3", page_size="3")
    assert [i["cve_id"] for i in page3] == [U1["id"]] and 'rel="prev"' in headers["Link"]
    assert _vul(scanning, page="4", page_size="3")[0] == []
    # tune_count: the real count below Harbor's 1,000.
    assert _vul(scanning, tune_count="true")[1]["X-Total-Count"] == "7"
    # with_tag adds the artifact's tags.
    tagged, _ = _vul(scanning, "severity=Critical", with_tag="true")
    assert tagged[0]["tags"] == ["a"]


def test_without_a_default_scanner_the_hub_is_empty(registry: LiveRegistry) -> None:
    registry.push_image("library/app", "v1", layers=1, seed=b"x")
    summary = registry.get(f"{SUMMARY}?with_dangerous_cve=true&with_dangerous_artifact=true")
    assert summary.status_code == 200
    assert summary.get_json() == {"critical_cnt": 0, "medium_cnt": 0, "low_cnt": 0, "total_vuls": 0,
                                  "scanned_cnt": 0, "total_artifact": 0, "fixable_cnt": 0}  # fmt: skip
    listed = registry.get(VUL)
    assert listed.status_code == 200 and listed.get_json() == [] and listed.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{VUL}?q=nope=1", 400),
        (f"{VUL}?q=cve_id=~CVE", 400),
        (f"{VUL}?q=cve_id={{a b}}", 400),
        (f"{VUL}?q=severity=[1~2]", 400),
        (f"{VUL}?q=cvss_score_v3=7", 400),
        (f"{VUL}?q=cvss_score_v3=[x~2]", 400),
        (f"{VUL}?q=cvss_score_v3=[9~2]", 400),
        (f"{VUL}?q=project_id=abc", 400),
        (f"{VUL}?q=cve_id=a,cve_id=b", 400),
        (f"{VUL}?q=(((", 400),
        (f"{VUL}?q=" + "a" * 2000, 400),
        (f"{VUL}?page=0", 400),
        (f"{VUL}?page=-1", 400),
        (f"{VUL}?page_size=0", 400),
        (f"{VUL}?page_size=100000", 400),
        (f"{VUL}?page=99999999999999999999999", 400),
        (f"{VUL}?tune_count=maybe", 400),
        (f"{VUL}?with_tag=2x", 400),
        (f"{SUMMARY}?with_dangerous_cve=yes-please", 400),
        (f"{SUMMARY}?with_dangerous_artifact=%00", 400),
    ],
)
def test_bad_input_is_a_harbor_400(scanning: Scanning, path: str, status: int) -> None:
    response = scanning.get(path)
    assert response.status_code == status, (path, response.get_data()[:300])
    assert response.get_json()["errors"][0]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("path", [SUMMARY, VUL])
def test_credentials_and_permission(scanning: Scanning, path: str) -> None:
    from tests.functional.test_registries import make_user

    assert scanning.get(path, auth=None).status_code == 401
    assert scanning.get(path, auth=("admin", "wrong-password")).status_code == 401
    user = make_user(scanning, "hubdev")
    refused = scanning.get(path, auth=user)
    assert refused.status_code == 403 and refused.get_json()["errors"][0]["code"] == "FORBIDDEN"
