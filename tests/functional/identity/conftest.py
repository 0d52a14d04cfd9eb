"""Fixtures of the identity suite: its own moto world per test module, independent of siblings.

Each module gets a fresh `mock_aws()` with a uniquely named table and bucket, an environment set
here (and restored afterwards), a token signing key the tests can read (to forge tokens), and the
app rebuilt against all of that (`wiring.reset()`). Tests inside a module share the world and keep
apart by using unique user, project and robot names.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.functional.identity.identity_support import ADMIN_PASSWORD, Harbor

REGION = "us-east-1"
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


@pytest.fixture(scope="module")
def harbor(signing_key_pem: tuple[Path, rsa.RSAPrivateKey]) -> Iterator[Harbor]:
    """A fresh registry (own table and bucket) for the whole test module, driven over WSGI."""
    from moto import mock_aws
    from werkzeug.test import Client

    suffix = uuid.uuid4().hex[:10]
    table, bucket = f"identity-{suffix}", f"identity-{suffix}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "REGISTRY_TABLE_NAME": table,
        "REGISTRY_BUCKET_NAME": bucket,
        "REGISTRY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REGISTRY_TOKEN_KEY_FILE": str(signing_key_pem[0]),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("REGISTRY_") or k in ("AWS_PROFILE", "AWS_ENDPOINT_URL")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        with mock_aws():
            from chalicelib import wiring
            from chalicelib.local.emulator import table_properties

            dynamodb, s3 = _aws_clients()
            args = {k: v for k, v in table_properties().items() if k not in _NOT_CREATE_TABLE_ARGS}
            dynamodb.create_table(TableName=table, **args)
            s3.create_bucket(Bucket=bucket)
            wiring.reset()
            from app import app
            from chalicelib.local.wsgi import ChaliceWSGI

            try:
                yield Harbor(Client(ChaliceWSGI(app)))
            finally:
                wiring.reset()


@functools.cache
def _aws_clients() -> tuple[Any, Any]:
    """botocore clients stay mocked across `mock_aws()` contexts, and building one costs ~0.1-0.3 s."""
    import boto3

    return boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)


@pytest.fixture
def clock(harbor: Harbor, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """`clock(seconds)` moves the access service's clock (logins, token checks) forward.

    The services take their clock at construction (`clock=time.time`), so patching the `time`
    module would not reach them; the instance attributes are patched instead, and undone after.
    """
    import time

    from chalicelib.wiring import services

    harbor.get("ping")  # make sure the services exist
    access = services().access
    offset = {"seconds": 0.0}

    def now() -> float:
        return time.time() + offset["seconds"]

    monkeypatch.setattr(access, "_clock", now)
    monkeypatch.setattr(access._verifier, "_clock", now)

    def advance(seconds: float) -> None:
        offset["seconds"] += seconds

    return advance


@pytest.fixture
def atomic_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's handling of each AWS call, as real DynamoDB and S3 are atomic per call.

    moto is not thread-safe (a TransactWriteItems deep-copies a table another thread writes); the
    app's requests still interleave between calls, which is what its conditions must survive.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
