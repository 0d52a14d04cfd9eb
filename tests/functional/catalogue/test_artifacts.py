"""Artifacts, tags, accessories and additions through /api/v2.0, after pushes over /v2 (moto behind
the WSGI adapter, as every functional suite)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.test import TestResponse

from tests.functional.helpers import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Registry,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
    run_together,
)

API = "/api/v2.0"
ZERO_TIME = "0001-01-01T00:00:00.000Z"
COSIGN_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PASSWORD = "Catalogue-Pass1"


def arts(repo: str, suffix: str = "") -> str:
    project, _, name = repo.partition("/")
    return f"{API}/projects/{project}/repositories/{quote(quote(name, safe=''), safe='')}/artifacts{suffix}"


def ok_json(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    return response.get_json()


def harbor_error(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    body = response.get_json(force=True, silent=True)
    assert isinstance(body, dict) and body["errors"][0]["code"] == code, body
    assert body["errors"][0]["message"]


def push_index(registry: Registry, repo: str, tag: str, children: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    entries = [
        descriptor(OCI_MANIFEST, body, platform={"architecture": arch, "os": "linux"}) for (arch, body) in children
    ]
    body = canonical(index_manifest(entries))
    return registry.push_manifest(repo, tag, body, OCI_INDEX), body


def signature(registry: Registry, repo: str, subject_digest: str, subject_body: bytes, reference: str | None = None,
              artifact_type: str | None = COSIGN_BUNDLE) -> str:  # fmt: skip
    """An OCI 1.1 referrer of the subject (a sigstore bundle unless told otherwise)."""
    empty = b"{}"
    registry.push_blob(repo, empty)
    layer = b"signature bytes " + subject_digest.encode()
    registry.push_blob(repo, layer)
    body = canonical(
        image_manifest(
            descriptor(OCI_EMPTY, empty),
            [descriptor("application/octet-stream", layer)],
            artifact_type=artifact_type,
            subject=descriptor(OCI_MANIFEST, subject_body),
        )
    )
    return registry.push_manifest(repo, reference or digest_of(body), body, OCI_MANIFEST)


def drain_pulls() -> None:
    """Deliver the pending events, then write what the recorder holds: a previous test may have
    flushed less than a window ago, and the recorder would otherwise wait for its timer."""
    from chalicelib.wiring import services

    assert services().events.drain()
    services().pulls.flush()


def make_user(registry: Registry, project: str, role_id: int | None) -> tuple[str, str]:
    name = f"u{abs(hash((project, role_id))) % 10**8}"
    response = registry.post(f"{API}/users", json={"username": name, "password": PASSWORD,
                                                   "email": f"{name}@example.com", "realname": name})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    if role_id is not None:
        body = {"role_id": role_id, "member_user": {"username": name}}
        assert registry.post(f"{API}/projects/{project}/members", json=body).status_code == 201
    return name, PASSWORD


def private_project(registry: Registry, name: str) -> str:
    response = registry.post(f"{API}/projects", json={"project_name": name, "metadata": {"public": "false"}})
    assert response.status_code == 201, response.get_data()
    return name


# Records written at push time.


def test_image_push_records_the_artifact(registry: Any) -> None:
    repo = "library/app"
    digest, body = registry.push_image(repo, "v1", layers=2)
    manifest = json.loads(body)
    expected_size = len(body) + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])

    response = registry.get(arts(repo))
    listed = ok_json(response)
    assert response.headers["X-Total-Count"] == "1"
    assert [a["digest"] for a in listed] == [digest]
    art = listed[0]
    assert art["type"] == "IMAGE"
    assert art["size"] == expected_size
    assert art["manifest_media_type"] == OCI_MANIFEST
    assert art["media_type"] == manifest["config"]["mediaType"]
    assert art["repository_name"] == repo
    assert "labels" not in art and art["pull_time"] == ZERO_TIME and art["push_time"] != ZERO_TIME
    assert [(t["name"], t["immutable"], t["artifact_id"]) for t in art["tags"]] == [("v1", False, art["id"])]
    assert "references" not in art
    assert "build_history" in art["addition_links"]

    by_tag = ok_json(registry.get(arts(repo, "/v1")))
    by_digest = ok_json(registry.get(arts(repo, f"/{digest}")))
    assert by_tag == by_digest and by_tag["id"] == art["id"]


def test_nested_repository_names_are_double_encoded(registry: Any) -> None:
    repo = "library/team/app"
    digest, _ = registry.push_image(repo, "v1")
    assert [a["digest"] for a in ok_json(registry.get(arts(repo)))] == [digest]


def test_index_lists_alone_with_references_and_refuses_deleting_a_child(registry: Any) -> None:
    repo = "library/multi"
    amd, amd_body = registry.push_image(repo)
    arm, arm_body = registry.push_image(repo)
    index, index_body = push_index(registry, repo, "latest", [("amd64", amd_body), ("arm64", arm_body)])
    child_sizes = [ok_json(registry.get(arts(repo, f"/{d}")))["size"] for d in (amd, arm)]

    listed = ok_json(registry.get(arts(repo)))
    assert [a["digest"] for a in listed] == [index]  # children are not listed (Harbor's base artifacts)
    art = listed[0]
    assert art["type"] == "IMAGE" and art["media_type"] == OCI_INDEX
    assert art["size"] == len(index_body) + sum(child_sizes)
    refs = {r["child_digest"]: r for r in art["references"]}
    assert set(refs) == {amd, arm}
    assert refs[arm]["platform"] == {"architecture": "arm64", "os": "linux"}
    assert all(r["parent_id"] == art["id"] for r in refs.values())

    harbor_error(registry.delete(arts(repo, f"/{amd}")), 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT")
    assert registry.get(f"/v2/{repo}/manifests/{amd}").status_code == 200
    harbor_error(registry.delete(f"/v2/{repo}/manifests/{amd}"), 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT")

    assert registry.delete(arts(repo, "/latest")).status_code == 200
    for d in (index, amd, arm):
        assert registry.get(f"/v2/{repo}/manifests/{d}").status_code == 404
    assert ok_json(registry.get(arts(repo))) == []


def test_a_tagged_child_survives_its_index_and_is_listed_again(registry: Any) -> None:
    repo = "library/kept"
    tagged, tagged_body = registry.push_image(repo, "keep-me")
    plain, plain_body = registry.push_image(repo)
    index, _ = push_index(registry, repo, "latest", [("amd64", tagged_body), ("arm64", plain_body)])
    assert [a["digest"] for a in ok_json(registry.get(arts(repo)))] == [index]

    assert registry.delete(arts(repo, f"/{index}")).status_code == 200
    assert [a["digest"] for a in ok_json(registry.get(arts(repo)))] == [tagged]
    assert registry.get(f"/v2/{repo}/manifests/{plain}").status_code == 404


def test_a_child_shared_by_two_indexes_stays_until_the_last_goes(registry: Any) -> None:
    repo = "library/shared"
    child, child_body = registry.push_image(repo)
    other, other_body = registry.push_image(repo)
    first, _ = push_index(registry, repo, "one", [("amd64", child_body)])
    second, _ = push_index(registry, repo, "two", [("amd64", child_body), ("arm64", other_body)])
    assert registry.delete(arts(repo, "/one")).status_code == 200
    assert registry.get(f"/v2/{repo}/manifests/{child}").status_code == 200
    harbor_error(registry.delete(arts(repo, f"/{child}")), 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT")
    assert registry.delete(arts(repo, "/two")).status_code == 200
    assert registry.get(f"/v2/{repo}/manifests/{child}").status_code == 404
    assert registry.get(f"/v2/{repo}/manifests/{other}").status_code == 404
    assert registry.get(f"/v2/{repo}/manifests/{first}").status_code == 404
    assert registry.get(f"/v2/{repo}/manifests/{second}").status_code == 404


def test_an_index_with_more_children_than_one_transaction_holds(registry: Any) -> None:
    """Past 45 children the index edges are written before the push transaction (DynamoDB's limit
    of 100 items); the rules are the same."""
    repo = "library/wide"
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"shared layer"
    registry.push_blob(repo, config)
    registry.push_blob(repo, layer)
    children = []
    for i in range(60):
        body = canonical(image_manifest(descriptor("application/vnd.oci.image.config.v1+json", config),
                                        [descriptor(OCI_LAYER, layer)], annotations={"n": str(i)}))  # fmt: skip
        children.append((registry.push_manifest(repo, digest_of(body), body, OCI_MANIFEST), body))
    index, _ = push_index(registry, repo, "wide", [(f"arch{i}", body) for i, (_, body) in enumerate(children)])
    listed = ok_json(registry.get(arts(repo)))
    assert [a["digest"] for a in listed] == [index] and len(listed[0]["references"]) == 60
    harbor_error(registry.delete(arts(repo, f"/{children[59][0]}")), 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT")
    assert registry.delete(arts(repo, "/wide")).status_code == 200
    assert all(registry.get(f"/v2/{repo}/manifests/{d}").status_code == 404 for d, _ in children)


def test_a_deep_delete_releases_the_quota_of_everything_it_removed(registry: Any) -> None:
    repo = "library/quota"

    def used() -> int:
        return int(ok_json(registry.get(f"{API}/projects/library/summary"))["quota"]["used"]["storage"])

    _, amd_body = registry.push_image(repo)
    subject, subject_body = registry.push_image(repo)
    push_index(registry, repo, "latest", [("amd64", amd_body), ("arm64", subject_body)])
    signature(registry, repo, subject, subject_body)
    assert used() > 0
    assert registry.delete(arts(repo, "/latest")).status_code == 200
    assert used() == 0


# Accessories.


def test_a_subject_signature_is_an_accessory_deleted_with_its_subject(registry: Any) -> None:
    repo = "library/signed"
    subject, subject_body = registry.push_image(repo, "v1")
    sig = signature(registry, repo, subject, subject_body)
    sbom = signature(registry, repo, subject, subject_body, artifact_type="application/vnd.example.thing")

    listed = ok_json(registry.get(arts(repo)))
    # A signature hides under its subject; a generic subject accessory is listed (Harbor displays it).
    assert {a["digest"] for a in listed} == {subject, sbom}
    response = registry.get(arts(repo, "/v1/accessories"))
    accessories = {a["digest"]: a for a in ok_json(response)}
    assert response.headers["X-Total-Count"] == "2"
    assert accessories[sig]["type"] == "signature.cosign"
    assert accessories[sbom]["type"] == "subject.accessory"
    assert accessories[sig]["subject_artifact_digest"] == subject
    assert accessories[sig]["subject_artifact_repo"] == repo

    with_acc = ok_json(registry.get(arts(repo, "/v1"), query_string={"with_accessory": "true"}))
    assert {a["digest"] for a in with_acc["accessories"]} == {sig, sbom}
    signed = ok_json(registry.get(arts(repo, "/v1"), query_string={"with_signature": "true"}))
    assert signed["tags"][0]["signed"] is True

    assert registry.delete(arts(repo, "/v1")).status_code == 200
    for d in (subject, sig, sbom):
        assert registry.get(f"/v2/{repo}/manifests/{d}").status_code == 404


def test_a_cosign_legacy_signature_tag_is_an_accessory(registry: Any) -> None:
    repo = "library/cosigned"
    subject, _ = registry.push_image(repo, "v1")
    sig_tag = subject.replace("sha256:", "sha256-") + ".sig"
    sig, _ = registry.push_image(repo, sig_tag, config_media_type="application/vnd.dev.cosign.artifact.sig.v1+json")
    listed = ok_json(registry.get(arts(repo)))
    assert [a["digest"] for a in listed] == [subject]
    accessories = ok_json(registry.get(arts(repo, f"/{subject}/accessories")))
    assert [(a["digest"], a["type"]) for a in accessories] == [(sig, "signature.cosign")]
    assert registry.delete(arts(repo, "/v1")).status_code == 200
    assert registry.get(f"/v2/{repo}/manifests/{sig}").status_code == 404
    assert registry.get(f"/v2/{repo}/manifests/{sig_tag}").status_code == 404


# Paging.


def test_pages_carry_total_links_and_a_cursor_that_matches_page_numbers(registry: Any) -> None:
    repo = "library/paged"
    pushed = [registry.push_image(repo, f"t{i}")[0] for i in range(5)]
    first = registry.get(arts(repo), query_string={"page_size": "2", "with_tag": "false"})
    assert first.headers["X-Total-Count"] == "5"
    page1 = [a["digest"] for a in ok_json(first)]
    assert len(page1) == 2 and "tags" not in ok_json(first)[0]
    link = first.headers["Link"]
    assert 'rel="next"' in link and "cursor=" in link and 'rel="prev"' not in link
    next_url = link.split(";")[0].strip("<>")
    by_cursor = registry.get(next_url)
    page2 = [a["digest"] for a in ok_json(by_cursor)]
    by_number = [a["digest"] for a in ok_json(registry.get(arts(repo), query_string={"page": "2", "page_size": "2"}))]
    assert page2 == by_number and len(page2) == 2
    # A cursor only counts for the page it was issued for: edited by hand, the page number wins.
    edited = next_url.replace("page=2", "page=3")
    assert [a["digest"] for a in ok_json(registry.get(edited))] == [
        a["digest"] for a in ok_json(registry.get(arts(repo), query_string={"page": "3", "page_size": "2"}))
    ]
    assert 'rel="prev"' in by_cursor.headers["Link"] and 'rel="next"' in by_cursor.headers["Link"]
    last = registry.get(arts(repo), query_string={"page": "3", "page_size": "2"})
    page3 = [a["digest"] for a in ok_json(last)]
    assert 'rel="next"' not in last.headers["Link"]
    assert sorted(page1 + page2 + page3) == sorted(pushed)
    oldest = registry.get(arts(repo), query_string={"sort": "push_time", "page_size": "10"})
    oldest_first = [a["digest"] for a in ok_json(oldest)]
    assert oldest_first == list(reversed(page1 + page2 + page3))
    assert ok_json(registry.get(arts(repo), query_string={"page": "9"})) == []


def test_q_filters_artifacts(registry: Any) -> None:
    repo = "library/filtered"
    wanted, _ = registry.push_image(repo, "release-1")
    registry.push_image(repo, "dev-1")
    found = registry.get(arts(repo), query_string={"q": "tags=~release"})
    assert [a["digest"] for a in ok_json(found)] == [wanted] and found.headers["X-Total-Count"] == "1"
    assert [a["digest"] for a in ok_json(registry.get(arts(repo), query_string={"q": f"digest={wanted}"}))] == [wanted]
    assert len(ok_json(registry.get(arts(repo), query_string={"q": "type=IMAGE"}))) == 2
    assert ok_json(registry.get(arts(repo), query_string={"q": "labels=1"})) == []
    untagged, _ = registry.push_image(repo)
    assert [a["digest"] for a in ok_json(registry.get(arts(repo), query_string={"q": "tags=nil"}))] == [untagged]
    tagged = ok_json(registry.get(arts(repo), query_string={"q": "tags=*,type=IMAGE"}))
    assert {a["digest"] for a in tagged} == {wanted, ok_json(registry.get(arts(repo, "/dev-1")))["digest"]}


# Tags.


def test_tags_are_created_listed_and_deleted(registry: Any) -> None:
    repo = "library/tagged"
    digest, _ = registry.push_image(repo, "v1")
    created = registry.post(arts(repo, "/v1/tags"), json={"name": "v2"})
    assert created.status_code == 201, created.get_data()
    harbor_error(registry.post(arts(repo, f"/{digest}/tags"), json={"name": "v2"}), 409, "CONFLICT")
    response = registry.get(arts(repo, f"/{digest}/tags"))
    assert [(t["name"], t["immutable"]) for t in ok_json(response)] == [("v1", False), ("v2", False)]
    assert response.headers["X-Total-Count"] == "2"
    assert registry.get(f"/v2/{repo}/manifests/v2").status_code == 200
    paged = registry.get(arts(repo, f"/{digest}/tags"), query_string={"page_size": "1"})
    assert [t["name"] for t in ok_json(paged)] == ["v1"] and "cursor=" in paged.headers["Link"]
    named = registry.get(arts(repo, f"/{digest}/tags"), query_string={"q": "name=v2"})
    assert [t["name"] for t in ok_json(named)] == ["v2"]

    assert registry.delete(arts(repo, f"/{digest}/tags/v2")).status_code == 200
    harbor_error(registry.delete(arts(repo, f"/{digest}/tags/v2")), 404, "NOT_FOUND")
    assert registry.get(f"/v2/{repo}/manifests/v2").status_code == 404
    assert registry.get(f"/v2/{repo}/manifests/v1").status_code == 200


def test_a_tag_moved_by_a_push_is_not_deleted_through_its_old_artifact(registry: Any) -> None:
    repo = "library/moved"
    old, _ = registry.push_image(repo, "v1")
    registry.push_image(repo, "keep")
    assert registry.post(arts(repo, f"/{old}/tags"), json={"name": "moving"}).status_code == 201
    new, _ = registry.push_image(repo, "moving")
    harbor_error(registry.delete(arts(repo, f"/{old}/tags/moving")), 404, "NOT_FOUND")
    assert registry.get(f"/v2/{repo}/manifests/moving").headers["Docker-Content-Digest"] == new


# Pull times, additions, copy.


def test_pull_time_is_recorded_off_the_request_path(registry: Any) -> None:
    repo = "library/pulled"
    registry.push_image(repo, "v1")
    assert ok_json(registry.get(arts(repo, "/v1")))["pull_time"] == ZERO_TIME
    assert registry.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    drain_pulls()
    pulled = ok_json(registry.get(arts(repo, "/v1")))
    assert pulled["pull_time"] != ZERO_TIME and pulled["tags"][0]["pull_time"] != ZERO_TIME
    item = registry.dynamodb.get_item(TableName=registry.table, Key={"pk": {"S": "REPOS"}, "sk": {"S": repo}})
    assert item["Item"]["pull_count"]["N"] == "1"


def test_build_history_addition(registry: Any) -> None:
    repo = "library/history"
    registry.push_image(repo, "v1")
    response = registry.get(arts(repo, "/v1/additions/build_history"))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.get_json() == []
    harbor_error(registry.get(arts(repo, "/v1/additions/values.yaml")), 400, "BAD_REQUEST")
    harbor_error(registry.get(arts(repo, "/nope/additions/build_history")), 404, "NOT_FOUND")


def test_copy_links_an_artifact_into_another_repository(registry: Any) -> None:
    source, target = "library/source", "library/target"
    subject, subject_body = registry.push_image(source, "v1", layers=2)
    sig = signature(registry, source, subject, subject_body)
    response = registry.post(arts(target), query_string={"from": f"{source}:v1"})
    assert response.status_code == 201, response.get_data()
    assert response.headers["Location"].endswith(f"/artifacts/{subject}")
    copied = ok_json(registry.get(arts(target, "/v1")))
    assert copied["digest"] == subject
    pulled = registry.get(f"/v2/{target}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200 and pulled.get_data() == subject_body
    for layer in json.loads(subject_body)["layers"]:
        assert registry.get(f"/v2/{target}/blobs/{layer['digest']}").status_code in (200, 307)
    assert [a["digest"] for a in ok_json(registry.get(arts(target, "/v1/accessories")))] == [sig]
    by_digest = registry.post(arts("library/target2"), query_string={"from": f"{source}@{subject}"})
    assert by_digest.status_code == 201


# Concurrency.


def test_two_deletes_of_one_artifact_one_wins(registry: Any) -> None:
    repo = "library/racing"
    digest, _ = registry.push_image(repo, "v1")
    statuses = run_together(registry, 2, lambda _i, c: c.delete(arts(repo, f"/{digest}")).status_code)
    assert sorted(statuses) == [200, 404]


def test_a_delete_racing_a_tag_leaves_no_dangling_tag(registry: Any) -> None:
    repo = "library/race-tag"
    for attempt in range(3):
        digest, _ = registry.push_image(repo, f"base{attempt}")

        def work(index: int, client: Registry, digest: str = digest, attempt: int = attempt) -> int:
            if index == 0:
                return client.delete(arts(repo, f"/{digest}")).status_code
            return client.post(arts(repo, f"/{digest}/tags"), json={"name": f"extra{attempt}"}).status_code

        deleted, tagged = run_together(registry, 2, work)
        assert deleted == 200 and tagged in (201, 404), (deleted, tagged)
        for tag in registry.tag_names(repo):
            assert registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_a_delete_racing_a_push_of_the_same_manifest_leaves_tags_that_resolve(registry: Any) -> None:
    repo = "library/race-push"
    for attempt in range(3):
        digest, body = registry.push_image(repo, f"base{attempt}")

        def work(index: int, client: Registry, digest: str = digest, body: bytes = body, attempt: int = attempt) -> int:
            if index == 0:
                return client.delete(arts(repo, f"/{digest}")).status_code
            return client.put_manifest(repo, f"again{attempt}", body, OCI_MANIFEST).status_code

        deleted, pushed = run_together(registry, 2, work)
        assert deleted == 200 and pushed == 201, (deleted, pushed)
        for tag in registry.tag_names(repo):
            assert registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_an_index_push_racing_a_child_delete_never_leaves_a_missing_child(registry: Any) -> None:
    repo = "library/race-index"
    for attempt in range(3):
        child, child_body = registry.push_image(repo)
        body = canonical(index_manifest([descriptor(OCI_MANIFEST, child_body)], annotations={"n": str(attempt)}))

        def work(index: int, client: Registry, child: str = child, body: bytes = body, attempt: int = attempt) -> int:
            if index == 0:
                return client.delete(arts(repo, f"/{child}")).status_code
            return client.put_manifest(repo, f"idx{attempt}", body, OCI_INDEX).status_code

        deleted, pushed = run_together(registry, 2, work)
        index_there = registry.get(f"/v2/{repo}/manifests/idx{attempt}").status_code == 200
        child_there = registry.get(f"/v2/{repo}/manifests/{child}").status_code == 200
        assert not (index_there and not child_there), (deleted, pushed)
        # Either the delete won (the index's condition on its child fails: 400) or the index did (the
        # delete sees it, or its own condition on `ref_version` fails and the retry sees it: 412).
        assert (deleted, pushed) in ((200, 400), (412, 201)), (deleted, pushed)
        assert index_there == (pushed == 201) and child_there == (deleted != 200)


# Bad input and permissions.


@pytest.mark.parametrize(
    ("method", "suffix", "query", "status", "code"),
    [
        ("GET", "", {"page_size": "1000"}, 400, "BAD_REQUEST"),
        ("GET", "", {"page": "0"}, 400, "BAD_REQUEST"),
        ("GET", "", {"page": "x"}, 400, "BAD_REQUEST"),
        ("GET", "", {"q": "nosuchfield=1"}, 400, "BAD_REQUEST"),
        ("GET", "", {"q": "digest=(("}, 400, "BAD_REQUEST"),
        ("GET", "", {"sort": "size"}, 400, "BAD_REQUEST"),
        ("GET", "", {"with_tag": "maybe"}, 400, "BAD_REQUEST"),
        ("GET", "", {"cursor": "!!!not-base64"}, 400, "BAD_REQUEST"),
        ("GET", "", {"cursor": "1.10.eyJhIjoxfQ"}, 400, "BAD_REQUEST"),
        ("GET", "", {"cursor": "eyJhIjoxfQ"}, 400, "BAD_REQUEST"),
        ("GET", "", {"cursor": "x.10.abc"}, 400, "BAD_REQUEST"),
        ("GET", "/v1/tags", {"page_size": "101"}, 400, "BAD_REQUEST"),
        ("GET", "/v1/tags", {"q": "bogus=1"}, 400, "BAD_REQUEST"),
        ("GET", "/v1/accessories", {"page_size": "-1"}, 400, "BAD_REQUEST"),
        ("GET", "/nope", {}, 404, "NOT_FOUND"),
        ("GET", "/sha256:" + "0" * 64, {}, 404, "NOT_FOUND"),
        ("GET", "/sha256:zz", {}, 400, "DIGEST_INVALID"),
        ("GET", "/bad%20tag", {}, 400, "TAG_INVALID"),
        ("DELETE", "/nope", {}, 404, "NOT_FOUND"),
        ("GET", "/nope/tags", {}, 404, "NOT_FOUND"),
        ("GET", "/nope/accessories", {}, 404, "NOT_FOUND"),
        ("DELETE", "/v1/tags/bad%20name", {}, 400, "TAG_INVALID"),
        ("POST", "", {}, 400, "BAD_REQUEST"),
        ("POST", "", {"from": "library"}, 400, "BAD_REQUEST"),
        ("POST", "", {"from": "library/input@sha256:zz"}, 400, "DIGEST_INVALID"),
        ("POST", "", {"from": "library/absent:v1"}, 404, "NOT_FOUND"),
        ("POST", "", {"from": "nosuchproject/x:v1"}, 404, "NOT_FOUND"),
    ],
)
def test_bad_input_gets_harbors_envelope(
    registry: Any, method: str, suffix: str, query: dict[str, str], status: int, code: str
) -> None:
    repo = "library/input"
    registry.push_image(repo, "v1")
    response = registry.request(method, arts(repo, suffix), query_string=query)
    harbor_error(response, status, code)


def test_bad_bodies_and_names(registry: Any) -> None:
    repo = "library/bodies"
    digest, _ = registry.push_image(repo, "v1")
    tags = arts(repo, "/v1/tags")
    harbor_error(registry.post(tags, data=b"{not json", content_type="application/json"), 400, "BAD_REQUEST")
    harbor_error(registry.post(tags, json={"name": "ok", "unknown": 1}), 400, "BAD_REQUEST")
    harbor_error(registry.post(tags, json={"nom": "x"}), 400, "BAD_REQUEST")
    harbor_error(registry.post(tags, json={"name": "bad tag"}), 400, "TAG_INVALID")
    harbor_error(registry.post(tags, json={"name": "x" * 200}), 400, "TAG_INVALID")
    harbor_error(registry.post(tags, json=["v3"]), 400, "BAD_REQUEST")
    assert [t["name"] for t in ok_json(registry.get(arts(repo, f"/{digest}/tags")))] == ["v1"]
    harbor_error(registry.get(f"{API}/projects/library/repositories/nothing-here/artifacts"), 404, "NOT_FOUND")
    harbor_error(registry.get(f"{API}/projects/nosuch/repositories/x/artifacts"), 404, "NOT_FOUND")
    harbor_error(registry.get(f"{API}/projects/99999/repositories/x/artifacts"), 404, "NOT_FOUND")
    harbor_error(registry.get(f"{API}/projects/library/repositories/UPPER/artifacts"), 400, "NAME_INVALID")


def test_credentials_and_roles_are_checked(registry: Any) -> None:
    project = private_project(registry, "private-arts")
    repo = f"{project}/app"
    digest, _ = registry.push_image(repo, "v1")
    guest = make_user(registry, project, 3)
    developer = make_user(registry, project, 2)
    outsider = make_user(registry, project, None)

    harbor_error(registry.get(arts(repo), auth=None), 401, "UNAUTHORIZED")
    harbor_error(registry.get(arts(repo), auth=("admin", "wrong")), 401, "UNAUTHORIZED")
    harbor_error(registry.get(arts(repo), auth=outsider), 404, "NOT_FOUND")
    assert registry.get(arts(repo), auth=guest).status_code == 200
    harbor_error(registry.delete(arts(repo, "/v1"), auth=guest), 403, "FORBIDDEN")
    harbor_error(registry.post(arts(repo, "/v1/tags"), json={"name": "g"}, auth=guest), 403, "FORBIDDEN")
    harbor_error(registry.delete(arts(repo, "/v1"), auth=developer), 403, "FORBIDDEN")
    assert registry.post(arts(repo, "/v1/tags"), json={"name": "dev"}, auth=developer).status_code == 201
    harbor_error(registry.delete(arts(repo, "/v1/tags/dev"), auth=developer), 403, "FORBIDDEN")
    # Copy needs pull on the source as well as create in the target.
    other = private_project(registry, "private-other")
    copy = registry.post(arts(f"{other}/app"), query_string={"from": f"{repo}:v1"}, auth=developer)
    harbor_error(copy, 404, "NOT_FOUND")
    assert registry.get(f"/v2/{repo}/manifests/{digest}").status_code == 200
    assert registry.get(arts(repo, "/v1/accessories"), auth=guest).status_code == 200


# The project-wide list (Harbor 2.9+).


def test_the_project_list_merges_repositories_by_push_time(registry: Any) -> None:
    first, _ = registry.push_image("library/one", "v1")
    second, _ = registry.push_image("library/two/nested", "v1")
    third, third_body = registry.push_image("library/one", "v2")
    signature(registry, "library/one", third, third_body)  # hidden under its subject
    response = registry.get(f"{API}/projects/library/artifacts", query_string={"page_size": "2"})
    assert response.headers["X-Total-Count"] == "3" and 'rel="next"' in response.headers["Link"]
    everything = ok_json(registry.get(f"{API}/projects/library/artifacts"))
    assert {a["digest"] for a in everything} == {first, second, third}
    assert {a["repository_name"] for a in everything} == {"library/one", "library/two/nested"}
    latest = ok_json(registry.get(f"{API}/projects/library/artifacts", query_string={"latest_in_repository": "true"}))
    assert len(latest) == 2 and second in {a["digest"] for a in latest}
    tagged = ok_json(registry.get(f"{API}/projects/library/artifacts", query_string={"q": "tags=v2"}))
    assert [a["digest"] for a in tagged] == [third]
    for query in ({"page_size": "500"}, {"with_tag": "yes"}, {"latest_in_repository": "2"}, {"q": "x=1"},
                  {"sort": "name"}):  # fmt: skip
        harbor_error(registry.get(f"{API}/projects/library/artifacts", query_string=query), 400, "BAD_REQUEST")
    harbor_error(registry.get(f"{API}/projects/nosuch/artifacts"), 404, "NOT_FOUND")
    project = private_project(registry, "private-list")
    harbor_error(registry.get(f"{API}/projects/{project}/artifacts", auth=None), 401, "UNAUTHORIZED")


def test_the_same_digest_in_two_repositories_keeps_its_own_tags(registry: Any) -> None:
    digest, _ = registry.push_image("library/left", "l1", seed=b"same-image")
    again, _ = registry.push_image("library/right", "r1", seed=b"same-image")
    assert digest == again
    listed = ok_json(registry.get(f"{API}/projects/library/artifacts"))
    tags = {a["repository_name"]: [t["name"] for t in a["tags"]] for a in listed}
    assert tags == {"library/left": ["l1"], "library/right": ["r1"]}
    assert len({a["id"] for a in listed}) == 2


def test_an_index_adopting_the_child_after_the_parent_check_still_stops_its_delete(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race above with its window held open: the index adopts the child right after the delete
    looked for parents and found none. The delete must still fail (its condition on the child's
    `ref_version`, read before that look), and its retry sees the index: 412, nothing lost."""
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.wiring import services

    repo = "library/race-window"
    child, child_body = registry.push_image(repo)
    body = canonical(index_manifest([descriptor(OCI_MANIFEST, child_body)]))
    original = ArtifactStore.live_parents
    adopted: list[object] = []

    def parents_then_adopt(self: ArtifactStore, repository: str, digest: str) -> list[str]:
        found = original(self, repository, digest)
        if digest == child and not adopted:
            adopted.append(services().manifests.put(repo, "idx", body, OCI_INDEX))
        return found

    monkeypatch.setattr(ArtifactStore, "live_parents", parents_then_adopt)
    assert registry.delete(arts(repo, f"/{child}")).status_code == 412
    assert adopted
    assert registry.get(f"/v2/{repo}/manifests/idx").status_code == 200
    assert registry.get(f"/v2/{repo}/manifests/{child}").status_code == 200
