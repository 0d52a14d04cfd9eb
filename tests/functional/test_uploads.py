"""Blob uploads over HTTP: sessions, chunks, ranges, verification, monolithic pushes, cancel."""

from __future__ import annotations

import hashlib

import pytest

from tests.functional.helpers import (
    OCI_CONFIG,
    assert_error,
    descriptor,
    digest_of,
    image_manifest,
    random_bytes,
    range_end,
)

REPO = "library/uploads"


def _status(registry, location):
    return registry.get(location)


def test_start_upload_returns_session(registry):
    response = registry.post(f"/v2/{REPO}/blobs/uploads/")
    assert response.status_code == 202
    location = response.headers["Location"]
    uuid = response.headers["Docker-Upload-UUID"]
    assert location.startswith(f"/v2/{REPO}/blobs/uploads/")
    assert location.rsplit("/", 1)[1] == uuid and uuid
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert response.headers.get("Content-Length") == "0"
    # No body cap locally: no chunk limit advertised.
    assert "OCI-Chunk-Max-Length" not in response.headers


def test_start_upload_without_trailing_slash(registry):
    response = registry.post(f"/v2/{REPO}/blobs/uploads")
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{REPO}/blobs/uploads/")


def test_upload_ids_are_unique(registry):
    ids = {registry.start_upload(REPO).headers["Docker-Upload-UUID"] for _ in range(5)}
    assert len(ids) == 5


def test_chunked_upload_with_content_range(registry):
    data = random_bytes(3000)
    location = registry.start_upload(REPO).headers["Location"]
    for start in range(0, 3000, 1000):
        response = registry.patch_chunk(location, data[start : start + 1000], start)
        assert response.status_code == 202
        assert response.headers["Range"] == f"0-{start + 999}"
        assert response.headers["Location"].startswith(f"/v2/{REPO}/blobs/uploads/")
        assert response.headers["Docker-Upload-UUID"]
        location = response.headers["Location"]
    status = _status(registry, location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-2999"
    assert status.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    digest = digest_of(data)
    response = registry.finish_upload(location, digest)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "3000"
    assert head.headers["Docker-Content-Digest"] == digest


def test_stream_chunks_without_content_range_append(registry):
    data = random_bytes(2500)
    location = registry.start_upload(REPO).headers["Location"]
    for start in range(0, 2500, 1000):
        response = registry.patch_chunk(location, data[start : start + 1000])
        assert response.status_code == 202
        assert range_end(response) == min(start + 1000, 2500) - 1
    digest = digest_of(data)
    assert registry.finish_upload(location, digest).status_code == 201
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").headers["Content-Length"] == "2500"


def test_mixed_stream_and_ranged_chunks(registry):
    data = random_bytes(300)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data[:100]).status_code == 202
    assert registry.patch_chunk(location, data[100:200], 100).status_code == 202
    response = registry.finish_upload(location, digest_of(data), data[200:], 200)
    assert response.status_code == 201


def test_finish_with_final_chunk(registry):
    data = random_bytes(2048)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data[:1024], 0).status_code == 202
    digest = digest_of(data)
    response = registry.finish_upload(location, digest, data[1024:], 1024)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").headers["Content-Length"] == "2048"


def test_finish_with_final_chunk_without_content_range(registry):
    data = random_bytes(2048)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data[:1000]).status_code == 202
    response = registry.finish_upload(location, digest_of(data), data[1000:])
    assert response.status_code == 201


@pytest.mark.parametrize("bad_start", [500, 1500])
def test_out_of_order_or_overlapping_chunk_is_416(registry, bad_start):
    data = random_bytes(2000)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data[:1000], 0).status_code == 202
    response = registry.patch_chunk(location, data[bad_start : bad_start + 500], bad_start)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-999"
    assert response.headers["Location"].startswith(f"/v2/{REPO}/blobs/uploads/")
    # Nothing was appended; the upload continues from the real offset.
    assert _status(registry, location).headers["Range"] == "0-999"
    assert registry.patch_chunk(location, data[1000:], 1000).status_code == 202
    assert registry.finish_upload(location, digest_of(data)).status_code == 201


def test_first_chunk_not_at_zero_is_416(registry):
    location = registry.start_upload(REPO).headers["Location"]
    response = registry.patch_chunk(location, b"x" * 10, 10)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == "0-0"


