"""Concurrent requests from threads, each with its own client, against one app and one mock.

moto's `mock_aws()` is process-wide, so every thread sees the same table and bucket; the app keeps
its request state per thread (`RegistryApp`). These tests check the app's conditional writes.

moto itself is not thread-safe: `TransactWriteItems` deep-copies the table while another thread
writes to it ("dictionary changed size during iteration"), and a conditional update is a
check-then-set in Python. Real DynamoDB and S3 execute each call atomically, so the fixture below
serialises moto's handling of each AWS call: requests still interleave between calls, exactly
the granularity the app's leases and conditions are designed for.
"""

from __future__ import annotations

import threading

import pytest

from tests.functional.helpers import (
    OCI_MANIFEST,
    Registry,
    assert_error,
    digest_of,
    random_bytes,
    run_together,
    serialise_aws_calls,
)

REPO = "library/concurrent"
THREADS = 8


@pytest.fixture(autouse=True)
def _atomic_aws_calls(monkeypatch):
    serialise_aws_calls(monkeypatch)


def test_same_blob_pushed_by_many_threads(registry):
    data = random_bytes(64 * 1024)
    digest = digest_of(data)

    def push(index: int, client: Registry) -> int:
        if index % 2:
            response = client.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": digest}, data=data)
            return response.status_code
        location = client.start_upload(REPO).headers["Location"]
        assert client.patch_chunk(location, data[:1000], 0).status_code == 202
        return client.finish_upload(location, digest, data[1000:], 1000).status_code

    assert run_together(registry, THREADS, push) == [201] * THREADS
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert registry.object_keys("blobs/") == [f"blobs/sha256/{digest.split(':')[1]}"]
    assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == data
    assert registry.object_keys("uploads/") == []


def test_different_blobs_pushed_by_many_threads(registry):
    blobs = [random_bytes(10_000 + i) for i in range(THREADS)]

    def push(index: int, client: Registry) -> str:
        return client.push_blob_chunked(REPO, blobs[index], 3000)

    digests = run_together(registry, THREADS, push)
    assert digests == [digest_of(b) for b in blobs]
    for data, digest in zip(blobs, digests, strict=True):
        head = registry.head(f"/v2/{REPO}/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(data))
        assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == data
    assert registry.object_keys("uploads/") == []


@pytest.mark.parametrize("attempt", range(5))
def test_two_patches_at_the_same_offset(registry, attempt):
    head = random_bytes(500)
    candidates = [random_bytes(700), random_bytes(700)]
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, head, 0).status_code == 202

    def patch(index: int, client: Registry):
        return client.patch_chunk(location, candidates[index], 500)

    responses = run_together(registry, 2, patch)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 416], [r.get_data() for r in responses]
    loser = next(r for r in responses if r.status_code == 416)
    assert_error(loser, 416, "BLOB_UPLOAD_INVALID")
    assert loser.headers["Range"] in ("0-499", "0-1199")
    winner = candidates[[r.status_code for r in responses].index(202)]
    assert registry.get(location).headers["Range"] == "0-1199"
    digest = digest_of(head + winner)
    assert registry.finish_upload(location, digest).status_code == 201
    assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == head + winner


def test_concurrent_tag_moves_leave_a_consistent_tag(registry):
    pushed = {}
    for i in range(THREADS):
        digest, body = registry.push_image(REPO, seed=bytes([i]) * 8)
        pushed[digest] = body
    bodies = list(pushed.values())
    seen: list[tuple[str, bytes]] = []
    stop = threading.Event()

    def read_continuously() -> None:
        client = registry.clone()
        while not stop.is_set():
            response = client.get(f"/v2/{REPO}/manifests/latest")
            if response.status_code == 200:
                seen.append((response.headers["Docker-Content-Digest"], response.get_data()))

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:

        def move(index: int, client: Registry) -> int:
            return client.put_manifest(REPO, "latest", bodies[index], OCI_MANIFEST).status_code

        assert run_together(registry, THREADS, move) == [201] * THREADS
    finally:
        stop.set()
        reader.join(timeout=30)

    response = registry.get(f"/v2/{REPO}/manifests/latest")
    assert response.status_code == 200
    digest, body = response.headers["Docker-Content-Digest"], response.get_data()
    assert digest in pushed
    assert body == pushed[digest]
    assert digest_of(body) == digest
    for seen_digest, seen_body in seen:
        assert seen_digest in pushed
        assert digest_of(seen_body) == seen_digest
    assert registry.tag_names(REPO) == ["latest"]
    # The moved tag is findable from the digest it points at: deleting that manifest removes it.
    assert registry.delete(f"/v2/{REPO}/manifests/{digest}").status_code == 202
    assert_error(registry.get(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")


def test_concurrent_pushes_of_different_tags(registry):
    def push(index: int, client: Registry) -> str:
        digest, _ = client.push_image(REPO, f"t{index}")
        return digest

    digests = run_together(registry, THREADS, push)
    assert registry.tag_names(REPO) == sorted(f"t{i}" for i in range(THREADS))
    for index, digest in enumerate(digests):
        assert registry.get(f"/v2/{REPO}/manifests/t{index}").headers["Docker-Content-Digest"] == digest


def test_concurrent_uploads_with_multipart_assembly(registry):
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    blobs = [random_bytes(6 * 1024 * 1024 + i) for i in range(3)]

    def push(index: int, client: Registry) -> str:
        return client.push_blob_chunked(REPO, blobs[index], 2 * 1024 * 1024)

    digests = run_together(registry, 3, push)
    for data, digest in zip(blobs, digests, strict=True):
        assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == data
    assert registry.object_keys("uploads/") == []
    assert registry.multipart_uploads() == []
