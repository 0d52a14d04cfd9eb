"""What is installed in an image: the OS release and the dpkg, apk, Python and npm package
databases, read from the files the layer walk kept.

Debian, Ubuntu and Alpine advisories name the *source* package (dpkg `Source:`, apk `o:`), so a
package is matched by its source name and version and reported by its binary name, as Trivy
reports it. A database that cannot be read in part is read for what it holds (a malformed
paragraph or manifest is skipped and counted in `Inventory.problems`); rpm databases are only
detected (`Inventory.not_analysed`), never read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from email.parser import HeaderParser

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from chalicelib.scanner_adapter.layers import MARK, READ, FileSystem, FoundFile

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
ALPINE_RELEASE = "etc/alpine-release"
DEBIAN_VERSION = "etc/debian_version"
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_DIR = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
RPM_DATABASES = (
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/Packages.db",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
)
_PYTHON_DIRS = ("site-packages/", "dist-packages/")
_NPM_MANIFEST = re.compile(r"(^|/)node_modules/(@[^/]+/)?[^/@][^/]*/package\.json$")


def wanted(path: str) -> str | None:
    """Which files the layer walk keeps: READ the databases, MARK the rpm ones."""
    if path in OS_RELEASE or path in (ALPINE_RELEASE, DEBIAN_VERSION, DPKG_STATUS, APK_INSTALLED):
        return READ
    if path.startswith(DPKG_STATUS_DIR) and "/" not in path[len(DPKG_STATUS_DIR) :]:
        return READ
    if path in RPM_DATABASES:
        return MARK
    if any(d in path for d in _PYTHON_DIRS) and _python_metadata(path):
        return READ
    if _NPM_MANIFEST.search(path):
        return READ
    return None


def _python_metadata(path: str) -> bool:
    parent, _, base = path.rpartition("/")
    return (
        (base == "METADATA" and parent.endswith(".dist-info"))
        or (base == "PKG-INFO" and parent.endswith(".egg-info"))
        or base.endswith(".egg-info")
    )


@dataclass(frozen=True, slots=True)
class OperatingSystem:
    id: str  # debian, ubuntu, alpine, ...
    version_id: str
    name: str
    ecosystem: str  # the OSV ecosystem of its packages ("Debian:12"), "" when not one we match


@dataclass(frozen=True, slots=True)
class Package:
    kind: str  # deb | apk | pypi | npm
    name: str
    version: str
    ecosystem: str  # OSV ecosystem, "" when the OS is not recognised
    match_name: str  # the name advisories use (the source package for deb and apk)
    match_version: str
    purl: str
    path: str
    layer_digest: str
    diff_id: str
    licenses: str = ""
    release: str = ""  # the id of the OS release an OS package was matched against ("" if none)


@dataclass
class Inventory:
    os: OperatingSystem | None
    packages: list[Package] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    not_analysed: list[str] = field(default_factory=list)


def inventory(filesystem: FileSystem) -> Inventory:
    os_release = detect_os(filesystem)
    found = Inventory(os_release)
    _dpkg(filesystem, found)
    _apk(filesystem, found)
    _python(filesystem, found)
    _npm(filesystem, found)
    if any(filesystem.get(path) is not None for path in RPM_DATABASES):
        found.not_analysed.append("rpm packages were not analysed (the built-in scanner does not read rpm databases)")
    unmatched = Counter(p.release for p in found.packages if p.kind in ("deb", "apk") and not p.ecosystem)
    for release, count in sorted(unmatched.items()):
        found.not_analysed.append(f"{count} OS packages of an unrecognised OS release ({release or 'unknown'})")
    return found


# The OS.


def detect_os(filesystem: FileSystem) -> OperatingSystem | None:
    fields: dict[str, str] = {}
    for path in OS_RELEASE:
        found = filesystem.get(path)
        if found is not None:
            fields = _os_release_fields(found.data)
            break
    if not fields.get("ID"):
        if (alpine := filesystem.get(ALPINE_RELEASE)) is not None:
            fields = {"ID": "alpine", "VERSION_ID": alpine.data.decode(errors="replace").strip()}
        elif (debian := filesystem.get(DEBIAN_VERSION)) is not None:
            fields = {"ID": "debian", "VERSION_ID": debian.data.decode(errors="replace").strip()}
        else:
            return None
    os_id = fields["ID"].lower()
    version_id = fields.get("VERSION_ID", "")
    if os_id == "debian" and not version_id and (debian := filesystem.get(DEBIAN_VERSION)) is not None:
        version_id = debian.data.decode(errors="replace").strip()
    return OperatingSystem(os_id, version_id, fields.get("PRETTY_NAME", ""), _ecosystem(os_id, version_id, fields))


# The release whose advisories apply to each package database: dpkg packages are Debian's or
# Ubuntu's, apk packages Alpine's. An image whose os-release names one family and that also holds
# the other family's database (a multi-stage copy, a fixture) has that database matched against
# its own family's release file, never against the os-release's advisories (an apk package named
# like a Debian source package would otherwise match Debian's records, and its Alpine ones would
# be missed).
_FAMILIES = {"deb": ("debian", "ubuntu"), "apk": ("alpine",)}
_RELEASE_FILES = {"deb": ("debian", DEBIAN_VERSION), "apk": ("alpine", ALPINE_RELEASE)}


def release_for(filesystem: FileSystem, os_release: OperatingSystem | None, kind: str) -> OperatingSystem | None:
    """The release a `deb` or `apk` database is matched against; None when none is known, and an
    unrecognised OS's own release (no ecosystem) when the image names one outside both families."""
    if os_release is not None and os_release.id in _FAMILIES[kind]:
        return os_release
    if os_release is not None and not any(os_release.id in ids for ids in _FAMILIES.values()):
        return os_release
    os_id, path = _RELEASE_FILES[kind]
    found = filesystem.get(path)
    if found is None:
        return None
    version_id = found.data.decode(errors="replace").strip()
    return OperatingSystem(os_id, version_id, "", _ecosystem(os_id, version_id, {}))


