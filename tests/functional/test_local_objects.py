"""Uploads and downloads over HTTP with the embedded runner's object store (files, `stores/files.py`).

The rest of the functional suite runs on moto S3 (the AWS path); here the app is wired as `make
serve` wires it: `REGISTRY_LOCAL_OBJECT_DIR` set, and the WSGI adapter serving the signed download
URLs that blob GET redirects to. DynamoDB is still moto.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.test import Client

from tests.functional.helpers import Registry, assert_error, digest_of, random_bytes

REPO = "library/local-objects"
MIB = 1024 * 1024


class LocalRegistry(Registry):
    def __init__(self, client: Client, auth: Any, root: Path) -> None:
        super().__init__(client, auth)
        self.root = root

    def files(self) -> list[str]:
        """Object keys on disk (the store's own dot-directories left out)."""
        found = []
        for top, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [str(Path(top, n).relative_to(self.root)) for n in names if top != str(self.root)]
        return sorted(found)

    def scratch(self) -> list[str]:
        """What is left in the store's scratch directories once its background removals are done
        (a completed multipart upload's parts are removed on a thread of their own)."""
        for thread in threading.enumerate():
            if thread.name == "multipart-cleanup":
                thread.join(30)
        return sorted(str(p.relative_to(self.root)) for d in (".tmp", ".multipart") for p in (self.root / d).rglob("*"))

    def download(self, repo: str, digest: str, **kwargs: Any) -> Any:
        response = self.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 307, response.get_data()[:300]
        location = response.headers["Location"]
        assert location.startswith("/_local/objects/blobs/"), location
        return self.http.open(location, auth=None, **kwargs)


@pytest.fixture
def local(registry: Any, tmp_path: Path) -> LocalRegistry:
    from app import app
    from chalicelib.local.wsgi import ChaliceWSGI
    from chalicelib.stores.files import FileObjectStore

    root = tmp_path / "objects"
    registry.configure(local_object_dir=root, part_size_bytes=5 * MIB)
    return LocalRegistry(Client(ChaliceWSGI(app, files=FileObjectStore(root))), registry.auth, root)


def test_streamed_push_lands_at_its_content_address(local: LocalRegistry) -> None:
    """docker/podman/skopeo: POST, one PATCH without Content-Range, PUT ?digest= (no copy)."""
    data = random_bytes(3 * MIB + 17)  # large enough for the O_DIRECT path
    digest = local.push_blob_chunked(REPO, data, len(data), content_range=False)
    assert local.files() == [f"blobs/sha256/{digest.split(':')[1]}"]
    assert local.scratch() == []
    fetched = local.download(REPO, digest)
    assert fetched.status_code == 200
    assert fetched.get_data() == data
    assert fetched.headers["Content-Length"] == str(len(data))


def test_chunked_push_through_multipart_staging(local: LocalRegistry) -> None:
    data = random_bytes(12 * MIB + 5)
    digest = local.push_blob_chunked(REPO, data, 2 * MIB)
    assert local.files() == [f"blobs/sha256/{digest.split(':')[1]}"]  # chunks, parts and data removed
    assert local.scratch() == []
    assert local.download(REPO, digest).get_data() == data


def test_chunked_push_with_a_wrong_digest_leaves_nothing_visible(local: LocalRegistry) -> None:
    data = random_bytes(7 * MIB)
    location = local.start_upload(REPO).headers["Location"]
    for offset in range(0, len(data), 3 * MIB):
        response = local.patch_chunk(location, data[offset : offset + 3 * MIB], offset)
        assert response.status_code == 202
        location = response.headers["Location"]
    wrong = digest_of(b"something else")
    assert_error(local.finish_upload(location, wrong), 400, "DIGEST_INVALID")
    assert local.head(f"/v2/{REPO}/blobs/{wrong}").status_code == 404
    assert local.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
    assert local.scratch() == []
    assert not [f for f in local.files() if f.startswith(("uploads/", f"blobs/sha256/{wrong.split(':')[1]}"))]


def test_monolithic_push_with_a_wrong_digest_writes_nothing(local: LocalRegistry) -> None:
    data = random_bytes(2 * MIB)
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    response = local.post(f"/v2/{REPO}/blobs/uploads/", query_string={"digest": wrong}, data=data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert local.files() == []
    assert local.scratch() == []


def test_sha512_and_small_blobs(local: LocalRegistry) -> None:
    small = random_bytes(10)
    digest = local.push_blob(REPO, small)
    assert local.download(REPO, digest).get_data() == small
    other = random_bytes(300)
    digest512 = local.push_blob(REPO, other, algorithm="sha512", session=True)
    assert local.download(REPO, digest512).get_data() == other


def test_range_and_head_on_a_download(local: LocalRegistry) -> None:
    data = random_bytes(5000)
    digest = local.push_blob(REPO, data)
    part = local.download(REPO, digest, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.get_data() == data[100:1100]
    assert part.headers["Content-Range"] == "bytes 100-1099/5000"
    assert local.download(REPO, digest, headers={"Range": "bytes=4990-"}).get_data() == data[4990:]
    assert local.download(REPO, digest, headers={"Range": "bytes=-10"}).get_data() == data[-10:]
    assert local.download(REPO, digest, headers={"Range": "bytes=9000-"}).status_code == 416
    head = local.download(REPO, digest, method="HEAD")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "5000"
    assert head.get_data() == b""


def _signed(local: LocalRegistry, digest: str) -> tuple[str, dict[str, str]]:
    location = local.get(f"/v2/{REPO}/blobs/{digest}").headers["Location"]
    parts = urlsplit(location)
    return parts.path, dict(p.split("=", 1) for p in parts.query.split("&"))


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda path, q: (path, {**q, "signature": "0" * 64}), 403),
        (lambda path, q: (path, {**q, "expires": str(int(q["expires"]) + 3600)}), 403),
        (lambda path, q: (path, {"expires": q["expires"]}), 403),
        (lambda path, q: (path, {}), 403),
        (lambda path, q: (path, {**q, "expires": "-1"}), 403),
        (lambda path, q: (path.replace("/blobs/", "/blobs/../"), q), 403),
        (lambda path, q: ("/_local/objects/.url-key", q), 403),
        (lambda path, q: (path + "0", q), 403),
    ],
)
def test_tampered_download_urls_are_refused(local: LocalRegistry, change: Any, status: int) -> None:
    digest = local.push_blob(REPO, random_bytes(100))
    path, query = change(*_signed(local, digest))
    response = local.http.open(path, query_string=query)
    assert_error(response, status, "DENIED")


