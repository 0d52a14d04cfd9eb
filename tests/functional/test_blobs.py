"""Blob HEAD/GET/DELETE and cross-repository mounts over HTTP."""

from __future__ import annotations

import pytest
import requests

from tests.functional.helpers import assert_error, digest_of, random_bytes

REPO = "library/blobs"
SOURCE = "library/source"
TARGET = "library/target"
UPLOADS = f"/v2/{TARGET}/blobs/uploads/"


def test_head_blob(registry):
    data = random_bytes(1234)
    digest = registry.push_blob(REPO, data)
    response = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "1234"
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.get_data() == b""


def test_head_is_answered_from_dynamodb(registry):
    """HEAD does not touch S3: it still answers when the object is (wrongly) gone."""
    data = random_bytes(100)
    digest = registry.push_blob(REPO, data)
    registry.s3.delete_object(Bucket=registry.bucket, Key=f"blobs/sha256/{digest.split(':')[1]}")
    response = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "100"


def test_get_blob_redirects_to_presigned_url(registry):
    data = random_bytes(5000)
    digest = registry.push_blob(REPO, data)
    response = registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 307
    assert response.headers["Docker-Content-Digest"] == digest
    location = response.headers["Location"]
    assert location.startswith("https://")
    assert "X-Amz-Signature=" in location
    assert f"blobs/sha256/{digest.split(':')[1]}" in location
    fetched = requests.get(location, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data


def test_range_request_through_presigned_url(registry):
    data = random_bytes(5000)
    digest = registry.push_blob(REPO, data)
    location = registry.get(f"/v2/{REPO}/blobs/{digest}").headers["Location"]
    fetched = requests.get(location, headers={"Range": "bytes=100-1099"}, timeout=30)
    assert fetched.status_code == 206
    assert fetched.content == data[100:1100]
    tail = requests.get(location, headers={"Range": "bytes=4990-"}, timeout=30)
    assert tail.status_code == 206
    assert tail.content == data[4990:]


def test_sha512_blob_get(registry):
    data = random_bytes(300)
    digest = registry.push_blob(REPO, data, algorithm="sha512", session=True)
    response = registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 307
    assert response.headers["Docker-Content-Digest"] == digest
    assert requests.get(response.headers["Location"], timeout=30).content == data


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_unknown_blob(registry, method):
    digest = digest_of(b"never pushed")
    response = registry.request(method, f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 404
    if method != "HEAD":
        assert_error(response, 404, "BLOB_UNKNOWN")


def test_unknown_blob_in_unknown_repository(registry):
    assert_error(registry.get(f"/v2/library/nobody-here/blobs/{digest_of(b'x')}"), 404, "BLOB_UNKNOWN")


def test_blob_of_another_repository_is_not_visible(registry):
    data = random_bytes(200)
    digest = registry.push_blob("library/team-one", data)
    assert registry.head(f"/v2/library/team-two/blobs/{digest}").status_code == 404
    assert_error(registry.get(f"/v2/library/team-two/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(registry.delete(f"/v2/library/team-two/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert registry.head(f"/v2/library/team-one/blobs/{digest}").status_code == 200


def test_delete_blob(registry):
    digest = registry.push_blob(REPO, random_bytes(64))
    response = registry.delete(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 202
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404
    assert_error(registry.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(registry.delete(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_only_unlinks_one_repository(registry):
    data = random_bytes(64)
    digest = registry.push_blob("library/team-one", data)
    registry.push_blob("library/team-two", data)
    assert registry.delete(f"/v2/library/team-one/blobs/{digest}").status_code == 202
    assert registry.head(f"/v2/library/team-one/blobs/{digest}").status_code == 404
    assert registry.head(f"/v2/library/team-two/blobs/{digest}").status_code == 200


def test_push_after_delete_makes_blob_visible_again(registry):
    data = random_bytes(64)
    digest = registry.push_blob(REPO, data)
    assert registry.delete(f"/v2/{REPO}/blobs/{digest}").status_code == 202
    registry.push_blob(REPO, data)
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "g" * 64, "md5:" + "a" * 32, "nodigest:"])
def test_malformed_digest(registry, method, digest):
    response = registry.request(method, f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 400
    if method != "HEAD":
        assert_error(response, 400, "DIGEST_INVALID")


class TestMount:
    def test_mount_from_repository_that_has_the_blob(self, registry):
        data = random_bytes(300)
        digest = registry.push_blob(SOURCE, data)
        response = registry.post(UPLOADS, query_string={"mount": digest, "from": SOURCE})
        assert response.status_code == 201
        assert response.headers["Location"] == f"/v2/{TARGET}/blobs/{digest}"
        assert response.headers["Docker-Content-Digest"] == digest
        head = registry.head(f"/v2/{TARGET}/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == "300"
        fetched = requests.get(registry.get(f"/v2/{TARGET}/blobs/{digest}").headers["Location"], timeout=30)
        assert fetched.content == data
        # A link, not a copy.
        assert registry.object_keys("blobs/") == [f"blobs/sha256/{digest.split(':')[1]}"]

    def test_mount_from_repository_without_the_blob_opens_a_session(self, registry):
        digest = registry.push_blob(SOURCE, random_bytes(300))
        response = registry.post(UPLOADS, query_string={"mount": digest, "from": "library/elsewhere"})
        assert response.status_code == 202
        assert response.headers["Location"].startswith(UPLOADS)
        assert response.headers["Docker-Upload-UUID"]
        assert response.headers["Range"] == "0-0"
        assert registry.head(f"/v2/{TARGET}/blobs/{digest}").status_code == 404
        # The session works as a normal upload.
        data = random_bytes(10)
        assert registry.finish_upload(response.headers["Location"], digest_of(data), data).status_code == 201

    def test_mount_of_unknown_blob_opens_a_session(self, registry):
        digest = digest_of(b"nobody has this")
        response = registry.post(UPLOADS, query_string={"mount": digest, "from": "library/src"})
        assert response.status_code == 202
        assert registry.head(f"/v2/{TARGET}/blobs/{digest}").status_code == 404

    def test_mount_from_repository_that_deleted_the_blob(self, registry):
        digest = registry.push_blob(SOURCE, random_bytes(30))
        assert registry.delete(f"/v2/{SOURCE}/blobs/{digest}").status_code == 202
        response = registry.post(UPLOADS, query_string={"mount": digest, "from": SOURCE})
        assert response.status_code == 202

    def test_mount_without_from_opens_a_session_by_default(self, registry):
        digest = registry.push_blob(SOURCE, random_bytes(300))
        response = registry.post(UPLOADS, query_string={"mount": digest})
        assert response.status_code == 202
        assert registry.head(f"/v2/{TARGET}/blobs/{digest}").status_code == 404

    def test_mount_without_from_with_auto_mount(self, registry):
        registry.configure(auto_mount=True)
        digest = registry.push_blob(SOURCE, random_bytes(300))
        response = registry.post(UPLOADS, query_string={"mount": digest})
        assert response.status_code == 201
        assert response.headers["Docker-Content-Digest"] == digest
        assert registry.head(f"/v2/{TARGET}/blobs/{digest}").status_code == 200

    def test_auto_mount_of_unknown_blob_opens_a_session(self, registry):
        registry.configure(auto_mount=True)
        response = registry.post(UPLOADS, query_string={"mount": digest_of(b"?")})
        assert response.status_code == 202

    def test_mount_with_malformed_digest(self, registry):
        response = registry.post(UPLOADS, query_string={"mount": "sha256:zz", "from": SOURCE})
        assert_error(response, 400, "DIGEST_INVALID")

    def test_mount_with_invalid_source_name(self, registry):
        digest = registry.push_blob(SOURCE, random_bytes(30))
        response = registry.post(UPLOADS, query_string={"mount": digest, "from": "Team/Source"})
        # An invalid `from` cannot have the blob: either refused as a name or treated as "not there".
        assert response.status_code in (202, 400)
        if response.status_code == 400:
            assert_error(response, 400, "NAME_INVALID")
        assert registry.head(f"/v2/{TARGET}/blobs/{digest}").status_code == 404

    def test_mounted_blob_can_be_referenced_by_a_manifest(self, registry):
        digest, _ = registry.push_image(SOURCE, "v1")
        manifest = registry.get(f"/v2/{SOURCE}/manifests/v1").get_json()
        for entry in [manifest["config"], *manifest["layers"]]:
            response = registry.post(UPLOADS, query_string={"mount": entry["digest"], "from": SOURCE})
            assert response.status_code == 201
        body = registry.get(f"/v2/{SOURCE}/manifests/v1").get_data()
        response = registry.put_manifest(TARGET, "v1", body)
        assert response.status_code == 201
        assert response.headers["Docker-Content-Digest"] == digest