def _os_release_fields(data: bytes) -> dict[str, str]:
    fields = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def _ecosystem(os_id: str, version_id: str, fields: dict[str, str]) -> str:
    if os_id == "debian" and (major := re.match(r"(\d+)", version_id)):
        return f"Debian:{major.group(1)}"
    if os_id == "alpine" and (minor := re.match(r"(\d+\.\d+)", version_id)):
        return f"Alpine:v{minor.group(1)}"
    if os_id == "ubuntu" and re.fullmatch(r"\d+\.\d+", version_id):
        return f"Ubuntu:{version_id}" + (":LTS" if "LTS" in fields.get("VERSION", "") else "")
    return ""


# dpkg.


def _dpkg(filesystem: FileSystem, found: Inventory) -> None:
    release = release_for(filesystem, found.os, "deb")
    for path, file in filesystem.matching(lambda p: p == DPKG_STATUS or p.startswith(DPKG_STATUS_DIR)):
        for paragraph in _deb822(file.data, found):
            status = paragraph.get("Status")
            if status is not None and status.split()[-1:] != ["installed"]:
                continue  # removed, or config files only (status.d files carry no Status)
            name, version = paragraph.get("Package", ""), paragraph.get("Version", "")
            if not name or not version:
                found.problems["dpkg entry without Package or Version"] += 1
                continue
            source_name, source_version = name, version
            if source := paragraph.get("Source"):
                source_name, _, rest = source.partition(" ")
                if (given := rest.strip()).startswith("(") and given.endswith(")"):
                    source_version = given[1:-1].strip()
            _add_os_package(
                found,
                kind="deb",
                release=release,
                name=name,
                version=version,
                source=(source_name, source_version),
                arch=paragraph.get("Architecture", ""),
                path=path,
                file=file,
            )


def _deb822(data: bytes, found: Inventory) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, last = {}, ""
        elif line[0] in " \t":
            if last:
                current[last] += "\n" + line.strip()
        else:
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                found.problems["dpkg line that is not a field"] += 1
                continue
            last = key.strip()
            current[last] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


# apk.


