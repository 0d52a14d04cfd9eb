"""What a push costs in DynamoDB calls, pinned: the close of a blob upload (PUT ?digest=) and a
manifest PUT, on the Lambda path and through the upload relay, with and without a storage limit;
and what a manifest pull (GET and HEAD, by tag and by digest) costs with the pull gate off and on.

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
from tests.functional.helpers import (
    MIB,
    OCI_MANIFEST,
    Registry,
    descriptor,
    digest_of,
    dynamodb_calls,
    dynamodb_requests,
    image_manifest,
    random_bytes,
)
from tests.functional.scanning.gate_support import create_project, register_scanner, write_summary
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

# A manifest pull, GET or HEAD, by tag or by digest: the tag row (its copy of the manifest) or the
# manifest row, read with the pull gate's policy rows (project, system CVE allowlist, scanner
# registrations) in one call.
PULL = ["BatchGetItem"]
# With the project's vulnerability policy on, a pull by tag also reads the manifest row's scan
# summaries (the tag row's copy has none); a pull by digest has read them with the manifest row.
GATED_PULL_BY_TAG = [*PULL, "GetItem"]


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


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("gate", ["off", "on"])
def test_a_manifest_pull(registry, clock, gate, method):
    project = "costgated" if gate == "on" else "costopen"
    register_scanner()
    create_project(registry, project, **({"prevent_vul": "true", "severity": "high"} if gate == "on" else {}))
    repo = f"{project}/app"
    digest, body = registry.push_image(repo, "v1")
    write_summary(repo, digest, "Success", [("CVE-2024-1", "Low")])  # below the threshold: allowed
    client = _with_token(registry, repo)
    for ref, expected in (("v1", GATED_PULL_BY_TAG if gate == "on" else PULL), (digest, PULL)):
        with clock.frozen(), dynamodb_requests() as requests:
            response = client.request(method, f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200, response.get_data()[:300]
        assert [operation for operation, _ in requests] == expected, ref
        # Every read is projected, and only a GET reads the inline body (with the tag or manifest row).
        projected = [_projection(params) for _, params in requests]
        assert all(projected) and ("body" in projected[0]) == (method == "GET")
        assert all("body" not in attributes for attributes in projected[1:])
        assert response.get_data() == (body if method == "GET" else b"")
        assert response.headers["Docker-Content-Digest"] == digest


def _projection(params: dict[str, Any]) -> set[str]:
    """The attribute names a GetItem or BatchGetItem projects to (empty: whole items)."""
    request = next(iter(params["RequestItems"].values())) if "RequestItems" in params else params
    return set(request.get("ExpressionAttributeNames", {}).values())
