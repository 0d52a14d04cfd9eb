"""The deployment's own scanner registration (what `make serve` does at start), the secret stores,
and concurrent writers of the registrations."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.conftest import LiveRegistry
from tests.unit.adapters.trivy_fake import TrivyFake

API = "/api/v2.0"


@pytest.fixture
def trivy() -> Iterator[TrivyFake]:
    fake = TrivyFake().start()
    yield fake
    fake.close()


@pytest.fixture
def reg(registry: LiveRegistry) -> LiveRegistry:
    registry.configure(scanner_allow_networks="127.0.0.1/32", scanner_metadata_cache_seconds=0)
    return registry


def _version(reg: LiveRegistry) -> int:
    item = reg.dynamodb.get_item(TableName=reg.table, Key={"pk": {"S": "SCANNERS"}, "sk": {"S": "REGISTRATIONS"}})
    return int(item["Item"]["version"]["N"])


def test_the_builtin_registration_is_idempotent_immutable_and_the_default(reg: LiveRegistry, trivy: TrivyFake) -> None:
    from chalicelib.wiring import services

    scanners = services().scanners
    first = scanners.ensure_builtin("osv-lite", trivy.url, "key-1")
    assert first.is_default and first.immutable and first.auth == "APIKey"
    version = _version(reg)
    again = scanners.ensure_builtin("osv-lite", trivy.url, "key-1")
    assert again == first and _version(reg) == version  # nothing written
    moved = scanners.ensure_builtin("osv-lite", trivy.url + "/", "key-2")  # another address and key
    assert moved.uuid == first.uuid and moved.credential_ref != first.credential_ref
    assert len(scanners.all()) == 1
    trivy.requests.clear()
    assert reg.get(f"{API}/scanners/{first.uuid}/metadata").status_code == 200
    assert any(h.get("X-Scanneradapter-Api-Key") == "key-2" for _, _, h in trivy.requests)
    record = reg.get(f"{API}/scanners/{first.uuid}").get_json()
    assert reg.put(f"{API}/scanners/{first.uuid}", json={**record, "description": "x"}).status_code == 403
    assert reg.delete(f"{API}/scanners/{first.uuid}").status_code == 403


def test_the_builtin_registration_leaves_another_default_alone(reg: LiveRegistry, trivy: TrivyFake) -> None:
    from chalicelib.wiring import services

    created = reg.post(f"{API}/scanners", json={"name": "trivy", "url": trivy.url})
    assert created.status_code == 201
    builtin = services().scanners.ensure_builtin("osv-lite", "http://127.0.0.1:1", "key")
    assert not builtin.is_default
    default = services().scanners.default()
    assert default is not None and default.name == "trivy"


def test_secrets_manager_holds_the_credential_and_a_delete_removes_it(reg: LiveRegistry, trivy: TrivyFake) -> None:
    import boto3

    created = reg.post(f"{API}/scanners", json={"name": "t", "url": trivy.url, "auth": "Bearer",
                                                "access_credential": "tok-123"})  # fmt: skip
    assert created.status_code == 201
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    listed = secrets.list_secrets()["SecretList"]
    assert [s["Name"].startswith("registry/scanner-") for s in listed] == [True]
    assert secrets.get_secret_value(SecretId=listed[0]["ARN"])["SecretString"] == "tok-123"
    # A second default-less registration so the first can go once it is not the default.
    other = TrivyFake().start()
    try:
        second = reg.post(f"{API}/scanners", json={"name": "u", "url": other.url}).headers["Location"].rsplit("/")[-1]
        assert reg.patch(f"{API}/scanners/{second}", json={"is_default": True}).status_code == 200
        uuid = created.headers["Location"].rsplit("/", 1)[-1]
        assert reg.delete(f"{API}/scanners/{uuid}").status_code == 200
    finally:
        other.close()
    assert secrets.list_secrets()["SecretList"] == []


def test_the_local_secret_store_encrypts_and_binds_each_value_to_its_row(reg: LiveRegistry, tmp_path: Path) -> None:
    from chalicelib.errors import NotFound
    from chalicelib.stores.secrets import LocalSecretStore

    reg.get(f"{API}/ping")  # the wiring binds the table
    store = LocalSecretStore(os.urandom(32))
    first, second = store.put("a", "first-secret"), store.put("b", "second-secret")
    assert store.get(first) == "first-secret" and store.get(second) == "second-secret"
    items = reg.dynamodb.scan(TableName=reg.table)["Items"]
    assert "first-secret" not in json.dumps(items, default=str)
    with pytest.raises(NotFound):
        LocalSecretStore(os.urandom(32)).get(first)  # another key reads nothing
    # A ciphertext copied under another row's key does not decrypt there.
    key_of = {i["pk"]["S"]: i for i in items if i["pk"]["S"].startswith("SECRET#")}
    pk_first, pk_second = (f"SECRET#{r.removeprefix('local:')}" for r in (first, second))
    swapped = {**key_of[pk_second], "ciphertext": key_of[pk_first]["ciphertext"]}
    reg.dynamodb.put_item(TableName=reg.table, Item=swapped)
    with pytest.raises(NotFound):
        store.get(second)
    store.delete(first)
    with pytest.raises(NotFound):
        store.get(first)


def test_the_local_secret_store_is_used_when_a_key_file_is_set(
    reg: LiveRegistry, trivy: TrivyFake, tmp_path: Path
) -> None:
    import boto3

    key_file = tmp_path / "secret-key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    reg.configure(local_secret_key_file=str(key_file))
    created = reg.post(f"{API}/scanners", json={"name": "t", "url": trivy.url, "auth": "Basic",
                                                "access_credential": "user:pass-123"})  # fmt: skip
    assert created.status_code == 201
    assert boto3.client("secretsmanager", region_name="us-east-1").list_secrets()["SecretList"] == []
    trivy.requests.clear()
    uuid = created.headers["Location"].rsplit("/", 1)[-1]
    assert reg.get(f"{API}/scanners/{uuid}/metadata").status_code == 200
    expected = "Basic " + base64.b64encode(b"user:pass-123").decode()
    assert any(h.get("Authorization") == expected for _, _, h in trivy.requests)


def test_concurrent_creates_of_one_name_store_one(reg: LiveRegistry) -> None:
    fakes = [TrivyFake().start() for _ in range(4)]
    statuses: list[int] = []
    barrier = threading.Barrier(len(fakes))

    def create(fake: TrivyFake) -> None:
        client = reg.clone()
        barrier.wait()
        statuses.append(client.post(f"{API}/scanners", json={"name": "same", "url": fake.url}).status_code)

    threads = [threading.Thread(target=create, args=(f,)) for f in fakes]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for fake in fakes:
            fake.close()
    assert sorted(statuses) == [201, 409, 409, 409]
    listed: list[dict[str, Any]] = reg.get(f"{API}/scanners").get_json()
    assert len(listed) == 1 and listed[0]["is_default"] is True
