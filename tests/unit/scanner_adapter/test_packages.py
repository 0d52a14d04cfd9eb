"""Reading the OS release and the package databases, including malformed ones; SBOMs valid
against the SPDX 2.3 and CycloneDX 1.6 JSON schemas."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chalicelib.scanner_adapter import osv, packages, report, sbom
from chalicelib.scanner_adapter.layers import FileSystem, Limits, apply_layer
from tests.scanner_fixtures import (
    MIXED_FINDINGS,
    alpine_image,
    debian_image,
    mixed_image,
    rpm_image,
    sha256,
    tar_layer,
    write_osv_zip,
)

ARTIFACT = {
    "repository": "library/app",
    "digest": "sha256:" + "d" * 64,
    "mime_type": "application/vnd.oci.image.manifest.v1+json",
}
CREATED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def inventory_of(*tars: bytes) -> packages.Inventory:
    filesystem = FileSystem()
    for blob in tars:
        apply_layer(filesystem, io.BytesIO(blob), sha256(blob), packages.wanted, Limits())
    return packages.inventory(filesystem)


def image_inventory(image: Any) -> packages.Inventory:
    return inventory_of(*(blob for _, blob in image.layers))


def test_the_debian_fixture() -> None:
    found = image_inventory(debian_image())
    assert found.os is not None and found.os.ecosystem == "Debian:12"
    by_name = {p.name: p for p in found.packages}
    assert set(by_name) == {
        "libssl3",
        "openssl",
        "zlib1g",
        "bash",
        "tzdata",
        "requests",
        "lodash",
        "@acme/widget",
        "minimist",
    }
    assert "oldpkg" not in by_name  # deinstalled: config files only
    assert "django" not in by_name  # whited out by the second layer
    libssl = by_name["libssl3"]
    assert (libssl.match_name, libssl.match_version) == ("openssl", "3.0.9-1")
    assert libssl.purl == "pkg:deb/debian/libssl3@3.0.9-1?arch=amd64&distro=debian-12&upstream=openssl"
    assert (by_name["bash"].match_version, by_name["bash"].version) == ("5.2.15-2", "5.2.15-2+b2")
    assert by_name["requests"].purl == "pkg:pypi/requests@2.30.0"
    assert by_name["@acme/widget"].purl == "pkg:npm/%40acme/widget@1.2.0"
    assert found.problems == {"package.json that is not JSON": 1}
    assert found.not_analysed == []


def test_the_alpine_fixture() -> None:
    found = image_inventory(alpine_image())
    assert found.os is not None and found.os.ecosystem == "Alpine:v3.18"
    crypto = next(p for p in found.packages if p.name == "libcrypto3")
    assert (crypto.match_name, crypto.version, crypto.licenses) == ("openssl", "3.1.1-r0", "Apache-2.0")


def test_an_apk_database_in_a_debian_image_is_matched_as_alpine(tmp_path: Path) -> None:
    """The mixed fixture: Debian's os-release, a dpkg status, and an apk database with its
    alpine-release. Each database is matched against its own family's advisories."""
    found = image_inventory(mixed_image())
    assert found.os is not None and found.os.ecosystem == "Debian:12"
    by_name = {p.name: p for p in found.packages}
    assert by_name["libssl3"].ecosystem == "Debian:12"
    crypto = by_name["libcrypto3"]
    assert (crypto.ecosystem, crypto.match_name) == ("Alpine:v3.18", "openssl")
    assert crypto.purl == "pkg:apk/alpine/libcrypto3@3.1.1-r0?arch=x86_64&distro=alpine-3.18.4&upstream=openssl"
    assert found.not_analysed == []
    findings = report.find(found, osv.load(write_osv_zip(tmp_path / "osv.zip")))
    got = {(f.id, f.package.name, f.package.version, f.severity, f.match.fix_version) for f in findings}
    assert got == MIXED_FINDINGS  # not CVE-2026-1001 (Debian's openssl) on libcrypto3, and Alpine's found


def test_os_packages_of_the_other_family_without_their_release_are_said_not_analysed() -> None:
    apk = b"P:libcrypto3\nV:3.1.1-r0\no:openssl\n"
    found = inventory_of(tar_layer({"etc/os-release": b"ID=debian\nVERSION_ID=12\n", "lib/apk/db/installed": apk}))
    assert [(p.name, p.ecosystem) for p in found.packages] == [("libcrypto3", "")]
    assert found.not_analysed == ["1 OS packages of an unrecognised OS release (unknown)"]
    dpkg = b"Package: a\nVersion: 1\n"
    found = inventory_of(tar_layer({"etc/alpine-release": b"3.19.1\n", "etc/debian_version": b"11.8\n",
                                    "var/lib/dpkg/status": dpkg}))  # fmt: skip
    assert found.os is not None and found.os.ecosystem == "Alpine:v3.19"
    assert [(p.name, p.ecosystem) for p in found.packages] == [("a", "Debian:11")]


def test_an_rpm_database_is_said_not_analysed() -> None:
    found = image_inventory(rpm_image())
    assert found.packages == [] and found.not_analysed and found.not_analysed[0].startswith("rpm packages")


