"""The upload relay over real HTTP on moto: capability URLs, streamed bodies, bad input and faults.

The app runs in process (werkzeug's test client, as in every functional test); the relay runs as it
does beside `make serve`: its own threaded HTTP server on a free port, the same wiring behind it.
Parts are 5 MiB (S3's minimum) so that a 12 MiB body crosses two part boundaries.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.functional.conftest import ADMIN
from tests.functional.helpers import MIB, assert_error, digest_of, random_bytes

REPO = "library/relayed"
KEY = "functional-relay-key-0123456789abcdefghij"
PART = 5 * MIB


class Relay:
    def __init__(self, registry: Any, files: Path | None = None) -> None:
        """`files`: the object store is the local one (`make serve`'s) under that directory, not S3."""
        self.registry = registry
        self.files = files
        self.httpd: Any = None
        self.port = 0

    def start(self) -> None:
        from chalicelib import wiring
        from chalicelib.relay import server
        from chalicelib.relay.app import RelayApp

        deadline = time.monotonic() + 10
        while True:
            try:
                self.httpd = server.build(RelayApp(wiring.services), "127.0.0.1", self.port)
                break
            except SystemExit:  # werkzeug's answer to a port in use: a restart may briefly find it taken
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.port = self.httpd.server_port
        # Polled every 50 ms: shutdown() waits for the loop's next poll (0.5 s by default).
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self, repo: str = REPO) -> str:
        """POST on the app; the Location it answers with (on the relay)."""
        location = self.registry.start_upload(repo).headers["Location"]
        assert location.startswith(self.url + f"/v2/{repo}/blobs/uploads/"), location
        return str(location)

    def offset(self, location: str) -> int:
        response = requests.get(location, timeout=30)
        assert response.status_code == 204, (response.status_code, response.text)
        # "0-0" is also what an empty session answers (no test here holds a 1-byte session).
        end = int(response.headers["Range"].partition("-")[2])
        return end + 1 if end else 0

    def pull(self, repo: str, digest: str) -> bytes:
        response = self.registry.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 307, (response.status_code, response.get_data()[:300])
        if self.files is not None:  # a signed URL the local WSGI adapter serves: read the file it names
            return (self.files / f"blobs/{digest.replace(':', '/')}").read_bytes()
        return requests.get(response.headers["Location"], timeout=60).content

    def keys(self, prefix: str = "") -> list[str]:
        """The object keys under `prefix`, in the bucket or in the local store's directory."""
        if self.files is None:
            return list(self.registry.object_keys(prefix))
        found = (str(p.relative_to(self.files)) for p in self.files.rglob("*") if p.is_file())
        return sorted(key for key in found if not key.startswith(".") and key.startswith(prefix))

    def nothing_staged(self) -> bool:
        """No staged chunk and no unfinished multipart upload."""
        if self.keys("uploads/"):
            return False
        if self.files is not None:
            return not any((self.files / ".multipart").iterdir())
        return self.registry.multipart_uploads() == []


def _serve(registry: Any, files: Path | None) -> Iterator[Relay]:
    live = Relay(registry, files)
    live.start()
    registry.configure(
        relay_url=live.url, relay_key=KEY, part_size_bytes=PART, max_body_bytes=MIB, local_object_dir=files
    )
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(params=["s3", "files"])
def relay(registry: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Relay]:
    """The relay on S3 (the AWS deployment: parts gathered, short tails staged) and on the local
    file store (`make serve`: parts written while they arrive)."""
    yield from _serve(registry, tmp_path / "objects" if request.param == "files" else None)


@pytest.fixture
def s3_relay(registry: Any) -> Iterator[Relay]:
    yield from _serve(registry, None)


@pytest.fixture
def files_relay(registry: Any, tmp_path: Path) -> Iterator[Relay]:
    yield from _serve(registry, tmp_path / "objects")


