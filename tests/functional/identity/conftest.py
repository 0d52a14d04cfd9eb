"""Fixtures of the identity suite, on the functional suites' one setup (`tests/functional/conftest.py`).

A module gets one world (`fresh_world`: a fresh mock holding only what the app bootstraps) for all
its tests, which keep apart by using unique user, project and robot names and restore any system
configuration they change. Tokens are forged with the app's own signing key (`signing_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.clock import MovableClock
from tests.functional.conftest import fresh_world
from tests.functional.helpers import serialise_aws_calls
from tests.functional.identity.identity_support import Harbor


@pytest.fixture(scope="module")
def harbor(wsgi_app: Any) -> Iterator[Harbor]:
    """The registry driven over WSGI, one world per test module."""
    with fresh_world(wsgi_app) as client:
        yield Harbor(client)


@pytest.fixture
def clock(harbor: Harbor, clock: MovableClock) -> Callable[[float], None]:
    """`clock(seconds)` moves the app's clock forward (logins, token checks, robot expiry, the
    sign-in throttle); the shared `clock` fixture sets it back after the test."""
    return clock.advance


@pytest.fixture
def atomic_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's handling of each AWS call, as real DynamoDB and S3 are atomic per call."""
    serialise_aws_calls(monkeypatch)
