"""The registry over HTTP, in process: `werkzeug.test.Client(ChaliceWSGI(app))` on moto's `mock_aws()`.

Every test gets a fresh mock (a table and a bucket) holding only what the app bootstraps on its
first start (the `admin` user, the `library` project, ...). The bootstrap runs once per session;
its DynamoDB items are recorded and written into each new mock, which is much cheaper than
rebuilding the app's clients and hashing the admin password for every test.

The client authenticates as `admin` (Basic) unless a test says otherwise, and tests keep their
repositories under the `library` project, which exists from the start.

A test that needs other settings calls `registry.configure(max_body_bytes=1024, ...)`: that sets
the `REGISTRY_*` variables for this test only and rebuilds the wiring against the same mocked data.

Time: the app is wired with one `MovableClock` for the whole session (`wiring.use_clock`). A test
that needs a later second, an expired token or a passed schedule slot asks for `clock` and calls
`clock.advance(seconds)` instead of sleeping; after the test the clock is set back to real time and
the wiring rebuilt, so no test inherits another's future.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.clock import MovableClock
from tests.functional.helpers import BASE_ENV, REGION, Registry
from tests.functional.wire_check import checked, unmodelled

ACCOUNT = "123456789012"  # moto's default account
TABLE = "registry-test"
BUCKET = "registry-test-blobs"
ADMIN = ("admin", "Harbor12345")  # Harbor's default admin password
# CloudFormation keys of the table resource that create_table does not take.
_NOT_CREATE_TABLE_ARGS = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}

_ENV = {
    **BASE_ENV,
    "REGISTRY_TABLE_NAME": TABLE,
    "REGISTRY_BUCKET_NAME": BUCKET,
    "REGISTRY_ADMIN_PASSWORD": ADMIN[1],
}


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist each worker counts its own answers; the controller adds them up.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["unmodelled"] = dict(unmodelled)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    unmodelled.update(getattr(node, "workeroutput", {}).get("unmodelled", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if unmodelled:
        terminalreporter.write_line("/api/v2.0 JSON answers without a Harbor model (not checked):")
        for route, count in sorted(unmodelled.items()):
            terminalreporter.write_line(f"  {route} ({count})")


def pytest_configure(config: pytest.Config) -> None:
    # Powertools warns on every request that flushes no metric (metrics are off in tests).
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")
    from chalicelib import wiring

    wiring.use_clock(CLOCK)


# The clock every functional suite's app is wired with (see the module docstring).
CLOCK = MovableClock()


@pytest.fixture
def clock() -> Iterator[MovableClock]:
    """The app's clock, for this test to move forward (`clock.advance(seconds)`)."""
    yield CLOCK
    if CLOCK.moved:
        from chalicelib import wiring

        _drain_events()  # what the test published is stamped and delivered before time goes back
        CLOCK.rewind()
        wiring.services.cache_clear()  # caches and timers that read the moved clock go with it


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials and a fixed region for the whole session (nothing can reach real AWS)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("REGISTRY_") or k in ("AWS_PROFILE", "AWS_ENDPOINT_URL")]:
            mp.delenv(key)
        for key, value in _ENV.items():
            mp.setenv(key, value)
        mp.setenv("REGISTRY_TOKEN_KEY_FILE", str(_token_key(tmp_path_factory.mktemp("keys"))))
        _share_botocore_loader(mp)
        # The moto fixes the local runner runs with: isolated transactions that do not copy the table;
        # and its DynamoDB path (botocore's validation, serializer and parser around moto's handler).
        from chalicelib.local import direct, moto_patches

        moto_patches.apply()
        direct.install()
        try:
            yield
        finally:
            direct.uninstall()


def _token_key(directory: Path) -> Path:
    """One RSA key for the session: otherwise every rebuild of the wiring generates a new one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "token.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _share_botocore_loader(mp: pytest.MonkeyPatch) -> None:
    """Let every boto3 client's botocore session reuse one model loader (its cache is read-only data).

    Each new session parses the service's JSON model again (~50-100 ms), and rebuilding the wiring
    (`configure`) builds new clients. (PynamoDB's sessions share a loader in the product itself:
    `stores/tables.py`.)
    """
    import botocore.loaders
    import botocore.session

    loader = botocore.loaders.create_loader()
    original = botocore.session.get_session

    def get_session(env_vars: Any = None) -> botocore.session.Session:
        session = original(env_vars)
        session.register_component("data_loader", loader)
        return session

    mp.setattr(botocore.session, "get_session", get_session)


@pytest.fixture(scope="session")
def wsgi_app(aws_env: None) -> Any:
    """The Chalice app behind the WSGI adapter (imported once, after the environment is set)."""
    from app import app
    from chalicelib import wiring
    from chalicelib.local.wsgi import ChaliceWSGI

    wiring.reset()
    return checked(ChaliceWSGI(app))  # every /api/v2.0 answer is checked against Harbor's model


class LiveRegistry(Registry):
    """`Registry` plus access to the mocked AWS behind it and per-test settings."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(client, auth=ADMIN)
        self._monkeypatch = monkeypatch
        self.bucket = BUCKET
        self.table = TABLE
        self.configured = False

    @property
    def s3(self) -> Any:
        return _admin_clients()[1]

    @property
    def dynamodb(self) -> Any:
        return _admin_clients()[0]

    def configure(self, **settings: Any) -> None:
        """Set `REGISTRY_<NAME>` variables for this test (None unsets one) and make the app read them again."""
        from chalicelib import wiring

        for name, value in settings.items():
            if value is None:
                self._monkeypatch.delenv(f"REGISTRY_{name.upper()}", raising=False)
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            self._monkeypatch.setenv(f"REGISTRY_{name.upper()}", text)
        self.configured = True
        wiring.reset()

    def object_keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def multipart_uploads(self) -> list[dict[str, Any]]:
        return list(self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))


