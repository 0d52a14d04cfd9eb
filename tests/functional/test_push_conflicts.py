"""The transactions of a push when DynamoDB cancels one because another transaction holds one of its
items (`TransactionConflict`, which moto never answers: it runs one transaction at a time): the
quota charge (project blob row, project row) and the blob's (blob row, link, session delete) that
close an upload, and the manifest's (manifest row, repository row, tag). Each is retried a few
times; when the conflict persists the request fails cleanly (429, nothing visible, nothing charged,
the upload session kept for a retry) and the client's retry succeeds."""

from __future__ import annotations

from typing import Any

import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError
from pynamodb.transactions import TransactWrite

from chalicelib.stores import keys
from tests.functional.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
    random_bytes,
)

REPO = "library/close-conflict"


def _inserts_blob(tx: TransactWrite) -> bool:
    return any(put["Item"]["sk"]["S"] == keys.BLOB_SK for put in tx._put_items)


def _charges_project(tx: TransactWrite) -> bool:
    return any(
        put["Item"]["pk"]["S"].startswith("PROJECT#") and put["Item"]["sk"]["S"].startswith(keys.BLOB_PREFIX)
        for put in tx._put_items
    )


def _writes_manifest(tx: TransactWrite) -> bool:
    return any(update["Key"]["pk"]["S"] == keys.REPOS_PK for update in tx._update_items)


def _conflicting(monkeypatch: pytest.MonkeyPatch, times: int, writes: Any = _inserts_blob) -> list[int]:
    """The next `times` commits of a transaction that `writes` picks (by default: one inserting a
    blob row) are cancelled as DynamoDB cancels one of two transactions on the same item; returns
    the count of those attempts."""
    original = TransactWrite._commit
    attempts: list[int] = []

    def commit(self: TransactWrite) -> Any:
        if writes(self):
            attempts.append(1)
            if len(attempts) <= times:
                reasons = [None] * (len(self._delete_items) + len(self._put_items))
                reasons[len(self._delete_items)] = CancellationReason(code="TransactionConflict")
                error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}}
                cause = VerboseClientError(error, "TransactWriteItems", cancellation_reasons=reasons)
                raise TransactWriteError("Failed to write transaction items", cause)
        return original(self)

    monkeypatch.setattr(TransactWrite, "_commit", commit)
    return attempts


def _used(registry: Any) -> int:
    quotas = registry.get("/api/v2.0/quotas", query_string={"reference": "project", "reference_id": 1})
    return int(quotas.get_json()[0]["used"]["storage"])


def _assert_visible(registry: Any, digest: str, data: bytes) -> None:
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert registry.read_object(keys.blob_object_key(digest)) == data


# The two transactions of a close: the blob's (two repositories closing one new blob) and the
# quota charge (every blob a push closes charges its project's row).
TRANSACTIONS = pytest.mark.parametrize("writes", [_inserts_blob, _charges_project], ids=["blob", "quota-charge"])


@TRANSACTIONS
def test_a_conflict_on_the_closing_transactions_is_retried(registry, monkeypatch, writes):
    data = random_bytes(40_000)
    digest = digest_of(data)
    before = _used(registry)
    location = registry.start_upload(REPO).headers["Location"]
    attempts = _conflicting(monkeypatch, times=2, writes=writes)
    put = registry.finish_upload(location, digest, data)
    assert put.status_code == 201, put.get_data()[:300]
    assert len(attempts) == 3
    _assert_visible(registry, digest, data)
    assert registry.get(location).status_code == 404  # the session ended with the blob
    assert _used(registry) == before + len(data)  # counted once


@TRANSACTIONS
def test_a_conflict_that_persists_fails_the_close_and_leaves_a_session_to_retry(registry, monkeypatch, writes):
    data = random_bytes(40_000)
    digest = digest_of(data)
    before = _used(registry)
    location = registry.start_upload(REPO).headers["Location"]
    patched = registry.patch_chunk(location, data)
    assert patched.status_code == 202
    attempts = _conflicting(monkeypatch, times=100, writes=writes)
    failed = registry.finish_upload(patched.headers["Location"], digest)
    assert failed.status_code == 429 and failed.headers["Retry-After"] == "1"  # contention: retry
    assert failed.get_json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert len(attempts) == 3  # bounded
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404
    assert _used(registry) == before  # nothing charged, or the charge given back
    monkeypatch.undo()
    retried = registry.finish_upload(patched.headers["Location"], digest)  # the lease was released
    assert retried.status_code == 201, retried.get_data()[:300]
    _assert_visible(registry, digest, data)
    assert _used(registry) == before + len(data)


def _image(registry: Any) -> bytes:
    """The manifest (bytes) of a config and a layer, both pushed to REPO first."""
    config = canonical({"architecture": "amd64", "os": "linux", "seed": random_bytes(8).hex()})
    layer = random_bytes(1000)
    registry.push_blob(REPO, config)
    registry.push_blob(REPO, layer)
    manifest = canonical(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)]))
    return manifest


def test_a_conflict_on_the_manifest_transaction_is_retried(registry, monkeypatch):
    """Every manifest push updates its repository's row: two tags pushed at once can conflict."""
    manifest = _image(registry)
    attempts = _conflicting(monkeypatch, times=2, writes=_writes_manifest)
    put = registry.put_manifest(REPO, "v1", manifest, OCI_MANIFEST)
    assert put.status_code == 201, put.get_data()[:300]
    assert len(attempts) == 3
    assert registry.get(f"/v2/{REPO}/manifests/v1").get_data() == manifest


def test_a_conflict_on_the_manifest_transaction_that_persists_is_a_429_and_the_retry_succeeds(registry, monkeypatch):
    manifest = _image(registry)
    before = _used(registry)
    attempts = _conflicting(monkeypatch, times=100, writes=_writes_manifest)
    failed = registry.put_manifest(REPO, "v1", manifest, OCI_MANIFEST)
    assert failed.status_code == 429 and failed.headers["Retry-After"] == "1"
    assert failed.get_json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert len(attempts) == 3
    assert registry.get(f"/v2/{REPO}/manifests/v1").status_code == 404
    monkeypatch.undo()
    assert registry.put_manifest(REPO, "v1", manifest, OCI_MANIFEST).status_code == 201
    assert registry.get(f"/v2/{REPO}/manifests/v1").get_data() == manifest
    assert _used(registry) == before + len(manifest)
