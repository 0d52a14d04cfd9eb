"""A pull by tag reads the tag row alone: its cost, and the cases where the copy it serves could go
stale (a tag moved while it is read, a manifest deleted while the tags index lags behind, GC
racing a new tag, tags written through the management API, rows written before the copy existed).

The invariant every test checks: a tag that answers a pull names a manifest that still exists
(GET by its digest is 200 too), and the body it serves hashes to the digest it names.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import pytest

from tests.functional.helpers import (
    OCI_MANIFEST,
    Registry,
    assert_error,
    digest_of,
    dynamodb_calls,
    run_together,
    serialise_aws_calls,
)

ACCEPT = {"Accept": OCI_MANIFEST}


def bearer(registry: Registry, repo: str) -> dict[str, str]:
    """Headers with a pull token for `repo`, so /v2 authorises without an AWS call."""
    response = registry.get("/service/token", query_string={"scope": f"repository:{repo}:pull"})
    assert response.status_code == 200, response.get_data()
    return {"Authorization": f"Bearer {response.get_json()['token']}", **ACCEPT}


def assert_tags_resolve(registry: Registry, repo: str) -> None:
    """Every listed tag serves a body matching its digest, and that manifest exists by digest."""
    for tag in registry.tag_names(repo):
        response = registry.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
        assert response.status_code == 200, (tag, response.get_data()[:300])
        digest = response.headers["Docker-Content-Digest"]
        assert digest_of(response.get_data()) == digest
        assert registry.head(f"/v2/{repo}/manifests/{digest}", headers=ACCEPT).status_code == 200, tag


def lagging_tags_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tags index (a GSI: eventually consistent) has not yet seen any tag."""
    from chalicelib.stores.manifests import ManifestStore

    monkeypatch.setattr(ManifestStore, "tags_of", lambda self, repository, digest: [])


# Cost.


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_pull_by_tag_is_one_dynamodb_read(registry, method):
    repo = "library/one-read"
    digest, body = registry.push_image(repo, "v1")
    headers = bearer(registry, repo)
    with dynamodb_calls() as calls:
        response = registry.request(method, f"/v2/{repo}/manifests/v1", headers=headers, auth=None)
    assert response.status_code == 200
    assert calls == ["BatchGetItem"]  # the tag row with the pull gate's policy rows
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert response.headers["Content-Length"] == str(len(body))
    assert response.get_data() == (body if method == "GET" else b"")


def test_a_body_kept_in_s3_is_served_by_tag(registry):
    repo = "library/big-by-tag"
    registry.configure(inline_manifest_max_bytes=1000)
    digest, body = registry.push_image(repo, "v1", annotations={"padding": "x" * 2000})
    headers = bearer(registry, repo)
    with dynamodb_calls() as calls:
        response = registry.request("GET", f"/v2/{repo}/manifests/v1", headers=headers, auth=None)
    assert response.status_code == 200 and calls == ["BatchGetItem"]  # the tag row and the policy rows
    assert response.get_data() == body and response.headers["Docker-Content-Digest"] == digest
    head = registry.request("HEAD", f"/v2/{repo}/manifests/v1", headers=headers, auth=None)
    assert head.headers["Content-Length"] == str(len(body))


# Consistency.


@pytest.mark.usefixtures("atomic")
def test_a_tag_moved_while_it_is_pulled_serves_matching_digest_and_body(registry):
    repo = "library/moving"
    pushed = dict(registry.push_image(repo, f"base{i}") for i in range(4))
    bodies = list(pushed.values())
    registry.put_manifest(repo, "latest", bodies[0], OCI_MANIFEST)
    seen: list[tuple[str, bytes, str]] = []
    stop = threading.Event()

    def pull() -> None:
        client = registry.clone()
        while not stop.is_set():
            response = client.get(f"/v2/{repo}/manifests/latest", headers=ACCEPT)
            assert response.status_code == 200
            seen.append((response.headers["Docker-Content-Digest"], response.get_data(),
                         response.headers["Content-Length"]))  # fmt: skip

    readers = [threading.Thread(target=pull) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(3):

            def move(index: int, client: Registry, shift: int = round_) -> Any:
                return client.put_manifest(repo, "latest", bodies[(index + shift) % 4], OCI_MANIFEST)

            moves = run_together(registry, 4, move)
            assert [m.status_code for m in moves] == [201] * 4
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert seen
    for digest, body, length in seen:
        assert pushed[digest] == body and digest_of(body) == digest and length == str(len(body))
    assert_tags_resolve(registry, repo)


def test_deleting_a_manifest_removes_its_tags_even_when_the_tags_index_lags(registry, monkeypatch):
    repo = "library/lagging"
    digest, _ = registry.push_image(repo, "v1")
    registry.put_manifest(repo, "v2", registry.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT).get_data())
    kept, _ = registry.push_image(repo, "other")
    lagging_tags_index(monkeypatch)
    assert registry.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    for tag in ("v1", "v2"):
        assert_error(registry.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT), 404, "MANIFEST_UNKNOWN")
    assert registry.tag_names(repo) == ["other"]
    assert registry.get(f"/v2/{repo}/manifests/other", headers=ACCEPT).headers["Docker-Content-Digest"] == kept


