"""The layer contracts (.importlinter): the tree keeps them, and each one breaks on the violation it is
there to catch. The violations are planted in a copy of the package, never in the tree itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO_ROOT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".importlinter", root / ".importlinter")
    return root


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " BROKEN" not in result.stdout


# (module of the copy to plant the import in, the import, the contract that must break)
VIOLATIONS = [
    ("services/health.py", "import boto3", "Services never import an AWS SDK"),
    ("services/health.py", "from pynamodb.models import Model", "Services never import an AWS SDK"),
    ("services/health.py", "from chalicelib import wiring", "Services never import an AWS SDK"),
    ("services/health.py", "from chalicelib import wiring", "Layers:"),
    ("api/mgmt/health.py", "from chalicelib.stores import keys", "Routes never import stores"),
    ("services/health.py", "from chalicelib.stores import keys", "Services never read the key layout"),
    ("services/health.py", "from chalicelib.stores.tables import ping", "Services never read the key layout"),
    ("stores/keys.py", "from chalicelib.services import health", "Layers:"),
    ("core/digest.py", "from chalicelib.stores import keys", "Layers:"),
    ("core/digest.py", "import boto3", "Core does no I/O"),
    ("events.py", "from chalicelib.stores import keys", "Layers:"),
    ("events.py", "from chalicelib.auth import tokens", "Layers:"),
    ("errors.py", "from chalicelib import config", "Layers:"),
    ("auth/rbac.py", "from chalicelib.auth import tokens", "Every auth module"),
    ("cli/push.py", "from chalicelib.core import digest", "The push command is a client"),
]


@pytest.mark.parametrize(("module", "statement", "contract"), VIOLATIONS)
def test_a_planted_violation_breaks_its_contract(copy_root: Path, module: str, statement: str, contract: str) -> None:
    target = copy_root / "chalicelib" / module
    original = target.read_text()
    target.write_text(f"{statement}  # a planted violation\n{original}")
    try:
        result = _lint(copy_root)
    finally:
        target.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout


def test_the_untouched_copy_keeps_every_contract(copy_root: Path) -> None:
    """The copy itself is clean, so each planted import above is what broke its contract."""
    result = _lint(copy_root)
    assert result.returncode == 0, result.stdout + result.stderr
