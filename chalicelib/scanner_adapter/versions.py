"""Version ordering per OSV ecosystem, from `univers` (aboutcode's comparison library): Debian and
Ubuntu use dpkg's rules (epochs, `~` before anything), Alpine apk's (`_rc` before the release,
`-rN` revisions), PyPI PEP 440, npm and OSV `SEMVER` ranges SemVer 2.0."""

from __future__ import annotations

from typing import Any, Protocol

from univers.versions import AlpineLinuxVersion, DebianVersion, InvalidVersion, PypiVersion, SemverVersion


class Comparable(Protocol):
    """A parsed version. Compare with `<` only: univers' Alpine versions implement `<` by apk's
    rules but inherit `<=` and `>` from a text ordering."""

    def __lt__(self, other: Any, /) -> bool: ...


_BY_ECOSYSTEM: dict[str, Any] = {
    "Debian": DebianVersion,
    "Ubuntu": DebianVersion,
    "Alpine": AlpineLinuxVersion,
    "PyPI": PypiVersion,
    "npm": SemverVersion,
}

SUPPORTED_ECOSYSTEMS = frozenset(_BY_ECOSYSTEM)


def ecosystem_base(ecosystem: str) -> str:
    """`Debian:12` -> `Debian`; `Alpine:v3.18` -> `Alpine`."""
    return ecosystem.split(":", 1)[0]


def parser_for(ecosystem: str, range_type: str = "ECOSYSTEM") -> Any | None:
    """The version class for an ecosystem's ECOSYSTEM ranges (or SemVer for a SEMVER range);
    None when the ecosystem is not one this adapter analyses."""
    if range_type == "SEMVER":
        return SemverVersion
    return _BY_ECOSYSTEM.get(ecosystem_base(ecosystem))


def parse(version_class: Any, text: str) -> Comparable | None:
    """The version, or None when the text is not a valid version of that scheme."""
    try:
        parsed: Comparable = version_class(text)
    except (InvalidVersion, ValueError, TypeError):
        return None
    return parsed
