"""What a push costs in DynamoDB calls, pinned: the close of a blob upload (PUT ?digest=) and a
manifest PUT, on the Lambda path and through the upload relay, with and without a storage limit.

A push's time locally is mostly moto's CPU per call, and on AWS each call is a round trip: a change
that adds one to these paths should fail here and say so. The sequences are exact on purpose; what
each call is for is written beside it. The functional upload, quota and relay modules check that
the writes behind them are right (visibility, session cleanup, quota and its warning).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.functional import test_relay
from tests.functional.helpers import MIB, Registry, descriptor, digest_of, dynamodb_calls, image_manifest, random_bytes
from tests.functional.test_relay import PART

relay = test_relay.relay  # the relay module's fixture: its server beside the app, parts of PART bytes

# One chunk's session close on the Lambda path (skopeo and podman PATCH the whole blob, then PUT).
LAMBDA_CLOSE = [
    "UpdateItem",  # the session's lease (claim)
    "TransactWriteItems",  # the quota charge: project-blob row + project usage
    "GetItem",  # the quota warning's usage read (nothing earlier in this request read the project)
    "TransactWriteItems",  # blob row + link + session delete
]
# The relay's close (a body streamed in parts): the dedupe read also reads the project's limit.
RELAY_CLOSE_UNLIMITED = [
    "UpdateItem",  # the session's lease (claim)
    "BatchGetItem",  # the blob row (dedupe) and the project row (is there a limit?)
    "TransactWriteItems",  # the quota charge
    "TransactWriteItems",  # blob row + link + session delete
]
RELAY_CLOSE_LIMITED = [*RELAY_CLOSE_UNLIMITED[:3], "GetItem", RELAY_CLOSE_UNLIMITED[3]]
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_PUT = [
    "BatchGetItem",  # the referenced blobs are linked in the repository
    "BatchWriteItem",  # the manifest's references (what a delete releases)
    "BatchGetItem",  # what the project counts already, and the project's limit
    "TransactWriteItems",  # the charge of the manifest itself
    "BatchGetItem",  # GC protection of the referenced blobs
    "TransactWriteItems",  # manifest row, tag, repository
]


def relay_calls() -> Any:
    """The DynamoDB operations of the relay's request threads inside the block (werkzeug's threaded
    server runs each request on a thread named after `process_request_thread`)."""
    return dynamodb_calls(thread_name="process_request_thread")


def _limited_project(registry: Any, name: str, limit: int) -> None:
    created = registry.post("/api/v2.0/projects", json={"project_name": name, "storage_limit": limit})
    assert created.status_code == 201, created.get_data()[:300]


def _with_token(registry: Any, repo: str) -> Any:
    """A client that sends a push token for `repo`: /v2 authorises it without an AWS call, so what
    is counted is the request's own work (Basic credentials would add the user's reads)."""
    response = registry.get("/service/token", query_string={"scope": f"repository:{repo}:pull,push"})
    assert response.status_code == 200, response.get_data()
    return _TokenRegistry(registry.http, response.get_json()["token"])


class _TokenRegistry(Registry):
    def __init__(self, client: Any, token: str) -> None:
        super().__init__(client, None)
        self._token = token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {self._token}"}
        return super().request(method, path, **kwargs)


def test_closing_a_one_chunk_upload_on_the_lambda_path(registry):
    repo = "library/cost-lambda"
    data = random_bytes(64 * 1024)
    digest = digest_of(data)
    location = registry.start_upload(repo).headers["Location"]
    patched = registry.patch_chunk(location, data)
    assert patched.status_code == 202, patched.get_data()[:300]
    client = _with_token(registry, repo)
    with dynamodb_calls() as calls:
        put = client.finish_upload(patched.headers["Location"], digest)
    assert put.status_code == 201, put.get_data()[:300]
    assert calls == LAMBDA_CLOSE
    # The one transaction made the blob visible and ended the session.
    assert registry.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
    assert registry.get(patched.headers["Location"]).status_code == 404


def test_a_whole_body_put_reads_the_blob_and_the_project_once(registry):
    repo = "library/cost-whole"
    data = random_bytes(32 * 1024)
    location = registry.start_upload(repo).headers["Location"]
    client = _with_token(registry, repo)
    with dynamodb_calls() as calls:
        put = client.finish_upload(location, digest_of(data), data)
    assert put.status_code == 201, put.get_data()[:300]
    assert calls == ["GetItem", "UpdateItem", *RELAY_CLOSE_UNLIMITED[1:]]  # the session's state first


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "limited"])
def test_closing_a_streamed_upload_on_the_relay(relay, registry, limited):
    project = "costlimited" if limited else "costfree"
    _limited_project(registry, project, 100 * MIB if limited else -1)
    repo = f"{project}/app"
    data = random_bytes(PART + 4321)  # one whole part and a staged tail: the multipart close
    digest = digest_of(data)
    patched = requests.patch(relay.session(repo), data=data, timeout=60)
    assert patched.status_code == 202, patched.text
    with relay_calls() as calls:
        put = requests.put(patched.headers["Location"], params={"digest": digest}, timeout=60)
    assert put.status_code == 201, put.text
    assert calls == (RELAY_CLOSE_LIMITED if limited else RELAY_CLOSE_UNLIMITED)
    assert relay.pull(repo, digest) == data
    assert relay.nothing_staged()


def test_a_relay_push_that_crosses_the_warning_share_still_warns(relay, registry, monkeypatch):
    """The limited project's close keeps its warning read: usage past 85% of the limit is announced."""
    from chalicelib.events import EventBus, EventType

    _limited_project(registry, "costwarn", 6 * MIB)
    warned: list[str | None] = []
    emit = EventBus.emit

    def spy(self: EventBus, event_type: EventType, **fields: Any) -> None:
        if event_type is EventType.QUOTA_WARNING:
            warned.append(fields.get("project"))
        emit(self, event_type, **fields)

    monkeypatch.setattr(EventBus, "emit", spy)
    data = random_bytes(PART + 200_000)  # 5.19 MiB of 6 MiB: past the 85% share (5.1 MiB)
    patched = requests.patch(relay.session("costwarn/app"), data=data, timeout=60)
    put = requests.put(patched.headers["Location"], params={"digest": digest_of(data)}, timeout=60)
    assert put.status_code == 201, put.text
    assert warned == ["costwarn"]


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "limited"])
def test_a_manifest_put(registry, limited):
    project = "costmlimited" if limited else "library"
    if limited:
        _limited_project(registry, project, 100 * MIB)
    repo = f"{project}/cost-manifest"
    config, layer = b'{"architecture":"amd64","os":"linux"}', random_bytes(1000)
    for blob in (config, layer):
        registry.push_blob(repo, blob)
    manifest = image_manifest(descriptor(CONFIG, config), [descriptor(LAYER, layer)])
    client = _with_token(registry, repo)
    # The first push reads the project's tag immutability rules, which are then cached a while.
    assert client.put_manifest(repo, "v1", manifest).status_code == 201
    manifest["annotations"] = {"second": "push"}  # a new manifest: its own charge
    with dynamodb_calls() as calls:
        response = client.put_manifest(repo, "v2", manifest)
    assert response.status_code == 201, response.get_data()[:300]
    # With a limit, the manifest's own charge is followed by the quota warning's usage read.
    assert calls == ([*MANIFEST_PUT[:4], "GetItem", *MANIFEST_PUT[4:]] if limited else MANIFEST_PUT)