def _blocks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """A body `requests` sends with chunked transfer encoding (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _json_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.json()["errors"][0]["code"] == code, response.text


def test_post_hands_out_a_relay_location_with_a_capability_segment(relay, registry):
    response = registry.start_upload(REPO)
    location = response.headers["Location"]
    path = urlsplit(location).path
    upload_id = response.headers["Docker-Upload-UUID"]
    assert location.startswith(relay.url)
    assert path.startswith(f"/v2/{REPO}/blobs/uploads/{upload_id}/")
    assert "?" not in location
    # The cap is the app's; the relay has none, so chunking clients are not told to chunk.
    assert "OCI-Chunk-Max-Length" not in response.headers


def test_chunked_patch_then_empty_put_is_byte_exact(relay, registry):
    """docker's shape: one streaming PATCH (chunked encoding, no Content-Length), then PUT ?digest=."""
    data = random_bytes(12 * MIB + 12345)
    digest = digest_of(data)
    location = relay.session()
    patched = requests.patch(location, data=_blocks(data), timeout=60)
    assert patched.status_code == 202, patched.text
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    # The session moved on by exactly the body; its Location is still on the relay.
    assert patched.headers["Location"].startswith(relay.url)
    # The 2 MiB after the last full part: a part of their own on the file store, staged on S3.
    assert (relay.keys("uploads/") == []) == (relay.files is not None)
    put = requests.put(patched.headers["Location"], params={"digest": digest}, timeout=60)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest
    head = registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert relay.pull(REPO, digest) == data
    assert relay.nothing_staged()
    assert relay.keys("blobs/") == [f"blobs/sha256/{digest.split(':')[1]}"]


def test_one_put_with_the_whole_body_and_extra_query(relay, registry):
    """containerd's shape: PUT with the blob, the query re-encoded with `ns=` added, no Authorization;
    and podman's: the same request with its Basic credentials, which the relay accepts."""
    for index, auth in enumerate([None, ("admin", "whatever-the-client-sends")]):
        data = random_bytes(7 * MIB + index)
        digest = digest_of(data)
        location = relay.session()
        query = {"ns": "127.0.0.1:5000", "digest": digest}
        put = requests.put(location, params=query, data=data, auth=auth, timeout=60)
        assert put.status_code == 201, put.text
        assert relay.pull(REPO, digest) == data
    assert relay.nothing_staged()