def test_content_range_not_matching_body_length_is_rejected(registry):
    location = registry.start_upload(REPO).headers["Location"]
    response = registry.patch(location, data=b"x" * 10, headers={"Content-Range": "0-19"})
    assert response.status_code in (400, 416)
    assert response.get_json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert _status(registry, location).headers["Range"] == "0-0"


@pytest.mark.parametrize(
    "header",
    # The last two were a 500 (int() of 5,000 digits raises) and a 202 (`\\d` takes Arabic-Indic digits).
    ["abc", "10-5", "bytes=", "-5", "0-x", "1-2-3", "0-" + "9" * 5000, "\u0660-\u0665"],
)
def test_malformed_content_range_is_400(registry, header):
    location = registry.start_upload(REPO).headers["Location"]
    response = registry.patch(location, data=b"x" * 6, headers={"Content-Range": header})
    assert_error(response, 400, "BLOB_UPLOAD_INVALID")
    assert _status(registry, location).headers["Range"] == "0-0"


def test_wrong_digest_on_chunked_put(registry):
    data = random_bytes(1500)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data, 0).status_code == 202
    claimed = digest_of(b"something else")
    response = registry.finish_upload(location, claimed)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.object_keys("uploads/") == []
    assert registry.object_keys("blobs/") == []