@pytest.mark.parametrize(
    ("files", "ecosystem"),
    [
        (
            {"usr/lib/os-release": b'ID="ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.3 LTS (Jammy)"\n'},
            "Ubuntu:22.04:LTS",
        ),
        ({"etc/alpine-release": b"3.19.1\n"}, "Alpine:v3.19"),
        ({"etc/debian_version": b"11.8\n"}, "Debian:11"),
        ({"etc/os-release": b"ID=debian\n", "etc/debian_version": b"12.4\n"}, "Debian:12"),
        ({"etc/os-release": b"ID=arch\n"}, ""),
    ],
)
def test_os_detection(files: dict[str, bytes], ecosystem: str) -> None:
    found = inventory_of(tar_layer(dict(files)))
    assert found.os is not None and found.os.ecosystem == ecosystem


def test_os_packages_of_an_unknown_os_are_said_not_analysed() -> None:
    found = inventory_of(
        tar_layer({"etc/os-release": b"ID=arch\n", "var/lib/dpkg/status": b"Package: a\nVersion: 1\n"})
    )
    assert found.not_analysed == ["1 OS packages of an unrecognised OS release (arch)"]
    found = inventory_of(tar_layer({"var/lib/dpkg/status": b"Package: a\nVersion: 1\n"}))
    assert found.os is None and found.not_analysed == ["1 OS packages of an unrecognised OS release (unknown)"]


def test_malformed_databases_are_read_for_what_they_hold() -> None:
    found = inventory_of(
        tar_layer(
            {
                "etc/os-release": b"ID=debian\nVERSION_ID=12\n",
                "var/lib/dpkg/status": b"garbage line\nPackage: a\nVersion: 1.0-1\n\nPackage: noversion\n\n\xff\xfe\n",
                "var/lib/dpkg/status.d/distroless": b"Package: b\nVersion: 2.0\n",
                "usr/lib/python3/site-packages/x.dist-info/METADATA": b"Summary: no name\n",
                "usr/lib/python3/site-packages/y.egg-info": b"Name: y\nVersion: 1.0\n",
                "node_modules/z/package.json": b'["not", "an", "object"]',
                "node_modules/n/package.json": b'{"name": "n", "version": 7}',
            }
        )
    )
    assert sorted((p.kind, p.name) for p in found.packages) == [("deb", "a"), ("deb", "b"), ("pypi", "y")]
    assert found.problems == {
        "dpkg line that is not a field": 2,
        "dpkg entry without Package or Version": 1,
        "Python metadata without Name or Version": 1,
        "package.json without name or version": 2,
    }


def test_an_apk_database_with_bad_entries() -> None:
    found = inventory_of(
        tar_layer(
            {
                "etc/os-release": b"ID=alpine\nVERSION_ID=3.18.0\n",
                "lib/apk/db/installed": b"P:ok\nV:1-r0\n\nP:noversion\n\nrandom\n",
            }
        )
    )
    assert [p.name for p in found.packages] == ["ok"]
    assert found.problems == {"apk entry without P or V": 1, "apk line that is not a field": 1}


def test_only_package_manifests_directly_under_node_modules_count() -> None:
    assert packages.wanted("app/node_modules/a/package.json") == "read"
    assert packages.wanted("node_modules/@s/a/package.json") == "read"
    assert packages.wanted("app/package.json") is None
    assert packages.wanted("node_modules/a/lib/package.json") is None
    assert packages.wanted("usr/lib/python3/site-packages/a.dist-info/RECORD") is None


# SBOMs.


def _schema(name: str) -> dict[str, Any]:
    import lib4sbom

    root = Path(lib4sbom.__file__).parent / "schemas"
    return dict(json.loads((root / name).read_text()))


@pytest.mark.parametrize("image", [debian_image, alpine_image, rpm_image])
def test_spdx_is_valid_spdx_2_3(image: Any) -> None:
    found = image_inventory(image())
    document = sbom.spdx(found, ARTIFACT, "osv-lite-1.0.0", CREATED)
    jsonschema.Draft7Validator(_schema("spdx/2.3-schema.json")).validate(document)
    names = {p["name"] for p in document["packages"]}
    assert {p.name for p in found.packages} <= names
    purls = {ref["referenceLocator"] for p in document["packages"] for ref in p.get("externalRefs", [])}
    assert purls == {p.purl for p in found.packages}
    assert document == sbom.spdx(found, ARTIFACT, "osv-lite-1.0.0", CREATED)  # deterministic


@pytest.mark.parametrize("image", [debian_image, alpine_image, rpm_image])
def test_cyclonedx_is_valid_cyclonedx_1_6(image: Any) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    found = image_inventory(image())
    document = sbom.cyclonedx(found, ARTIFACT, "osv-lite-1.0.0", CREATED)
    assert document["specVersion"] == "1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    purls = {c.get("purl") for c in document["components"] if c["type"] == "library"}
    assert purls == {p.purl for p in found.packages}
    assert document == sbom.cyclonedx(found, ARTIFACT, "osv-lite-1.0.0", CREATED)  # deterministic


def test_an_unknown_sbom_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported SBOM media type"):
        sbom.build("text/plain", image_inventory(alpine_image()), ARTIFACT, "t", CREATED)
