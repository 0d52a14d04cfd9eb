"""The shared harness's push-pull-check (skopeo, umoci, oras-py, podman, buildah) against `make serve`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import MEDIUM_MB, SEED
from .support import RegistryServer, python_of_venv, repo_name, run

pytestmark = pytest.mark.e2e

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def test_push_pull_check(registry: RegistryServer, harness: Path, images: dict[str, Any]) -> None:
    # push-pull-check runs lib/push_pull_check.py with $HARNESS_VENV/bin/python (falling back to python3):
    # point it at the venv the tests run in, which has oras-py and requests.
    venv = python_of_venv()
    # (its work dir stays in the default temp dir: podman refuses a --runroot longer than 50 characters)
    env = dict(os.environ, HARNESS_VENV=str(venv))
    p = run(
        [harness / "push-pull-check", registry.url, "--creds", registry.creds, "--require-referrers",
         "--namespace", repo_name("harness"),
         "--images", images["dir"], "--seed", SEED, "--medium-mb", str(MEDIUM_MB), "--timeout", "180"],
        env=env,
        timeout=300,
    )  # fmt: skip
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    print(p.stdout)
    assert lines, f"push-pull-check printed nothing (rc={p.returncode})"
    m = SUMMARY.match(lines[-1])
    assert m, f"unexpected last line {lines[-1]!r} (rc={p.returncode}):\n{p.stdout}"
    failed = [line for line in lines if line.startswith("FAIL")]
    assert int(m.group(2)) == 0, "push-pull-check failures:\n" + "\n".join(failed) + f"\n\nfull output:\n{p.stdout}"
    assert p.returncode == 0, p.stdout
    passed = {line.split()[1] for line in lines if line.startswith("PASS")}
    # the cases this machine must run (clients installed by `make system-deps`); umoci/buildah may SKIP elsewhere
    assert {"skopeo-push-multiarch", "referrers-api", "oras-push", "oras-push-with-subject", "podman-push",
            "skopeo-delete"} <= passed, p.stdout  # fmt: skip