def _apk(filesystem: FileSystem, found: Inventory) -> None:
    file = filesystem.get(APK_INSTALLED)
    if file is None:
        return
    release = release_for(filesystem, found.os, "apk")
    for block in re.split(r"\n\s*\n", file.data.decode("utf-8", errors="replace")):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and len(key) == 1:
                fields.setdefault(key, value)
            elif line.strip():
                found.problems["apk line that is not a field"] += 1
        if not fields:
            continue
        name, version = fields.get("P", ""), fields.get("V", "")
        if not name or not version:
            found.problems["apk entry without P or V"] += 1
            continue
        _add_os_package(
            found,
            kind="apk",
            release=release,
            name=name,
            version=version,
            source=(fields.get("o") or name, version),
            arch=fields.get("A", ""),
            path=APK_INSTALLED,
            file=file,
            licenses=fields.get("L", ""),
        )


def _add_os_package(
    found: Inventory,
    *,
    kind: str,
    release: OperatingSystem | None,
    name: str,
    version: str,
    source: tuple[str, str],
    arch: str,
    path: str,
    file: FoundFile,
    licenses: str = "",
) -> None:
    """A dpkg or apk package: matched by its source package in its release's ecosystem, named in
    its purl by that release."""
    os_release = release
    qualifiers = {"arch": arch, "distro": f"{os_release.id}-{os_release.version_id}" if os_release else ""}
    if source[0] != name:
        qualifiers["upstream"] = source[0]
    namespace = "alpine" if kind == "apk" else (os_release.id if os_release else "debian")
    present = {key: value for key, value in qualifiers.items() if value}
    found.packages.append(
        Package(
            kind=kind,
            name=name,
            version=version,
            ecosystem=os_release.ecosystem if os_release else "",
            release=os_release.id if os_release else "",
            match_name=source[0],
            match_version=source[1],
            purl=str(PackageURL(type=kind, namespace=namespace, name=name, version=version, qualifiers=present)),
            path=path,
            layer_digest=file.layer_digest,
            diff_id=file.diff_id,
            licenses=licenses,
        )
    )


# Python.


def _python(filesystem: FileSystem, found: Inventory) -> None:
    for path, file in filesystem.matching(lambda p: wanted(p) == READ and any(d in p for d in _PYTHON_DIRS)):
        headers = HeaderParser().parsestr(file.data.decode("utf-8", errors="replace"), headersonly=True)
        name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
        if not name or not version:
            found.problems["Python metadata without Name or Version"] += 1
            continue
        _add_library(
            found,
            kind="pypi",
            ecosystem="PyPI",
            name=canonicalize_name(name),
            version=version,
            path=path,
            file=file,
            licenses=headers.get("License") or "",
        )


# npm.


def _npm(filesystem: FileSystem, found: Inventory) -> None:
    for path, file in filesystem.matching(lambda p: bool(_NPM_MANIFEST.search(p))):
        try:
            manifest = json.loads(file.data)
        except ValueError:
            found.problems["package.json that is not JSON"] += 1
            continue
        name = manifest.get("name") if isinstance(manifest, dict) else None
        version = manifest.get("version") if isinstance(manifest, dict) else None
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            found.problems["package.json without name or version"] += 1
            continue
        licence = manifest.get("license")
        _add_library(
            found,
            kind="npm",
            ecosystem="npm",
            name=name,
            version=version,
            path=path,
            file=file,
            licenses=licence if isinstance(licence, str) else "",
        )


def _add_library(
    found: Inventory, *, kind: str, ecosystem: str, name: str, version: str, path: str, file: FoundFile, licenses: str
) -> None:
    namespace, _, short = name.rpartition("/") if name.startswith("@") else ("", "", name)
    found.packages.append(
        Package(
            kind=kind,
            name=name,
            version=version,
            ecosystem=ecosystem,
            match_name=name,
            match_version=version,
            purl=str(PackageURL(type=kind, namespace=namespace or None, name=short, version=version)),
            path=path,
            layer_digest=file.layer_digest,
            diff_id=file.diff_id,
            licenses=licenses.strip()[:200],
        )
    )
