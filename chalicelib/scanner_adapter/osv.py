"""The operator's OSV database: a directory or a zip of OSV JSON records (osv.dev publishes one
`all.zip` per ecosystem), loaded into an index by (ecosystem, package name).

The index keeps only what matching and reports need (ids, aliases, a short description, links,
severity sources, and the `affected` entries), so a large export fits in a small process. Records
that are withdrawn, not JSON, or about an ecosystem this adapter does not analyse are skipped and
counted (`OsvIndex.skipped`), never fatal: one bad record must not hide every other advisory.

Matching follows the OSV schema's evaluation: a version is affected when it is listed in
`versions`, or when an ECOSYSTEM/SEMVER range's events (sorted, `introduced: "0"` first) leave it
introduced and not yet fixed (`fixed` clears at >=, `last_affected` after >), and below any
`limit`. GIT ranges are ignored (their `versions` list carries the result).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from chalicelib.adapters.scanner_api import as_object, as_text
from chalicelib.scanner_adapter import versions

MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_DESCRIPTION_CHARS = 1000
MAX_LINKS = 5


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    modified: str
    description: str
    links: tuple[str, ...]
    cvss_v3: str  # a CVSS:3.x vector, or ""
    database_severity: str  # database_specific.severity (GHSA's words), or ""
    cwe_ids: tuple[str, ...]

    @property
    def reported_id(self) -> str:
        """The CVE when the advisory has exactly one CVE alias (Harbor allowlists hold CVE ids)."""
        if self.id.startswith("CVE-"):
            return self.id
        cves = [alias for alias in self.aliases if alias.startswith("CVE-")]
        return cves[0] if len(cves) == 1 else self.id


@dataclass(frozen=True, slots=True)
class Affected:
    advisory: Advisory
    ranges: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (type, ((event, version), ...))
    versions: frozenset[str]
    severity: str  # a CVSS:3.x vector or an Ubuntu priority given for this package only, or ""


@dataclass(frozen=True, slots=True)
class Match:
    advisory: Advisory
    fix_version: str
    package_severity: str


@dataclass
class OsvIndex:
    entries: dict[tuple[str, str], list[Affected]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    records: int = 0
    updated_at: str = ""  # the latest `modified` in the set

    def matches(self, ecosystem: str, name: str, version: str) -> list[Match]:
        """Advisories that affect `name` at `version` in `ecosystem` (exact OSV ecosystem string)."""
        found: dict[str, Match] = {}
        for affected in self.entries.get((ecosystem, normalise_name(ecosystem, name)), []):
            hit, fix = _affects(affected, ecosystem, version)
            if hit and affected.advisory.id not in found:
                found[affected.advisory.id] = Match(affected.advisory, fix, affected.severity)
        return list(found.values())


def normalise_name(ecosystem: str, name: str) -> str:
    return canonicalize_name(name) if ecosystem == "PyPI" else name


def load(path: Path) -> OsvIndex:
    """Read every `*.json` in a zip, or under a directory together with the records in every
    `*.zip` there (osv.dev's per-ecosystem exports side by side); raises OSError/BadZipFile for a
    path that is neither."""
    index = OsvIndex()
    for name, data in _documents(path):
        try:
            record = json.loads(data)
        except ValueError:
            index.skipped["not JSON"] += 1
            continue
        for item in record if isinstance(record, list) else [record]:
            _add(index, item, name)
    return index


def _documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for file in sorted(files):
                full = Path(root) / file
                if file.endswith(".json") and full.stat().st_size <= MAX_RECORD_BYTES:
                    yield str(full), full.read_bytes()
                elif file.endswith(".zip"):
                    yield from _documents(full)
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".json") and info.file_size <= MAX_RECORD_BYTES:
                with archive.open(info) as member:
                    yield info.filename, member.read(MAX_RECORD_BYTES + 1)[:MAX_RECORD_BYTES]


def _add(index: OsvIndex, record: Any, source: str) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        index.skipped["malformed"] += 1
        return
    if record.get("withdrawn"):
        index.skipped["withdrawn"] += 1
        return
    affected_entries = record.get("affected")
    if not isinstance(affected_entries, list):
        index.skipped["malformed"] += 1
        return
    advisory = _advisory(record)
    added = False
    for entry in affected_entries:
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str) or not name:
            continue
        if versions.ecosystem_base(ecosystem) not in versions.SUPPORTED_ECOSYSTEMS:
            index.skipped[f"ecosystem {versions.ecosystem_base(ecosystem)}"] += 1
            continue
        affected = Affected(advisory, _ranges(entry.get("ranges")), _strings(entry.get("versions")), _cvss(entry))
        index.entries.setdefault((ecosystem, normalise_name(ecosystem, name)), []).append(affected)
        added = True
    if added:
        index.records += 1
        index.updated_at = max(index.updated_at, advisory.modified)


def _advisory(record: dict[str, Any]) -> Advisory:
    description = as_text(record.get("summary")) or as_text(record.get("details"))
    references = record.get("references")
    links = tuple(as_text(as_object(r).get("url")) for r in (references if isinstance(references, list) else []))
    specific = as_object(record.get("database_specific"))
    return Advisory(
        id=record["id"],
        aliases=tuple(sorted(_strings(record.get("aliases")))),
        modified=as_text(record.get("modified")),
        description=description[:MAX_DESCRIPTION_CHARS],
        links=tuple(link for link in links if link)[:MAX_LINKS],
        cvss_v3=_cvss(record),
        database_severity=as_text(specific.get("severity")),
        cwe_ids=tuple(sorted(_strings(specific.get("cwe_ids")))),
    )


def _cvss(holder: dict[str, Any]) -> str:
    """A CVSS v3 vector from `severity[]`; else an Ubuntu priority (a `severity[]` entry of type
    `Ubuntu`, or `ecosystem_specific.ubuntu_priority`) as `ubuntu:<priority>`."""
    listed = holder.get("severity")
    entries = [as_object(item) for item in (listed if isinstance(listed, list) else [])]
    for entry in entries:
        if entry.get("type") == "CVSS_V3" and as_text(entry.get("score")):
            return as_text(entry["score"])
    priority = next((as_text(e.get("score")) for e in entries if e.get("type") == "Ubuntu"), "")
    priority = priority or as_text(as_object(holder.get("ecosystem_specific")).get("ubuntu_priority"))
    return "ubuntu:" + priority if priority else ""


def _strings(value: Any) -> frozenset[str]:
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


def _ranges(value: Any) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    found = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or item.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        events = []
        for event in item.get("events") or []:
            if isinstance(event, dict) and len(event) == 1:
                kind, version = next(iter(event.items()))
                if kind in ("introduced", "fixed", "last_affected", "limit") and isinstance(version, str):
                    events.append((kind, version))
        found.append((str(item["type"]), tuple(events)))
    return tuple(found)


def _affects(affected: Affected, ecosystem: str, version: str) -> tuple[bool, str]:
    """(affected?, the fix version to report)."""
    if version in affected.versions:
        return True, _fix_for(affected, ecosystem, version)
    for range_type, events in affected.ranges:
        version_class = versions.parser_for(ecosystem, range_type)
        current = versions.parse(version_class, version) if version_class else None
        if current is None:
            continue
        hit, fix = _in_range(current, events, version_class)
        if hit:
            return True, fix
    return False, ""


def _fix_for(affected: Affected, ecosystem: str, version: str) -> str:
    for range_type, events in affected.ranges:
        version_class = versions.parser_for(ecosystem, range_type)
        current = versions.parse(version_class, version) if version_class else None
        if current is not None:
            fix = _smallest_fix_above(current, events, version_class)
            if fix:
                return fix
    return ""


def _in_range(current: Any, events: tuple[tuple[str, str], ...], version_class: Any) -> tuple[bool, str]:
    parsed: list[tuple[str, str, Any]] = []
    for kind, text in events:
        if (kind == "introduced" and text == "0") or (kind == "limit" and text == "*"):
            parsed.append((kind, text, None))  # minus infinity, or no limit
            continue
        value = versions.parse(version_class, text)
        if value is None:
            return False, ""  # a range we cannot order is not evaluated rather than misread
        parsed.append((kind, text, value))
    limits = [value for kind, _text, value in parsed if kind == "limit" and value is not None]
    if limits and not any(current < limit for limit in limits):
        return False, ""
    ordered = sorted(
        (entry for entry in parsed if entry[0] != "limit"),
        key=lambda entry: (entry[2] is not None, _Sortable(entry[2])),
    )
    vulnerable = False
    for kind, _text, value in ordered:
        # Only `<` is used: univers' Alpine versions order `<` by apk's rules but `<=` as text.
        if kind == "introduced" and (value is None or not current < value):
            vulnerable = True
        elif (kind == "fixed" and not current < value) or (kind == "last_affected" and value < current):
            vulnerable = False
    if not vulnerable:
        return False, ""
    return True, _smallest_fix_above(current, events, version_class)


def _smallest_fix_above(current: Any, events: tuple[tuple[str, str], ...], version_class: Any) -> str:
    fixes = []
    for kind, text in events:
        value = versions.parse(version_class, text) if kind == "fixed" else None
        if value is not None and current < value:
            fixes.append((value, text))
    if not fixes:
        return ""
    return min(fixes, key=lambda pair: _Sortable(pair[0]))[1]


class _Sortable:
    """Orders univers versions (None first) for `sorted`/`min` keys."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Sortable) -> bool:
        if self.value is None or other.value is None:
            return self.value is None and other.value is not None
        return bool(self.value < other.value)
