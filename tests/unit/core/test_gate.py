"""The pull gate's rules (Harbor's `vulnerable` middleware), without AWS."""

from __future__ import annotations

import pytest

from chalicelib.core import allowlist, gate
from chalicelib.core.gate import ScanFacts


@pytest.mark.parametrize(("setting", "expected"), [
    ("none", "None"), ("NONE", "None"), ("negligible", "None"), ("low", "Low"), ("Medium", "Medium"),
    ("high", "High"), ("critical", "Critical"), (None, "Unknown"), ("", "Unknown"), ("extreme", "Unknown"),
])  # fmt: skip
def test_threshold_parses_like_harbor(setting: str | None, expected: str) -> None:
    assert gate.threshold(setting) == expected


def test_severity_codes() -> None:
    assert [gate.severity_code(n) for n in ("None", "Unknown", "Negligible", "Low", "Medium", "High", "Critical")] == [
        0, 0, 1, 2, 3, 4, 5]  # fmt: skip
    assert gate.severity_code("Bogus") == 99 and gate.severity_code(None) == 99


def _decide(facts: ScanFacts | None, setting: str | None = "high", *, scannable: bool = True, index: bool = False,
            kind: str = "IMAGE", allowed: frozenset[str] = frozenset()) -> gate.Denial | None:  # fmt: skip
    return gate.decide(setting=setting, scannable=scannable, is_index=index, kind=kind, facts=facts,
                       allowlisted=allowed)  # fmt: skip


HIGH = ScanFacts("Success", "High", 3, {"CVE-1": "High", "CVE-2": "Low", "CVE-3": "High"})


def test_no_report_refuses_only_a_scannable_artifact() -> None:
    denial = _decide(None)
    assert denial is not None and "without vulnerability scanning" in denial.message and '"High"' in denial.message
    assert _decide(None, scannable=False) is None


def test_an_image_index_passes_but_not_without_a_report() -> None:
    assert _decide(ScanFacts("Error"), index=True) is None
    assert _decide(ScanFacts("Error"), index=True, kind="CNAB") is None
    assert _decide(ScanFacts("Error"), index=True, kind="UNKNOWN") is not None
    assert _decide(None, index=True) is not None


@pytest.mark.parametrize("status", ["Pending", "Running", "Error", "Stopped", "Scheduled"])
def test_a_scan_that_did_not_succeed_refuses(status: str) -> None:
    denial = _decide(ScanFacts(status))
    assert denial is not None and f'with "{status}" status' in denial.message


def test_threshold_comparison_and_message() -> None:
    denial = _decide(HIGH)
    assert denial is not None
    assert denial.message.startswith(
        "current image with 3 vulnerabilities cannot be pulled due to configured "
        'policy in \'Prevent images with vulnerability severity of "High" or higher'
    )
    assert denial.message.endswith("through configuring the CVE allowlist.")
    assert _decide(HIGH, "critical") is None
    one = _decide(ScanFacts("Success", "Low", 1, {"CVE-2": "Low"}), "low")
    assert one is not None and "with 1 vulnerability cannot" in one.message


def test_no_threshold_blocks_any_finding_even_unknown() -> None:
    unknown = ScanFacts("Success", "Unknown", 1, {"CVE-9": "Unknown"})
    assert _decide(unknown, None) is not None and _decide(unknown, "none") is not None
    assert _decide(unknown, "low") is None
    assert _decide(ScanFacts("Success", "Negligible", 1, {"CVE-9": "Negligible"}), "low") is None
    assert _decide(ScanFacts("Success", "None", 0, {}), None) is None  # a clean image passes


def test_allowlisted_findings_are_ignored() -> None:
    assert _decide(HIGH, allowed=frozenset({"CVE-1", "CVE-3"})) is None
    partly = _decide(HIGH, "low", allowed=frozenset({"CVE-1", "CVE-3"}))
    assert partly is not None and "with 1 vulnerability" in partly.message
    still = _decide(HIGH, allowed=frozenset({"CVE-1"}))
    assert still is not None and "with 2 vulnerabilities" in still.message
    assert _decide(HIGH, allowed=frozenset({"cve-1", "cve-3"})) is not None  # case-sensitive, as Harbor
    unrelated = _decide(HIGH, allowed=frozenset({"CVE-77"}))
    assert unrelated is not None and "with 3 vulnerabilities" in unrelated.message


def test_an_allowlist_needs_the_ids_when_the_summary_kept_none() -> None:
    facts = ScanFacts("Success", "High", 900, None)
    assert _decide(facts) is not None  # nothing allowlisted: the summary answers
    with pytest.raises(LookupError):
        _decide(facts, allowed=frozenset({"CVE-1"}))


def test_allowlist_parse_expiry_and_effective_list() -> None:
    parsed = allowlist.parse({"items": [{"cve_id": " CVE-1 "}, {"cve_id": "GHSA-1"}], "expires_at": 100})
    assert parsed.items == ("CVE-1", "GHSA-1")
    assert parsed.active_ids(99) == {"CVE-1", "GHSA-1"} and parsed.active_ids(100) == frozenset()
    assert allowlist.parse({"items": []}).active_ids(10**12) == frozenset()
    for bad in ({"items": [{"cve_id": "a"}, {"cve_id": "a "}]}, {"items": [{"cve_id": "\t"}]}, {"items": {}},
                {"expires_at": 1.5}, {"expires_at": False}):  # fmt: skip
        with pytest.raises(allowlist.AllowlistInvalid):
            allowlist.parse(bad)
    system, own = allowlist.CveAllowlist(("S",)), allowlist.CveAllowlist(("P",))
    assert allowlist.effective({}, own, system) is system
    assert allowlist.effective({"reuse_sys_cve_allowlist": "true"}, own, system) is system
    assert allowlist.effective({"reuse_sys_cve_allowlist": "false"}, own, system) is own
