"""Shared by every test folder: the repository root is importable (`app`, `chalicelib`), and the order
in which pytest-xdist hands out modules.

`make test` runs `--dist loadfile`: each module is one unit of work, given to the next free worker
in collection order, so the run ends when the last long module does. pytest-xdist would otherwise
hand out modules with the most tests first, which puts the longest ones (one race or crash test
each) last, on one worker, while the other has nothing left to do. Here the long ones go first: the
modules with a `slow` test (races, crashes, restarts, the 1 GiB push), then the end-to-end modules
(each starts servers and drives real clients), then the functional modules, then the unit modules,
whose short runs fill the gaps at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

E2E = REPO_ROOT / "tests" / "e2e"
FUNCTIONAL = REPO_ROOT / "tests" / "functional"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # keep the order set below (see the module docstring)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}

    def rank(path: Path) -> int:
        if path in slow:
            return 0
        return 1 if path.is_relative_to(E2E) else 2 if path.is_relative_to(FUNCTIONAL) else 3

    items.sort(key=lambda item: rank(item.path))  # stable: modules stay whole, in their order
