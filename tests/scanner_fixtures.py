"""Fixture images and a fixture OSV database for the built-in scanner adapter's tests.

The database is written so that each image holds exactly the vulnerabilities in `DEBIAN_FINDINGS`,
`ALPINE_FINDINGS` and `MIXED_FINDINGS`; every other record is a near miss that a wrong rule would report: a fix
equal to the installed version, a removed dpkg package, another Debian release, a `limit` below
the installed version, a `last_affected` below it, a withdrawn record, a record of an ecosystem the
adapter does not read, a package deleted by a whiteout in a later layer, and a file that is not JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

HIGH_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
CRITICAL_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
LODASH_VECTOR = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 8.1


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(files: dict[str, bytes | None]) -> bytes:
    """A tar stream; a None value is a directory (whiteouts are files named `.wh.<name>`)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


@dataclass(frozen=True)
class Image:
    config: bytes
    layers: list[tuple[str, bytes]]  # (media type, blob)
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        return {sha256(blob): blob for blob in [self.config, *(b for _, b in self.layers)]}


def image(layers: list[tuple[str, bytes]], tars: list[bytes]) -> Image:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]}},
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": t, "digest": sha256(b), "size": len(b)} for t, b in layers],
        },
        sort_keys=True,
    ).encode()
    return Image(config, layers, manifest)


# The Debian image: dpkg, a Python dist-info and egg-info, npm packages; layer 2 whiteouts Django.

DPKG_STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.9-1
Description: Secure Sockets Layer toolkit
 a continuation line

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.9-1

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: bash
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""

DEBIAN_BASE = {
    "etc": None,
    "etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "var/lib/dpkg/status": DPKG_STATUS,
    "usr/lib/python3/dist-packages/requests-2.30.0.dist-info/METADATA": (
        b"Metadata-Version: 2.1\nName: Requests\nVersion: 2.30.0\nLicense: Apache 2.0\n\nlong text\n"
    ),
    "usr/local/lib/python3.11/site-packages/Django-4.2.egg-info/PKG-INFO": b"Name: Django\nVersion: 4.2\n",
    "usr/lib/node_modules/minimist/package.json": b'{"name": "minimist", "version": "1.2.5"}',
}
DEBIAN_TOP = {
    "./usr/local/lib/python3.11/site-packages/.wh.Django-4.2.egg-info": b"",
    "./usr/lib/node_modules/lodash/package.json": b'{"name": "lodash", "version": "4.17.20", "license": "MIT"}',
    "./usr/lib/node_modules/@acme/widget/package.json": b'{"name": "@acme/widget", "version": "1.2.0"}',
    "./usr/lib/node_modules/lodash/node_modules/broken/package.json": b"{not json",
}


def debian_image() -> Image:
    base, top = tar_layer(DEBIAN_BASE), tar_layer(DEBIAN_TOP)
    return image([(LAYER_GZIP, gzipped(base)), (LAYER_TAR, top)], [base, top])


# (id, package, version, severity, fix_version)
DEBIAN_FINDINGS = {
    ("CVE-2026-1001", "libssl3", "3.0.9-1", "High", "3.0.11-1~deb12u2"),
    ("CVE-2026-1001", "openssl", "3.0.9-1", "High", "3.0.11-1~deb12u2"),
    ("CVE-2026-1004", "bash", "5.2.15-2+b2", "Unknown", ""),
    ("CVE-2026-1003", "requests", "2.30.0", "Medium", "2.31.0"),
    ("CVE-2026-1005", "lodash", "4.17.20", "High", "4.17.21"),
}

# The Alpine image: one zstd layer with an apk database.

APK_INSTALLED = b"""C:Q1abc=
P:libcrypto3
V:3.1.1-r0
A:x86_64
o:openssl
L:Apache-2.0

P:musl
V:1.2.4-r1
A:x86_64
o:musl
L:MIT

P:busybox
V:1.36.1-r2
A:x86_64
o:busybox
"""


def alpine_image() -> Image:
    base = tar_layer(
        {
            "etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.18.4\n',
            "lib/apk/db/installed": APK_INSTALLED,
        }
    )
    return image([(LAYER_ZSTD, zstd(base))], [base])


ALPINE_FINDINGS = {("CVE-2026-1002", "libcrypto3", "3.1.1-r0", "Critical", "3.1.4-r0")}

# The mixed image: the Debian base (dpkg, Python, npm), then a zstd layer adding an apk database
# with its `etc/alpine-release` (not an os-release: the image stays a Debian one), then the Debian
# top layer that whiteouts Django. Its findings are both images' findings; the apk packages are
# matched in Alpine's ecosystem, never Debian's.

ALPINE_EXTRA = {
    "etc/alpine-release": b"3.18.4\n",
    "lib/apk/db/installed": APK_INSTALLED,
}


def mixed_image() -> Image:
    base, apk, top = tar_layer(DEBIAN_BASE), tar_layer(ALPINE_EXTRA), tar_layer(DEBIAN_TOP)
    layers = [(LAYER_GZIP, gzipped(base)), (LAYER_ZSTD, zstd(apk)), (LAYER_TAR, top)]
    return image(layers, [base, apk, top])


MIXED_FINDINGS = DEBIAN_FINDINGS | ALPINE_FINDINGS