def test_deleting_a_manifest_keeps_a_tag_that_moved_away(registry):
    repo = "library/moved-away"
    old, _ = registry.push_image(repo, "v1")
    new, new_body = registry.push_image(repo, "v2")
    registry.put_manifest(repo, "v1", new_body, OCI_MANIFEST)  # v1 leaves `old`, which still names it
    assert registry.delete(f"/v2/{repo}/manifests/{old}").status_code == 202
    assert registry.tag_names(repo) == ["v1", "v2"]
    assert registry.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT).headers["Docker-Content-Digest"] == new
    assert_tags_resolve(registry, repo)


def test_gc_keeps_an_artifact_tagged_after_its_scan(registry, monkeypatch):
    """GC deletes an untagged artifact only while no tag points at it, decided by the delete
    itself: a tag pushed after GC listed the artifact (and not yet in the tags index) keeps it."""
    from chalicelib.wiring import services

    repo = "library/gc-tagged"
    digest, body = registry.push_image(repo)
    registry.put_manifest(repo, "late", body, OCI_MANIFEST)
    lagging_tags_index(monkeypatch)
    assert services().manifests.delete_untagged(repo, digest) is False
    assert registry.get(f"/v2/{repo}/manifests/late", headers=ACCEPT).headers["Docker-Content-Digest"] == digest
    assert_tags_resolve(registry, repo)
    untagged, _ = registry.push_image(repo)
    assert services().manifests.delete_untagged(repo, untagged) is True
    assert_error(registry.get(f"/v2/{repo}/manifests/{untagged}", headers=ACCEPT), 404, "MANIFEST_UNKNOWN")


def test_a_tag_created_through_the_api_is_pulled_from_its_copy_and_deleted_with_it(registry, monkeypatch):
    repo = "library/api-tag"
    project, _, name = repo.partition("/")
    digest, body = registry.push_image(repo)
    path = f"/api/v2.0/projects/{project}/repositories/{quote(quote(name, safe=''), safe='')}/artifacts/{digest}/tags"
    assert registry.post(path, json={"name": "made"}).status_code == 201
    headers = bearer(registry, repo)
    with dynamodb_calls() as calls:
        response = registry.request("GET", f"/v2/{repo}/manifests/made", headers=headers, auth=None)
    assert calls == ["BatchGetItem"] and response.get_data() == body  # the tag row (its copy) and the policy rows
    lagging_tags_index(monkeypatch)
    assert registry.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    assert registry.tag_names(repo) == []


@pytest.mark.usefixtures("atomic")
def test_a_delete_racing_a_tag_push_never_leaves_a_tag_on_a_deleted_manifest(registry):
    repo = "library/delete-race"
    for attempt in range(4):
        digest, body = registry.push_image(repo, f"base{attempt}")

        def work(index: int, client: Registry, digest: str = digest, body: bytes = body, n: int = attempt) -> int:
            if index == 0:
                return client.delete(f"/v2/{repo}/manifests/{digest}").status_code
            return client.put_manifest(repo, f"again{n}", body, OCI_MANIFEST).status_code

        deleted, pushed = run_together(registry, 2, work)
        assert deleted == 202 and pushed == 201, (deleted, pushed)
        assert_tags_resolve(registry, repo)


def test_a_tag_row_written_before_the_copy_existed_is_still_served(registry):
    """Tag rows from before this layout carry only the digest: the pull then reads the manifest row."""
    repo = "library/legacy"
    digest, body = registry.push_image(repo, "v1")
    registry.dynamodb.update_item(
        TableName=registry.table,
        Key={"pk": {"S": f"REPO#{repo}"}, "sk": {"S": "TAG#v1"}},
        UpdateExpression="REMOVE media_type, #s, body, in_s3",
        ExpressionAttributeNames={"#s": "size"},
    )
    response = registry.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
    assert response.status_code == 200 and response.get_data() == body
    assert response.headers["Docker-Content-Digest"] == digest


@pytest.fixture
def atomic(monkeypatch):
    serialise_aws_calls(monkeypatch)
