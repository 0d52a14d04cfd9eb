"""Fixtures of the identity suite: its own moto world, independent of the sibling fixtures.

The world is a `mock_aws()` with a uniquely named table and bucket, an environment set here (and
restored afterwards), a token signing key the tests can read (to forge tokens), and the app wired
to all of that (`wiring.reset()`). Consecutive modules of this directory share one world (see
`_World`); tests keep apart by using unique user, project and robot names, and restore any system
configuration they change.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.clock import MovableClock
from tests.functional.helpers import BASE_ENV, REGION, serialise_aws_calls
from tests.functional.identity.identity_support import ADMIN_PASSWORD, Harbor
from tests.functional.wire_check import checked

HERE = Path(__file__).resolve().parent
_NOT_CREATE_TABLE_ARGS = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}


@pytest.fixture(scope="session")
def signing_key_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPrivateKey]:
    """The RSA key the app signs tokens with, written where REGISTRY_TOKEN_KEY_FILE points."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("identity-keys") / "token.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path, key


@pytest.fixture(scope="session")
def signing_key(signing_key_pem: tuple[Path, rsa.RSAPrivateKey]) -> rsa.RSAPrivateKey:
    return signing_key_pem[1]


class _World:
    """The environment and app wiring, kept from one identity module to the next.

    Each module gets a fresh mock (an empty table and bucket), so modules stay independent and a
    table that grows over the suite does not slow later requests (moto's scans, queries and,
    without the local fixes, transactions cost O(table)). Only the app's wiring (clients,
    settings, signing key) is reused between consecutive modules of this directory, which saves
    rebuilding it; the bootstrap (admin, `library`) is redone in each fresh table. Whenever the
    next test is not one of ours, everything is undone: wiring reset, environment restored.
    """

    env: dict[str, str] | None = None
    next_item: pytest.Item | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Runs before the fixtures of `item` are finalised, so `harbor` knows what comes next.
    _World.next_item = nextitem


def _next_is_ours() -> bool:
    nxt = _World.next_item
    return nxt is not None and Path(str(nxt.path)).resolve().parent == HERE


def _fresh_env(key_file: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        **BASE_ENV,
        "REGISTRY_TABLE_NAME": f"identity-{suffix}",
        "REGISTRY_BUCKET_NAME": f"identity-{suffix}",
        "REGISTRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REGISTRY_TOKEN_KEY_FILE": str(key_file),
    }


@pytest.fixture(scope="module")
def harbor(signing_key_pem: tuple[Path, rsa.RSAPrivateKey]) -> Iterator[Harbor]:
    """The registry (own table and bucket under `mock_aws()`) driven over WSGI, for a test module."""
    from moto import mock_aws
    from werkzeug.test import Client

    from chalicelib import wiring

    _apply_moto_fixes()
    continuing = _World.env is not None
    env = _World.env if _World.env is not None else _fresh_env(signing_key_pem[0])
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("REGISTRY_") or k in ("AWS_PROFILE", "AWS_ENDPOINT_URL")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        keep = False
        with mock_aws():
            try:
                from chalicelib.local.emulator import table_properties

                dynamodb, s3 = _aws_clients()
                args = {k: v for k, v in table_properties().items() if k not in _NOT_CREATE_TABLE_ARGS}
                dynamodb.create_table(TableName=env["REGISTRY_TABLE_NAME"], **args)
                s3.create_bucket(Bucket=env["REGISTRY_BUCKET_NAME"])
                from app import app
                from chalicelib.local.wsgi import ChaliceWSGI

                client = Harbor(Client(checked(ChaliceWSGI(app))))
                if continuing:
                    _bootstrap_again(client)
                else:
                    wiring.reset()  # the first request builds the services, which bootstraps
                    _World.env = env
                yield client
                keep = _next_is_ours()
            finally:
                if wiring.services.cache_info().currsize:
                    wiring.services().events.drain()  # nothing published may outlive this mock
                if not keep:
                    _World.env = None
                    wiring.reset()


def _apply_moto_fixes() -> None:
    """The moto fixes the local runner and the sibling suites run with (transactions that neither
    copy the whole table nor lose concurrent writes). Process-wide and idempotent."""
    try:
        from chalicelib.local import moto_patches
    except ImportError:  # pragma: no cover - the fixes are an optimisation, not a requirement
        return
    moto_patches.apply()


def _bootstrap_again(client: Harbor) -> None:
    """What the app does on its first start (admin user, public `library`), in a fresh table."""
    from chalicelib.wiring import services

    registry = services()
    registry.users.ensure_admin(ADMIN_PASSWORD)
    admin = client.get("users/current").get_json()
    registry.projects.ensure_library(admin["user_id"], admin["username"])


@functools.cache
def _aws_clients() -> tuple[Any, Any]:
    """botocore clients stay mocked across `mock_aws()` contexts, and building one costs ~0.1-0.3 s."""
    import boto3

    return boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)


@pytest.fixture
def clock(harbor: Harbor, clock: MovableClock) -> Callable[[float], None]:
    """`clock(seconds)` moves the app's clock forward (logins, token checks, robot expiry, the
    sign-in throttle); the shared `clock` fixture sets it back after the test."""
    return clock.advance


@pytest.fixture
def atomic_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's handling of each AWS call, as real DynamoDB and S3 are atomic per call."""
    serialise_aws_calls(monkeypatch)