def test_download_of_a_vanished_object_and_other_methods(local: LocalRegistry) -> None:
    digest = local.push_blob(REPO, random_bytes(100))
    path, query = _signed(local, digest)
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        assert_error(local.http.open(path, method=method, query_string=query), 405, "UNSUPPORTED")
    (local.root / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    assert_error(local.http.open(path, query_string=query), 404, "BLOB_UNKNOWN")


def test_expired_download_url(local: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = local.push_blob(REPO, random_bytes(100))
    path, query = _signed(local, digest)
    import chalicelib.stores.files as files_module

    real = files_module.time.time
    monkeypatch.setattr(files_module.time, "time", lambda: real() + 3 * 3600)
    response = local.http.open(path, query_string=query)
    assert_error(response, 403, "DENIED")
    assert "expired" in response.get_json()["errors"][0]["message"]


@pytest.fixture
def inline(local: LocalRegistry) -> LocalRegistry:
    """The adapter as `make serve` builds it: a blob GET answered with the bytes, no redirect."""
    from app import app
    from chalicelib.local.wsgi import ChaliceWSGI
    from chalicelib.stores.files import FileObjectStore

    adapter = ChaliceWSGI(app, files=FileObjectStore(local.root), inline_downloads=True)
    return LocalRegistry(Client(adapter), local.auth, local.root)


def test_an_inline_blob_get_answers_with_the_bytes(inline: LocalRegistry) -> None:
    data = random_bytes(3 * MIB + 5)
    digest = inline.push_blob(REPO, data)
    response = inline.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200 and "Location" not in response.headers
    assert response.get_data() == data
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Length"] == str(len(data))
    ranged = inline.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.get_data() == data[10:20]
    assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert inline.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    head = inline.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and head.get_data() == b""


def test_an_inline_blob_get_refuses_what_the_redirect_refuses(inline: LocalRegistry) -> None:
    digest = inline.push_blob(REPO, random_bytes(100))
    assert_error(inline.get(f"/v2/library/elsewhere/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    (inline.root / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    assert_error(inline.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