def rpm_image() -> Image:
    base = tar_layer(
        {
            "etc/os-release": b'ID="fedora"\nVERSION_ID=40\n',
            "var/lib/rpm/rpmdb.sqlite": b"SQLite format 3\x00" + b"\x00" * 100,
        }
    )
    return image([(LAYER_GZIP, gzipped(base))], [base])


# The OSV database.


def _record(osv_id: str, affected: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"schema_version": "1.6.0", "id": osv_id, "modified": "2026-11-01T00:00:00Z", "affected": affected, **extra}


def _range(*events: dict[str, str], kind: str = "ECOSYSTEM") -> list[dict[str, Any]]:
    return [{"type": kind, "events": list(events)}]


def osv_records() -> dict[str, dict[str, Any]]:
    debian = {"ecosystem": "Debian:12"}
    return {
        "openssl.json": _record(
            "CVE-2026-1001",
            [
                {
                    "package": {**debian, "name": "openssl"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}),
                }
            ],
            summary="openssl: a made-up flaw",
            severity=[{"type": "CVSS_V3", "score": HIGH_VECTOR}],
            references=[{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/CVE-2026-1001"}],
        ),
        "zlib.json": _record(
            "CVE-2026-1010",
            [
                {
                    "package": {**debian, "name": "zlib"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-1"}),
                }
            ],
        ),
        "bash.json": _record(
            "CVE-2026-1004",
            [
                {
                    "package": {**debian, "name": "bash"},
                    "ranges": _range({"introduced": "0"}, {"last_affected": "5.2.15-2+b2"}),
                }
            ],
        ),
        "oldpkg.json": _record(
            "CVE-2026-1011", [{"package": {**debian, "name": "oldpkg"}, "ranges": _range({"introduced": "0"})}]
        ),
        "tzdata-bullseye.json": _record(
            "CVE-2026-1012",
            [{"package": {"ecosystem": "Debian:11", "name": "tzdata"}, "ranges": _range({"introduced": "0"})}],
        ),
        "openssl-withdrawn.json": _record(
            "CVE-2026-1999",
            [{"package": {**debian, "name": "openssl"}, "ranges": _range({"introduced": "0"})}],
            withdrawn="2026-11-02T00:00:00Z",
        ),
        "requests.json": _record(
            "GHSA-aaaa-bbbb-cccc",
            [
                {
                    "package": {"ecosystem": "PyPI", "name": "requests"},
                    "ranges": _range({"introduced": "2.3.0"}, {"fixed": "2.31.0"}),
                }
            ],
            aliases=["CVE-2026-1003"],
            database_specific={"severity": "MODERATE", "cwe_ids": ["CWE-200"]},
        ),
        "django.json": _record(
            "PYSEC-2026-5", [{"package": {"ecosystem": "PyPI", "name": "django"}, "versions": ["4.2"]}]
        ),
        "lodash.json": _record(
            "GHSA-dddd-eeee-ffff",
            [
                {
                    "package": {"ecosystem": "npm", "name": "lodash"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "4.17.21"}, kind="SEMVER"),
                    "severity": [{"type": "CVSS_V3", "score": LODASH_VECTOR}],
                }
            ],
            aliases=["CVE-2026-1005"],
            database_specific={"severity": "CRITICAL"},
        ),
        "widget.json": _record(
            "GHSA-gggg-hhhh-iiii",
            [
                {
                    "package": {"ecosystem": "npm", "name": "@acme/widget"},
                    "ranges": _range({"introduced": "1.0.0"}, {"last_affected": "1.1.9"}),
                }
            ],
        ),
        "minimist.json": _record(
            "GHSA-jjjj-kkkk-llll",
            [
                {
                    "package": {"ecosystem": "npm", "name": "minimist"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "1.2.6"}, {"limit": "1.2.4"}),
                }
            ],
        ),
        "alpine/openssl.json": _record(
            "CVE-2026-1002",
            [
                {
                    "package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "3.1.4-r0"}),
                }
            ],
            severity=[{"type": "CVSS_V3", "score": CRITICAL_VECTOR}],
        ),
        "alpine/musl.json": _record(
            "CVE-2026-1013",
            [
                {
                    "package": {"ecosystem": "Alpine:v3.18", "name": "musl"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "1.2.4-r0"}),
                }
            ],
        ),
        "alpine/busybox.json": _record(
            "CVE-2026-1014",
            [
                {
                    "package": {"ecosystem": "Alpine:v3.18", "name": "busybox"},
                    "ranges": _range({"introduced": "0"}, {"fixed": "1.36.1-r2"}),
                }
            ],
        ),
        "maven.json": _record(
            "GHSA-mmmm-nnnn-oooo",
            [{"package": {"ecosystem": "Maven", "name": "org.example:lib"}, "ranges": _range({"introduced": "0"})}],
        ),
    }


def write_osv_directory(directory: Path) -> Path:
    for name, record in osv_records().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    (directory / "broken.json").write_text("{ this is not JSON")
    return directory


def write_osv_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, record in osv_records().items():
            archive.writestr(name, json.dumps(record))
        archive.writestr("broken.json", "{ this is not JSON")
    return path


def findings_of(report: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (v["id"], v["package"], v["version"], v["severity"], v.get("fix_version", ""))
        for v in report.get("vulnerabilities", [])
    }