def test_a_tail_s3_takes_as_a_part_is_not_staged(s3_relay, registry):
    """The bytes a body leaves after its last full part become a part of their own when S3 takes
    a part that size before the end (5 MiB): the closing PUT then has nothing to copy. A smaller
    tail is staged as before, and both kinds make one byte-exact blob."""
    registry.configure(part_size_bytes=8 * MIB)
    data = random_bytes(14 * MIB + 5)
    location = s3_relay.session()
    first = requests.patch(location, data=_blocks(data[: 14 * MIB]), timeout=60)
    assert first.status_code == 202, first.text
    assert registry.object_keys("uploads/") == []
    [upload] = registry.multipart_uploads()
    listed = registry.s3.list_parts(Bucket=registry.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    assert [part["Size"] for part in listed["Parts"]] == [8 * MIB, 6 * MIB]
    rest = {"Content-Range": f"{14 * MIB}-{len(data) - 1}"}
    second = requests.patch(first.headers["Location"], data=data[14 * MIB :], headers=rest, timeout=60)
    assert second.status_code == 202, second.text
    assert len(registry.object_keys("uploads/")) == 1  # the 5 bytes, staged
    put = requests.put(second.headers["Location"], params={"digest": digest_of(data)}, timeout=60)
    assert put.status_code == 201, put.text
    assert s3_relay.pull(REPO, digest_of(data)) == data
    assert s3_relay.nothing_staged()


def test_s3_takes_a_streamed_part_as_one_upload(registry):
    """`upload_part_stream` on S3 (the relay streams parts only into the file store): the blocks
    gathered into one UploadPart, the part exact once completed."""
    from chalicelib.stores.objects import S3ObjectStore

    store = S3ObjectStore(registry.s3, registry.bucket)
    blocks = [random_bytes(MIB), random_bytes(7), random_bytes(3 * MIB)]
    upload = store.start_multipart("uploads/streamed/data")
    etag = store.upload_part_stream("uploads/streamed/data", upload, 1, iter(blocks))
    store.complete_multipart("uploads/streamed/data", upload, [(1, etag)])
    assert registry.read_object("uploads/streamed/data") == b"".join(blocks)


def test_content_range_with_and_without_bytes_prefix(relay):
    data = random_bytes(6 * MIB + 7)
    location = relay.session()
    half = len(data) // 2
    for header, body in ((f"0-{half - 1}", data[:half]), (f"bytes {half}-{len(data) - 1}", data[half:])):
        response = requests.patch(location, data=body, headers={"Content-Range": header}, timeout=60)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
    assert requests.put(location, params={"digest": digest_of(data)}, timeout=60).status_code == 201
    assert relay.pull(REPO, digest_of(data)) == data


def test_chunks_through_the_app_and_the_relay_make_one_blob(relay, registry):
    """A session may mix front doors: small chunks staged by the app are folded into the relay's parts."""
    data = random_bytes(8 * MIB + 3)
    upload_id = registry.start_upload(REPO).headers["Docker-Upload-UUID"]
    app_location = f"/v2/{REPO}/blobs/uploads/{upload_id}"
    assert registry.patch_chunk(app_location, data[: MIB // 2], 0).status_code == 202
    # The app's session URL on the relay needs its capability: take it from the app's status answer.
    location = registry.get(app_location).headers["Location"]
    assert location.startswith(relay.url)
    rest = requests.patch(location, data=data[MIB // 2 :], headers={"Content-Range": f"{MIB // 2}-{len(data) - 1}"})
    assert rest.status_code == 202, rest.text
    assert requests.put(location, params={"digest": digest_of(data)}, timeout=60).status_code == 201
    assert relay.pull(REPO, digest_of(data)) == data


def test_staged_chunks_past_a_lowered_part_size_lead_the_relay_body(relay, registry):
    """Chunks the app staged under a larger part size (7 MiB of them) and a part size lowered to
    5 MiB since: the relay's body still follows them, whole, and the blob is exact."""
    registry.configure(part_size_bytes=8 * MIB)
    data = random_bytes(9 * MIB + 11)
    upload_id = registry.start_upload(REPO).headers["Docker-Upload-UUID"]
    app_location = f"/v2/{REPO}/blobs/uploads/{upload_id}"
    for start in range(0, 7 * MIB, MIB):
        assert registry.patch_chunk(app_location, data[start : start + MIB], start).status_code == 202
    registry.configure(part_size_bytes=PART)
    location = registry.get(app_location).headers["Location"]
    rest = requests.patch(location, data=data[7 * MIB :], headers={"Content-Range": f"{7 * MIB}-{len(data) - 1}"})
    assert rest.status_code == 202, rest.text
    assert rest.headers["Range"] == f"0-{len(data) - 1}"
    assert requests.put(location, params={"digest": digest_of(data)}, timeout=60).status_code == 201
    assert relay.pull(REPO, digest_of(data)) == data
    assert relay.nothing_staged()


@pytest.mark.parametrize("tamper", ["forged", "expired", "other-repository", "other-session", "malformed"])
def test_a_bad_capability_is_unknown_and_writes_nothing(relay, registry, tamper):
    from chalicelib.core import capability

    location = relay.session()
    base, _, granted = location.rpartition("/")
    upload_id = base.rpartition("/")[2]
    other_repo = "library/elsewhere"
    if tamper == "forged":
        target = f"{base}/{granted[:-4]}AAAA"
    elif tamper == "expired":
        target = f"{base}/{capability.mint(KEY.encode(), upload_id, REPO, int(time.time()) - 1)}"
    elif tamper == "other-repository":
        # A capability for this session under another repository's name, presented on that path.
        target = f"{relay.url}/v2/{other_repo}/blobs/uploads/{upload_id}/{granted}"
    elif tamper == "other-session":
        other = relay.session().rpartition("/")[0].rpartition("/")[2]
        target = f"{base.rpartition('/')[0]}/{other}/{granted}"
    else:
        target = f"{base}/not-a-capability"
    data = random_bytes(6 * MIB)
    for method, kwargs in (
        ("PATCH", {"data": data}),
        ("PUT", {"data": data, "params": {"digest": digest_of(data)}}),
        ("GET", {}),
        ("DELETE", {}),
    ):
        response = requests.request(method, target, timeout=60, **kwargs)
        _json_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert relay.offset(location) == 0  # the real session is untouched and still usable
    assert relay.keys() == []
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404


def test_a_capability_is_needed_even_with_credentials(relay, registry):
    location = relay.session()
    bare = location.rpartition("/")[0]
    response = requests.patch(bare, data=b"x", auth=ADMIN, timeout=30)
    _json_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_digest_mismatch_is_never_visible_and_cleaned(relay, registry):
    data = random_bytes(12 * MIB)
    location = relay.session()
    patched = requests.patch(location, data=_blocks(data), timeout=60)
    assert patched.status_code == 202
    claimed = digest_of(data[:-1] + bytes([data[-1] ^ 1]))  # one bit off
    put = requests.put(patched.headers["Location"], params={"digest": claimed}, timeout=60)
    _json_error(put, 400, "DIGEST_INVALID")
    assert registry.head(f"/v2/{REPO}/blobs/{claimed}").status_code == 404
    assert registry.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
    _json_error(requests.get(location, timeout=30), 404, "BLOB_UPLOAD_UNKNOWN")
    assert relay.nothing_staged()
    assert relay.keys("blobs/") == []


def test_whole_body_put_with_a_wrong_digest_leaves_nothing(relay, registry):
    data = random_bytes(6 * MIB)
    put = requests.put(relay.session(), params={"digest": digest_of(b"other")}, data=data, timeout=60)
    _json_error(put, 400, "DIGEST_INVALID")
    assert relay.nothing_staged()
    assert relay.keys("blobs/") == []


def _send_partially(location: str, total: int, body: bytes, *, close: bool = True) -> socket.socket:
    """A PATCH that announces `total` bytes and sends only `body` (then hangs up, unless told not to)."""
    url = urlsplit(location)
    conn = socket.create_connection((url.hostname, url.port))
    head = (
        f"PATCH {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {total}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    if close:
        conn.close()
    return conn


def _wait_for_lease(location: str) -> None:
    """Until a writer holds the session's lease (read from its row: no request shows a lease)."""
    from chalicelib.stores import keys
    from chalicelib.stores.tables import UploadRow

    upload_id = urlsplit(location).path.split("/blobs/uploads/", 1)[1].split("/", 1)[0]
    deadline = time.monotonic() + 30
    while UploadRow.get(keys.upload_pk(upload_id), keys.UPLOAD_SK, consistent_read=True).lease_token is None:
        assert time.monotonic() < deadline, "the first writer never took the lease"
        time.sleep(0.02)


def _wait_for_release(location: str, expected_offset: int, relay: Relay) -> None:
    """The relay notices the hang-up, keeps what is durable and gives the lease back."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if relay.offset(location) == expected_offset:
            probe = requests.patch(location, data=b"", timeout=30)  # takes the lease, unless still held
            if probe.status_code == 202:
                return
        time.sleep(0.1)
    raise AssertionError("the session was not released after the client went away")


def test_disconnect_mid_body_resumes_from_the_last_durable_part(relay, registry):
    data = random_bytes(45 * MIB + 5)
    digest = digest_of(data)
    location = relay.session()
    _send_partially(location, len(data), data[: 40 * MIB])
    # Progress is made durable after the first part past 32 MiB (the 7th, ending at 35 MiB); the
    # 5 MiB after it were not, and are not counted.
    durable = 7 * PART
    _wait_for_release(location, durable, relay)
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404
    rest = requests.patch(location, data=data[durable:], headers={"Content-Range": f"{durable}-{len(data) - 1}"})
    assert rest.status_code == 202, rest.text
    put = requests.put(rest.headers["Location"], params={"digest": digest}, timeout=60)
    assert put.status_code == 201, put.text
    assert relay.pull(REPO, digest) == data
    assert relay.nothing_staged()


def test_disconnect_before_a_whole_part_leaves_the_session_at_zero(relay, registry):
    data = random_bytes(6 * MIB)
    location = relay.session()
    _send_partially(location, len(data), data[: 3 * MIB])
    _wait_for_release(location, 0, relay)
    assert relay.keys("blobs/") == []
    put = requests.put(location, params={"digest": digest_of(data)}, data=data, timeout=60)
    assert put.status_code == 201, put.text
    assert relay.pull(REPO, digest_of(data)) == data


def test_a_disk_failure_mid_part_fails_the_request_and_keeps_the_session(files_relay, registry, monkeypatch):
    """A part written while it arrives: when the disk fails under it, the request fails (and
    does not hang on its full feed), the lease is given back, the session stays at its last durable
    offset, and a retry once the disk is back makes the exact blob."""
    from chalicelib.stores.files import FileObjectStore

    written = FileObjectStore.upload_part_stream

    def failing(self: Any, key: str, upload_id: str, number: int, blocks: Any) -> str:
        def then_fail() -> Iterator[bytes]:
            for index, block in enumerate(blocks):
                if index == 2 and number > 1:
                    raise OSError(28, "No space left on device")
                yield block

        return written(self, key, upload_id, number, then_fail())

    data = random_bytes(3 * PART + 7)
    digest = digest_of(data)
    location = files_relay.session()
    first = requests.patch(location, data=data[:PART], headers={"Content-Range": f"0-{PART - 1}"}, timeout=60)
    assert first.status_code == 202, first.text
    monkeypatch.setattr(FileObjectStore, "upload_part_stream", failing)
    failed = requests.patch(location, data=_blocks(data[PART:]), timeout=60)
    assert failed.status_code == 500, failed.text
    monkeypatch.setattr(FileObjectStore, "upload_part_stream", written)
    assert files_relay.offset(location) == PART
    assert registry.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404
    rest = requests.patch(location, data=data[PART:], headers={"Content-Range": f"{PART}-{len(data) - 1}"})
    assert rest.status_code == 202, rest.text
    assert requests.put(location, params={"digest": digest}, timeout=60).status_code == 201
    assert files_relay.pull(REPO, digest) == data
    assert files_relay.nothing_staged()


def test_two_writers_on_one_session_one_wins_the_other_gets_416(relay, registry):
    data = random_bytes(6 * MIB)
    location = relay.session()
    first = _send_partially(location, len(data), data[:MIB], close=False)
    try:
        _wait_for_lease(location)  # the first writer holds the session's lease while its body arrives
        second = requests.patch(location, data=b"intruder", timeout=30)
        assert second.status_code == 416, second.text
        assert second.headers["Range"] == "0-0"
        first.sendall(data[MIB:])
        answer = first.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
    finally:
        first.close()
    assert relay.offset(location) == len(data)
    assert requests.put(location, params={"digest": digest_of(data)}, timeout=60).status_code == 201
    assert relay.pull(REPO, digest_of(data)) == data


def test_relay_restart_loses_nothing_acknowledged(relay, registry):
    data = random_bytes(11 * MIB)
    digest = digest_of(data)
    location = relay.session()
    first = requests.patch(location, data=data[: 6 * MIB], headers={"Content-Range": f"0-{6 * MIB - 1}"})
    assert first.status_code == 202
    relay.stop()
    relay.start()  # the same port: the Location the client holds stays valid
    assert relay.offset(location) == 6 * MIB
    rest = requests.patch(location, data=_blocks(data[6 * MIB :]), timeout=60)
    assert rest.status_code == 202, rest.text
    assert requests.put(location, params={"digest": digest}, timeout=60).status_code == 201
    assert hashlib.sha256(relay.pull(REPO, digest)).hexdigest() == digest.split(":")[1]


def test_cancel_through_the_relay_cleans_up(relay, registry):
    location = relay.session()
    assert requests.patch(location, data=random_bytes(6 * MIB), timeout=60).status_code == 202
    assert requests.delete(location, timeout=30).status_code == 204
    _json_error(requests.get(location, timeout=30), 404, "BLOB_UPLOAD_UNKNOWN")
    assert relay.nothing_staged()


def test_other_methods_and_paths(relay):
    location = relay.session()
    _json_error(requests.post(location, timeout=30), 405, "UNSUPPORTED")
    _json_error(requests.get(relay.url + "/v2/", timeout=30), 404, "BLOB_UPLOAD_UNKNOWN")
    assert requests.get(relay.url + "/health", timeout=30).status_code == 200


def test_without_a_relay_the_app_keeps_its_cap(registry):
    registry.configure(max_body_bytes=1024)
    response = registry.start_upload(REPO)
    assert response.headers["Location"].startswith("/v2/")
    assert response.headers["OCI-Chunk-Max-Length"] == "1024"
    assert_error(registry.patch_chunk(response.headers["Location"], b"x" * 2048, 0), 413, "SIZE_INVALID")


def test_quota_is_charged_as_on_the_app_and_refuses_what_does_not_fit(relay, registry):
    created = registry.post("/api/v2.0/projects", json={"project_name": "relayq", "storage_limit": 8 * MIB})
    assert created.status_code == 201, created.get_data()[:300]
    project_id = registry.get("/api/v2.0/projects/relayq").get_json()["project_id"]

    def used() -> int:
        quotas = registry.get("/api/v2.0/quotas", query_string={"reference": "project", "reference_id": project_id})
        return int(quotas.get_json()[0]["used"]["storage"])

    fits, too_much = random_bytes(6 * MIB), random_bytes(6 * MIB)
    assert requests.put(relay.session("relayq/a"), params={"digest": digest_of(fits)}, data=fits).status_code == 201
    assert used() == len(fits)
    refused = requests.put(relay.session("relayq/a"), params={"digest": digest_of(too_much)}, data=too_much)
    _json_error(refused, 403, "DENIED")
    assert registry.head(f"/v2/relayq/a/blobs/{digest_of(too_much)}").status_code == 404
    assert used() == len(fits)
    assert relay.nothing_staged()


def test_the_relay_never_loads_the_token_signing_key(relay, registry, monkeypatch):
    """The standalone relay holds the capability key only: building its wiring and serving a push
    (and the app's Basic-authenticated POST) must not read or generate a token signing key."""
    from chalicelib import wiring

    def refuse(settings: Any) -> Any:
        raise AssertionError("the token signing key was loaded")

    monkeypatch.setattr(wiring, "signing_key", refuse)
    wiring.reset()
    wiring.services()  # what `python -m chalicelib.relay` builds before listening
    data = random_bytes(3 * MIB)
    put = requests.put(relay.session(), params={"digest": digest_of(data)}, data=data, timeout=60)
    assert put.status_code == 201, put.text
    assert relay.pull(REPO, digest_of(data)) == data
