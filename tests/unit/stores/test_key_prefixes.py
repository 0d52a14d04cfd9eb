"""Every DynamoDB key prefix is spelled in `stores/keys.py` and nowhere else: a module that needs one
asks keys.py (`keys.BLOB_PREFIX`, `keys.blob_pk(...)`), so the layout can change in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "chalicelib"
KEYS = PACKAGE / "stores" / "keys.py"
# An upper-case word followed by `#`: `BLOB#`, `REPO#<name>#M#`, `COUNTER#audit`.
PREFIX = re.compile(r"\b[A-Z][A-Z_]*#")


def _spelled(path: Path) -> list[str]:
    """The string literals of a module (docstrings aside) that spell a key prefix."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and PREFIX.search(node.value)
    ]


def test_key_prefixes_are_spelled_only_in_keys_py() -> None:
    found = {
        str(path.relative_to(PACKAGE)): spelled
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != KEYS and (spelled := _spelled(path))
    }
    assert found == {}


def test_the_check_sees_a_prefix_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Rows are `BLOB#<digest>`."""\n\ndef f(pk):\n    return pk.removeprefix("BLOB#")\n')
    assert _spelled(module) == ["BLOB#"]
    module.write_text('def f(d):\n    return f"REPO#{d}#M#"\n')
    assert _spelled(module) == ["REPO#", "#M#"]
    assert _spelled(KEYS)  # keys.py itself spells them all
