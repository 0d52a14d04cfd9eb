"""The documentation stays true to the code: every setting documented once and none invented, every
link and named path resolving inside the repository, and CI running the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chalicelib.config import Settings
from chalicelib.scanner_adapter.settings import AdapterSettings

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SETTING = re.compile(r"\bREGISTRY_[A-Z0-9_]*[A-Z0-9]\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# Top-level entries of the repository whose paths the docs name in code spans.
PATH_ROOTS = (
    "chalicelib/", "tests/", "infra/", "docs/", ".chalice/", ".ci/",
    "app.py", "requirements.txt", "requirements-", "Makefile", "Dockerfile",
)  # fmt: skip


def _fields(settings: type[Settings] | type[AdapterSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def _settings() -> set[str]:
    """The registry's settings (the configuration page documents exactly these)."""
    return _fields(Settings)


def _known() -> set[str]:
    """Every variable a page may name: the registry's and the built-in scanner adapter's settings."""
    return _settings() | _fields(AdapterSettings)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.MULTILINE)}


def test_the_configuration_page_documents_every_setting_and_only_those() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `(REGISTRY_[A-Z0-9_]+)`", page, flags=re.MULTILINE)}
    assert rows == _settings(), {"undocumented": _settings() - rows, "not settings": rows - _settings()}


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_setting_a_page_names_exists(doc: Path) -> None:
    named = set(SETTING.findall(doc.read_text()))
    assert named <= _known(), named - _known()


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        outside = not resolved.exists() or not resolved.is_relative_to(ROOT)
        if outside or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
            broken.append(target)
    assert not broken


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_page_names_exists(doc: Path) -> None:
    missing = []
    for span in CODE_SPAN.findall(doc.read_text()):
        path = span.split()[0] if span.split() else ""
        if not path.startswith(PATH_ROOTS) or any(c in path for c in "<>*{}[]$"):
            continue
        if not (ROOT / path.rstrip(":,.")).exists():
            missing.append(path)
    assert not missing


def test_no_file_points_outside_the_repository() -> None:
    """Design notes and reference material outside the repository are no place to send a reader."""
    outside = re.compile("(reference" + r"/\w+\.md|DESIGN" + r"\.md)")
    skip = {".git", ".venv", "build", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".registry-data"}
    offenders = []
    for path in ROOT.rglob("*"):
        if any(part in skip for part in path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix not in {".py", ".md", ".json", ".sh", ".toml", ".txt", ".cfg", ".yaml", ".yml", ""}:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in outside.finditer(text)]
    assert not offenders


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(make \w+)\s+# (?:lint|.*tests)", readme, flags=re.MULTILINE)
    assert commands == ["make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci
