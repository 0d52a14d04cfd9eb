"""Fixtures shared by the tests of the local runner's moto patches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from chalicelib.local import moto_patches


@pytest.fixture
def patched_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, with `moto_patches` applied (as the local runner and the functional
    tests run it), and credentials boto3 accepts."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    moto_patches.apply()
    with mock_aws():
        yield