def test_wrong_digest_on_whole_body_put(registry):
    data = random_bytes(1500)
    location = registry.start_upload(REPO).headers["Location"]
    claimed = digest_of(data + b"!")
    assert_error(registry.finish_upload(location, claimed, data), 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.object_keys("blobs/") == []


def test_wrong_digest_on_final_chunk_put(registry):
    data = random_bytes(1500)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data[:500], 0).status_code == 202
    claimed = digest_of(data[:1000])
    assert_error(registry.finish_upload(location, claimed, data[500:], 500), 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.object_keys("uploads/") == []


def test_monolithic_post_with_digest(registry):
    data = random_bytes(777)
    digest = digest_of(data)
    response = registry.post(
        f"/v2/{REPO}/blobs/uploads/",
        query_string={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "777"


def test_monolithic_post_with_wrong_digest(registry):
    data = random_bytes(100)
    claimed = digest_of(b"other")
    response = registry.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": claimed}, data=data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404


def test_monolithic_put_after_post(registry):
    """containerd: POST for a session, then one PUT ?digest= with the whole blob."""
    data = random_bytes(4096)
    location = registry.start_upload(REPO).headers["Location"]
    digest = digest_of(data)
    response = registry.put(
        location,
        query_string={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").headers["Content-Length"] == "4096"
    assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == data
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_empty_blob(registry):
    location = registry.start_upload(REPO).headers["Location"]
    digest = digest_of(b"")
    assert registry.finish_upload(location, digest).status_code == 201
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"


def test_sha512_upload_in_chunks(registry):
    data = random_bytes(2500)
    digest = registry.push_blob_chunked(REPO, data, 1000, algorithm="sha512", upload_algorithm="sha512")
    assert digest.startswith("sha512:") and len(digest) == 7 + 128
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "2500"
    assert head.headers["Docker-Content-Digest"] == digest
    assert registry.read_object(f"blobs/sha512/{hashlib.sha512(data).hexdigest()}") == data


def test_sha512_put_on_sha256_hashed_upload(registry):
    data = random_bytes(2500)
    digest = registry.push_blob_chunked(REPO, data, 1000, algorithm="sha512")
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").headers["Content-Length"] == "2500"


def test_sha256_put_on_sha512_hashed_upload(registry):
    data = random_bytes(2500)
    digest = registry.push_blob_chunked(REPO, data, 1000, algorithm="sha256", upload_algorithm="sha512")
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 200


def test_sha512_wrong_digest_on_sha256_hashed_upload(registry):
    data = random_bytes(1500)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data, 0).status_code == 202
    claimed = digest_of(data[:-1], "sha512")
    assert_error(registry.finish_upload(location, claimed), 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404


def test_sha512_monolithic_post(registry):
    data = random_bytes(300)
    digest = digest_of(data, "sha512")
    response = registry.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": digest}, data=data)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest


def test_unsupported_digest_algorithm_on_post(registry):
    response = registry.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest-algorithm": "md5"})
    assert_error(response, 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:xyz",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 128,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
    ],
)
def test_malformed_digest_on_put(registry, digest):
    data = b"hello"
    location = registry.start_upload(REPO).headers["Location"]
    response = registry.put(location, query_string={"digest": digest}, data=data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404


def test_put_without_digest_parameter(registry):
    location = registry.start_upload(REPO).headers["Location"]
    assert_error(registry.put(location, data=b"hello"), 400, "DIGEST_INVALID")


def test_malformed_digest_on_monolithic_post(registry):
    response = registry.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": "sha256:nothex"}, data=b"x")
    assert_error(response, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_id(registry, method):
    location = f"/v2/{REPO}/blobs/uploads/does-not-exist"
    response = registry.request(method, location, query_string={"digest": digest_of(b"x")}, data=b"x")
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_of_another_repository_is_unknown(registry):
    location = registry.start_upload(REPO).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    other = f"/v2/library/other/blobs/uploads/{upload_id}"
    assert_error(registry.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.patch_chunk(other, b"abc", 0), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.finish_upload(other, digest_of(b"abc"), b"abc"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.delete(other), 404, "BLOB_UPLOAD_UNKNOWN")
    assert _status(registry, location).status_code == 204


def test_claims_on_another_repositorys_upload_give_the_lease_back(registry):
    """PATCH and the empty closing PUT take the session without reading it first; a session of
    another repository is then unknown to them, and its own client carries on at once."""
    data = random_bytes(3000)
    location = registry.start_upload(REPO).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    other = f"/v2/library/other/blobs/uploads/{upload_id}"
    assert_error(registry.patch_chunk(other, data[:1000]), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.finish_upload(other, digest_of(data)), 404, "BLOB_UPLOAD_UNKNOWN")
    assert _status(registry, location).headers["Range"] == "0-0"
    response = registry.patch_chunk(location, data)
    assert response.status_code == 202
    assert range_end(response) == len(data) - 1
    assert_error(registry.finish_upload(other, digest_of(data)), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.finish_upload(location, digest_of(data)).status_code == 201
    assert registry.head(f"/v2/library/other/blobs/{digest_of(data)}").status_code == 404


def test_empty_close_of_an_unknown_or_finished_upload(registry):
    assert_error(
        registry.finish_upload(f"/v2/{REPO}/blobs/uploads/does-not-exist", digest_of(b"")), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    data = random_bytes(100)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, data).status_code == 202
    assert registry.finish_upload(location, digest_of(data)).status_code == 201
    assert_error(registry.finish_upload(location, digest_of(data)), 404, "BLOB_UPLOAD_UNKNOWN")


def test_cancel_upload(registry):
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, b"abc" * 100, 0).status_code == 202
    response = registry.delete(location)
    assert response.status_code == 204
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.patch_chunk(location, b"more", 300), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.object_keys("uploads/") == []


def test_finished_upload_is_gone(registry):
    data = b"finished"
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.finish_upload(location, digest_of(data), data).status_code == 201
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(registry.finish_upload(location, digest_of(data), data), 404, "BLOB_UPLOAD_UNKNOWN")


def test_pushing_the_same_blob_twice(registry):
    data = random_bytes(1000)
    first = registry.push_blob(REPO, data, session=True)
    second = registry.push_blob_chunked(REPO, data, 300)
    assert registry.push_blob(REPO, data) == first
    assert first == second
    assert registry.object_keys("blobs/") == [f"blobs/sha256/{first.split(':')[1]}"]


def test_multipart_assembly_is_byte_exact(registry):
    """Chunks below a part are staged, folded into 5 MiB parts, and assembled into one object."""
    import requests

    registry.configure(part_size_bytes=5 * 1024 * 1024)
    data = random_bytes(12 * 1024 * 1024 + 12345)
    digest = registry.push_blob_chunked(REPO, data, 1024 * 1024)
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.headers["Content-Length"] == str(len(data))
    response = registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 307
    fetched = requests.get(response.headers["Location"], timeout=30)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == digest.split(":")[1]
    assert fetched.content == data
    assert registry.object_keys("uploads/") == []
    assert registry.multipart_uploads() == []


def test_multipart_assembly_sha512(registry):
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    data = random_bytes(7 * 1024 * 1024)
    digest = registry.push_blob_chunked(REPO, data, 2 * 1024 * 1024, algorithm="sha512", upload_algorithm="sha512")
    assert registry.read_object(f"blobs/sha512/{digest.split(':')[1]}") == data
    assert registry.object_keys("uploads/") == []


def test_multipart_assembly_with_other_algorithm_at_the_end(registry):
    """The running hash is sha256 but the client closes with sha512: re-hashed from S3."""
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    data = random_bytes(7 * 1024 * 1024)
    digest = registry.push_blob_chunked(REPO, data, 2 * 1024 * 1024, algorithm="sha512")
    assert registry.read_object(f"blobs/sha512/{digest.split(':')[1]}") == data


def test_multipart_assembly_wrong_digest_leaves_nothing(registry):
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    data = random_bytes(7 * 1024 * 1024)
    location = registry.start_upload(REPO).headers["Location"]
    step = 2 * 1024 * 1024
    for start in range(0, len(data), step):
        assert registry.patch_chunk(location, data[start : start + step], start).status_code == 202
    claimed = digest_of(data[:-1])
    assert_error(registry.finish_upload(location, claimed), 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert_error(_status(registry, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.object_keys("uploads/") == []
    assert registry.object_keys("blobs/") == []
    assert registry.multipart_uploads() == []


def test_single_chunk_larger_than_a_part(registry):
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    data = random_bytes(6 * 1024 * 1024)
    digest = registry.push_blob_chunked(REPO, data, len(data))
    assert registry.read_object(f"blobs/sha256/{digest.split(':')[1]}") == data
    assert registry.object_keys("uploads/") == []


def test_cancel_multipart_upload_cleans_up(registry):
    registry.configure(part_size_bytes=5 * 1024 * 1024)
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, random_bytes(6 * 1024 * 1024), 0).status_code == 202
    assert registry.patch_chunk(location, b"tail", 6 * 1024 * 1024).status_code == 202
    assert registry.delete(location).status_code == 204
    assert registry.object_keys("uploads/") == []
    assert registry.multipart_uploads() == []


class TestBodyCap:
    LIMIT = 1024

    @pytest.fixture(autouse=True)
    def _cap(self, registry):
        registry.configure(max_body_bytes=self.LIMIT)

    def test_post_advertises_chunk_limit(self, registry):
        response = registry.start_upload(REPO)
        assert response.headers["OCI-Chunk-Max-Length"] == str(self.LIMIT)

    def test_oversized_patch_is_413_and_writes_nothing(self, registry):
        location = registry.start_upload(REPO).headers["Location"]
        assert registry.patch_chunk(location, b"a" * 100, 0).status_code == 202
        response = registry.patch_chunk(location, b"b" * 2048, 100)
        entry = assert_error(response, 413, "SIZE_INVALID")
        assert str(self.LIMIT) in entry["message"]
        status = _status(registry, location)
        assert status.status_code == 204
        assert status.headers["Range"] == "0-99"
        assert status.headers["OCI-Chunk-Max-Length"] == str(self.LIMIT)

    def test_chunks_within_the_cap_succeed(self, registry):
        data = random_bytes(3000)
        digest = registry.push_blob_chunked(REPO, data, self.LIMIT)
        assert registry.head(f"/v2/{REPO}/blobs/{digest}").headers["Content-Length"] == "3000"

    def test_chunk_exactly_at_the_cap(self, registry):
        location = registry.start_upload(REPO).headers["Location"]
        response = registry.patch_chunk(location, b"c" * self.LIMIT, 0)
        assert response.status_code == 202
        assert response.headers["OCI-Chunk-Max-Length"] == str(self.LIMIT)

    def test_oversized_monolithic_post_is_413(self, registry):
        data = random_bytes(2048)
        digest = digest_of(data)
        response = registry.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": digest}, data=data)
        entry = assert_error(response, 413, "SIZE_INVALID")
        assert str(self.LIMIT) in entry["message"]
        assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404

    def test_oversized_manifest_is_413(self, registry):
        config = b"{}"
        registry.push_blob(REPO, config)
        doc = image_manifest(descriptor(OCI_CONFIG, config), [], annotations={"pad": "x" * 2048})
        response = registry.put_manifest(REPO, "big", doc)
        entry = assert_error(response, 413, "SIZE_INVALID")
        assert str(self.LIMIT) in entry["message"]
        assert registry.tag_names(REPO) == []

    def test_oversized_final_put_is_413(self, registry):
        data = random_bytes(2048)
        location = registry.start_upload(REPO).headers["Location"]
        assert_error(registry.finish_upload(location, digest_of(data), data), 413, "SIZE_INVALID")
        assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
        assert _status(registry, location).headers["Range"] == "0-0"


def test_empty_patch_keeps_the_offset(registry):
    location = registry.start_upload(REPO).headers["Location"]
    assert registry.patch_chunk(location, b"abc", 0).status_code == 202
    response = registry.patch(location, data=b"")
    assert response.status_code == 202
    assert response.headers["Range"] == "0-2"
    assert registry.finish_upload(location, digest_of(b"abc")).status_code == 201
