"""The security hub's sort keys and shares, and the scan data export's criteria and CSV rows."""

from __future__ import annotations

import pytest

from chalicelib.core import scanexport
from chalicelib.core import securityhub as hub


def test_finding_keys_sort_by_score_then_severity_and_unscored_last() -> None:
    items = [
        hub.HubItem("a", "p", "1", "Low", cvss=3.1),
        hub.HubItem("b", "p", "1", "Critical", cvss=9.8),
        hub.HubItem("c", "p", "1", "High", cvss=None),
        hub.HubItem("d", "p", "1", "High", cvss=7.5),
        hub.HubItem("e", "p", "1", "Critical", cvss=7.5),
        hub.HubItem("f", "p", "1", "Low", cvss=0.0),
        hub.HubItem("g", "p", "1", "Low", cvss=10.0),
    ]
    ordered = sorted(items, key=lambda i: i.sort_key("r", "sha256:x"))
    assert [i.cve_id for i in ordered] == ["g", "b", "e", "d", "a", "f", "c"]


def test_score_bounds_are_inclusive_and_may_be_open() -> None:
    low, high = hub.score_bounds(7.0, 9.8)
    inside = [hub.HubItem(x, "p", "1", "High", cvss=s).sort_key("r", "d") for x, s in (("a", 7.0), ("b", 9.8))]
    outside = [hub.HubItem(x, "p", "1", "High", cvss=s).sort_key("r", "d") for x, s in (("c", 6.99), ("d", 9.9))]
    assert all(low <= k <= high for k in inside)
    assert not any(low <= k <= high for k in outside)
    low, high = hub.score_bounds(None, 2.0)
    assert low <= hub.HubItem("e", "p", "1", "Low", cvss=0.0).sort_key("r", "d") <= high
    assert not low <= hub.HubItem("f", "p", "1", "Low", cvss=None).sort_key("r", "d") <= high


def test_counts_map_negligible_to_none_and_danger_orders_critical_first() -> None:
    counts = hub.counts_of({"Critical": 1, "Negligible": 2, "Unknown": 3, "Odd": 1})
    assert counts == {"critical_cnt": 1, "high_cnt": 0, "medium_cnt": 0, "low_cnt": 0, "none_cnt": 2,
                      "unknown_cnt": 4}  # fmt: skip
    assert hub.danger_key({"none_cnt": 5}) is None
    one_critical = hub.danger_key({"critical_cnt": 1})
    many_high = hub.danger_key({"high_cnt": 50})
    assert one_critical is not None and many_high is not None and one_critical < many_high


def test_items_are_deduplicated_and_capped() -> None:
    document = {"vulnerabilities": [
        {"id": "A", "package": "p", "version": "1", "severity": "High", "preferred_cvss": {"score_v3": 7.5}},
        {"id": "A", "package": "p", "version": "1", "severity": "High"},
        {"id": "B", "package": "p", "version": "1", "severity": "Low", "preferred_cvss": {"score_v3": True}},
        {"package": "no id"}, "not an object",
    ]}  # fmt: skip
    found = hub.items_of(document)
    assert [(i.cve_id, i.cvss) for i in found] == [("A", 7.5), ("B", None)]


def test_export_criteria_follow_harbor() -> None:
    ok = scanexport.criteria("j", [3], labels=[1, 1], repositories="{a,b}", tags="v*", cve_ids="")
    assert ok.project_id == 3 and ok.labels == (1,)
    for projects in ([], [1, 2], None):
        with pytest.raises(scanexport.CriteriaError, match="single project"):
            scanexport.criteria(None, projects, labels=None, repositories=None, tags=None, cve_ids=None)
    with pytest.raises(scanexport.CriteriaError, match="spaces"):
        scanexport.criteria(None, [1], labels=None, repositories="a, b", tags=None, cve_ids=None)
    assert scanexport.repository_selected(ok, "proj/a") and not scanexport.repository_selected(ok, "proj/c")
    assert scanexport.artifact_selected(ok, ["v1", "x"], [1]) and not scanexport.artifact_selected(ok, ["x"], [1])
    assert not scanexport.artifact_selected(ok, ["v1"], [2])


def test_export_rows_are_sanitised_and_filtered() -> None:
    report = {"vulnerabilities": [
        {"id": "CVE-1", "package": "@evil", "version": "-1", "severity": "High", "cwe_ids": ["CWE-1", 2],
         "vendor_attributes": {"b": 1, "a": 2}},
        {"id": "CVE-2", "package": "ok", "version": "1", "severity": "Low"},
    ]}  # fmt: skip
    rows = scanexport.rows("p/r", "sha256:d", "+Trivy", report, "CVE-1")
    assert rows == [["p/r", "sha256:d", "CVE-1", "'@evil", "'-1", "", "High", "CWE-1", '{"a":2,"b":1}', "'+Trivy"]]
    assert scanexport.encode(rows, header=True).decode().splitlines()[0] == ",".join(scanexport.HEADER)
