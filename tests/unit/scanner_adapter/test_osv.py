"""OSV loading and matching: the schema's range evaluation per ecosystem, and bad records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.scanner_adapter import osv
from chalicelib.scanner_adapter.cvss import base_score, severity_of_score
from tests.scanner_fixtures import write_osv_directory, write_osv_zip


def index_of(tmp_path: Path, *records: dict[str, Any]) -> osv.OsvIndex:
    for number, record in enumerate(records):
        (tmp_path / f"{number}.json").write_text(json.dumps(record))
    return osv.load(tmp_path)


def record(ecosystem: str, name: str, *events: dict[str, str], kind: str = "ECOSYSTEM", **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events:
        affected["ranges"] = [{"type": kind, "events": list(events)}]
    affected.update(extra)
    return {"id": "OSV-1", "modified": "2026-01-01T00:00:00Z", "affected": [affected]}


def hit(index: osv.OsvIndex, ecosystem: str, name: str, version: str) -> tuple[bool, str]:
    found = index.matches(ecosystem, name, version)
    return (bool(found), found[0].fix_version if found else "")


@pytest.mark.parametrize(
    ("ecosystem", "events", "version", "expected"),
    [
        # dpkg ordering: ~ sorts before the release, epochs beat versions, +bN binNMUs after.
        ("Debian:12", [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}], "3.0.9-1", (True, "3.0.11-1~deb12u2")),
        ("Debian:12", [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}], "3.0.11-1~deb12u2", (False, "")),
        ("Debian:12", [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}], "3.0.11-1", (False, "")),
        ("Debian:12", [{"introduced": "0"}, {"fixed": "1:1.0-1"}], "2.0-1", (True, "1:1.0-1")),
        ("Debian:12", [{"introduced": "0"}, {"last_affected": "5.2-1"}], "5.2-1", (True, "")),
        ("Debian:12", [{"introduced": "0"}, {"last_affected": "5.2-1"}], "5.2-1+b1", (False, "")),
        # apk ordering: -rN revisions numerically, _rc before the release.
        ("Alpine:v3.18", [{"introduced": "0"}, {"fixed": "1.2.3-r10"}], "1.2.3-r9", (True, "1.2.3-r10")),
        ("Alpine:v3.18", [{"introduced": "0"}, {"fixed": "1.2.3-r0"}], "1.2.3_rc1-r0", (True, "1.2.3-r0")),
        ("Alpine:v3.18", [{"introduced": "0"}, {"fixed": "1.2.3-r0"}], "1.2.3-r1", (False, "")),
        # PEP 440: pre-releases before the release, introduced is inclusive.
        ("PyPI", [{"introduced": "2.0.0"}, {"fixed": "2.1"}], "2.0.0rc1", (False, "")),
        ("PyPI", [{"introduced": "2.0.0"}, {"fixed": "2.1"}], "2.0", (True, "2.1")),
        ("PyPI", [{"introduced": "2.0.0"}, {"fixed": "2.1"}], "2.1.0", (False, "")),
        # npm: SemVer pre-releases, two fixes: the smallest above the version is the fix.
        (
            "npm",
            [{"introduced": "0"}, {"fixed": "1.0.0"}, {"introduced": "2.0.0"}, {"fixed": "2.3.1"}],
            "2.2.0",
            (True, "2.3.1"),
        ),
        (
            "npm",
            [{"introduced": "0"}, {"fixed": "1.0.0"}, {"introduced": "2.0.0"}, {"fixed": "2.3.1"}],
            "1.5.0",
            (False, ""),
        ),
        ("npm", [{"introduced": "0"}, {"fixed": "1.0.0"}], "1.0.0-beta.2", (True, "1.0.0")),
        # limit: the range applies only below it.
        ("npm", [{"introduced": "0"}, {"fixed": "1.2.6"}, {"limit": "1.2.4"}], "1.2.5", (False, "")),
        ("npm", [{"introduced": "0"}, {"fixed": "1.2.6"}, {"limit": "1.2.4"}], "1.2.3", (True, "1.2.6")),
        ("npm", [{"introduced": "0"}, {"limit": "*"}], "9.9.9", (True, "")),
    ],
)
def test_ranges(tmp_path: Path, ecosystem: str, events: list[dict[str, str]], version: str, expected: Any) -> None:
    index = index_of(tmp_path, record(ecosystem, "pkg", *events))
    assert hit(index, ecosystem, "pkg", version) == expected


def test_a_semver_range_in_any_ecosystem_uses_semver(tmp_path: Path) -> None:
    index = index_of(tmp_path, record("npm", "pkg", {"introduced": "1.0.0"}, {"fixed": "1.10.0"}, kind="SEMVER"))
    assert hit(index, "npm", "pkg", "1.9.0") == (True, "1.10.0")  # 1.9 < 1.10 numerically, not as text


def test_a_versions_list_matches_exactly(tmp_path: Path) -> None:
    index = index_of(tmp_path, record("PyPI", "Django", versions=["4.2", "4.2.1"]))
    assert hit(index, "PyPI", "django", "4.2") == (True, "")
    assert hit(index, "PyPI", "django", "4.2.2") == (False, "")


def test_pypi_names_are_canonical_and_other_names_exact(tmp_path: Path) -> None:
    index = index_of(
        tmp_path, record("PyPI", "Zope.Interface", {"introduced": "0"}), record("npm", "Left-Pad", {"introduced": "0"})
    )
    assert hit(index, "PyPI", "zope-interface", "1")[0]
    assert not hit(index, "npm", "left-pad", "1.0.0")[0]


def test_ecosystem_strings_match_exactly(tmp_path: Path) -> None:
    index = index_of(tmp_path, record("Debian:11", "tzdata", {"introduced": "0"}))
    assert not hit(index, "Debian:12", "tzdata", "2024a-0")[0]
    assert hit(index, "Debian:11", "tzdata", "2024a-0")[0]


def test_unparseable_versions_are_not_guessed(tmp_path: Path) -> None:
    index = index_of(tmp_path, record("npm", "pkg", {"introduced": "0"}, {"fixed": "not a version"}))
    assert not hit(index, "npm", "pkg", "1.0.0")[0]  # a range that cannot be ordered is not evaluated
    index = index_of(tmp_path, record("npm", "other", {"introduced": "0"}, {"fixed": "2.0.0"}))
    assert not hit(index, "npm", "other", "garbage!")[0]


def test_the_fixture_set_loads_from_a_directory_and_a_zip_alike(tmp_path: Path) -> None:
    from_dir = osv.load(write_osv_directory(tmp_path / "dir"))
    from_zip = osv.load(write_osv_zip(tmp_path / "osv.zip"))
    for index in (from_dir, from_zip):
        assert index.records == 13
        assert index.skipped == {"not JSON": 1, "withdrawn": 1, "ecosystem Maven": 1}
        assert index.updated_at == "2026-11-01T00:00:00Z"
    assert set(from_dir.entries) == set(from_zip.entries)


def test_a_directory_of_zips_is_one_database(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    write_osv_zip(tmp_path / "exports" / "all.zip")
    (tmp_path / "exports" / "extra.json").write_text(json.dumps(record("npm", "extra", {"introduced": "0"})))
    index = osv.load(tmp_path / "exports")
    assert index.records == 14
    assert hit(index, "npm", "extra", "1.0.0")[0] and hit(index, "npm", "lodash", "4.17.20")[0]


def test_malformed_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    good = record("npm", "pkg", {"introduced": "0"})
    index = index_of(
        tmp_path,
        good,
        {"id": "", "affected": []},
        {"id": "X-1", "affected": "nope"},
        {"id": "X-2", "affected": [{"package": "nope"}, {"package": {"ecosystem": "npm"}}]},
        {"id": "X-3", "affected": [{"package": {"ecosystem": "npm", "name": "q"}, "ranges": [{"type": "GIT"}]}]},
        [1, 2, 3],
    )
    assert hit(index, "npm", "pkg", "1.0.0")[0]
    assert index.skipped["malformed"] == 5  # two bad records above, and the three list items
    assert not hit(index, "npm", "q", "1.0.0")[0]  # GIT ranges are ignored


def test_a_path_that_is_neither_directory_nor_zip_fails_to_load(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(Exception, match="zip"):
        osv.load(tmp_path / "plain.txt")


def test_a_single_cve_alias_becomes_the_reported_id() -> None:
    def advisory(osv_id: str, aliases: tuple[str, ...]) -> osv.Advisory:
        return osv.Advisory(osv_id, aliases, "", "", (), "", "", ())

    assert advisory("GHSA-1", ("CVE-2026-1",)).reported_id == "CVE-2026-1"
    assert advisory("GHSA-1", ("CVE-2026-1", "CVE-2026-2")).reported_id == "GHSA-1"
    assert advisory("PYSEC-1", ("GHSA-2",)).reported_id == "PYSEC-1"


@pytest.mark.parametrize(
    ("vector", "score", "severity"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "Critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "Medium"),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, "High"),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, "Critical"),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, "Low"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "Unknown"),
    ],
)
def test_cvss_v3_base_scores(vector: str, score: float, severity: str) -> None:
    assert base_score(vector) == score
    assert severity_of_score(score) == severity


@pytest.mark.parametrize(
    "vector", ["", "CVSS:2.0/AV:N", "CVSS:3.1/AV:N/AC:L", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"]
)
def test_incomplete_cvss_vectors_have_no_score(vector: str) -> None:
    assert base_score(vector) is None


def test_severity_sources_in_order(tmp_path: Path) -> None:
    from chalicelib.scanner_adapter.packages import Inventory, Package
    from chalicelib.scanner_adapter.report import find

    def advisory(osv_id: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": osv_id,
            "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": name}, "versions": ["1"]}],
            **extra,
        }

    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"  # 5.3
    index = index_of(
        tmp_path,
        advisory(
            "U-1", "a", severity=[{"type": "Ubuntu", "score": "negligible"}, {"type": "CVSS_V3", "score": vector}]
        ),
        advisory("U-2", "b", severity=[{"type": "Ubuntu", "score": "high"}], database_specific={"severity": "LOW"}),
        advisory("U-3", "c", severity=[{"type": "Ubuntu", "score": "negligible"}]),
        advisory("U-4", "d", severity=[{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}]),
    )

    def package(name: str) -> Package:
        return Package("deb", name, "1", "Ubuntu:22.04:LTS", name, "1", f"pkg:deb/ubuntu/{name}@1", "p", "l", "d")

    found = find(Inventory(None, [package(n) for n in "abcd"]), index)
    assert {f.package.name: f.severity for f in found} == {"a": "Medium", "b": "Low", "c": "Negligible", "d": "Unknown"}