@functools.cache
def _admin_clients() -> tuple[Any, Any]:
    # botocore clients stay mocked across `mock_aws()` contexts; building them costs ~50 ms each.
    return boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)


def _create_resources() -> None:
    from chalicelib.local.emulator import table_properties

    dynamodb, s3 = _admin_clients()
    args = {k: v for k, v in table_properties().items() if k not in _NOT_CREATE_TABLE_ARGS}
    dynamodb.create_table(TableName=TABLE, **args)
    s3.create_bucket(Bucket=BUCKET)


def _scan() -> list[dict[str, Any]]:
    pages = _admin_clients()[0].get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
    return [item for page in pages for item in page.get("Items", [])]


def table_items() -> list[dict[str, Any]]:
    """Every item of the mocked table in DynamoDB's JSON shape, copied from moto's memory under its
    lock: the items a Scan through the API answers, at a hundredth of the cost (the hostile-input
    checks compare the whole table before and after each refused request)."""
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib.local.moto_patches import WRITE_LOCK, json_default

    table = dynamodb_backends[ACCOUNT][REGION].get_table(TABLE)
    with WRITE_LOCK:
        text = json.dumps([item.to_json()["Attributes"] for item in table.all_items()], default=json_default)
    items: list[dict[str, Any]] = json.loads(text)
    return items


class _Bootstrap:
    """The table items the app writes when it first starts, recorded once per session."""

    items: list[dict[str, Any]] | None = None

    @classmethod
    def apply(cls, client: Any) -> None:
        from chalicelib import wiring

        if cls.items is None:
            wiring.reset()
            response = client.get("/v2/", auth=ADMIN)  # builds the services, which bootstraps
            assert response.status_code == 200, response.get_data()[:500]
            cls.items = _scan()
            return
        dynamodb = _admin_clients()[0]
        for start in range(0, len(cls.items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in cls.items[start : start + 25]]
            dynamodb.batch_write_item(RequestItems={TABLE: batch})


@contextmanager
def fresh_world(wsgi_app: Any) -> Iterator[Any]:
    """A fresh mock (the bootstrapped table, an empty bucket) and a client of the app on it.

    The app's clients and settings outlive the world unless a test reconfigured them: botocore
    clients stay mocked across `mock_aws()` contexts, and rebuilding them for every world would
    double the suite's run time. What the world published is delivered before it goes.
    """
    from moto import mock_aws
    from werkzeug.test import Client

    from chalicelib import wiring
    from chalicelib.config import get_settings

    if (get_settings().table_name, get_settings().bucket_name) != (TABLE, BUCKET):
        wiring.reset()  # another suite pointed the app elsewhere and left its settings cached
    elif wiring.services.cache_info().currsize:
        wiring.services().configuration.forget()  # the last world's configuration is not this one's
    with mock_aws():
        _create_resources()
        client = Client(wsgi_app)
        _Bootstrap.apply(client)
        try:
            yield client
        finally:
            _drain_events()


@pytest.fixture
def registry(wsgi_app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveRegistry]:
    """A fresh registry (bootstrapped table, empty bucket) for one test."""
    from chalicelib import wiring

    with fresh_world(wsgi_app) as client:
        live = LiveRegistry(client, monkeypatch)
        try:
            yield live
        finally:
            if live.configured:
                _drain_events()
                monkeypatch.undo()
                wiring.reset()


@pytest.fixture(scope="session")
def signing_key(aws_env: None) -> Any:
    """The RSA private key the app signs tokens with (tests forge tokens with it)."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(Path(os.environ["REGISTRY_TOKEN_KEY_FILE"]).read_bytes(), None)


def _drain_events() -> None:
    """Deliver what the test published while its mock is still there: a subscriber that writes
    (the audit log, the pull counts a timer would write a window later) must not reach the next
    test's table, or real AWS."""
    from chalicelib import wiring

    if wiring.services.cache_info().currsize:
        wiring.services().events.drain()
        wiring.services().pulls.flush()
