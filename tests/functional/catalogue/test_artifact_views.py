"""What artifact JSON carries besides the artifact itself, over HTTP on moto: labels
(`with_label`, `q=labels=...`), the immutable status of tags (`with_immutable_status`) and the
refusals immutability implies on the API, and the repository's integer id (the same one
`/projects/{p}/repositories/{r}` shows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.functional.catalogue.catalogue_support import Catalogue, catalogue_of, check_error, drain, expect_status
from tests.functional.catalogue.test_labels import create_label


@pytest.fixture
def api(registry: Any) -> Catalogue:
    return catalogue_of(registry)


@pytest.fixture
def project(api: Catalogue) -> Iterator[tuple[str, int]]:
    """A private project; its cached immutability rules are dropped afterwards (the services
    outlive the test's table)."""
    created = api.create_project()
    yield created
    from chalicelib.wiring import services

    services().immutability.forget(created[0])


def arts(project: str, repo: str, suffix: str = "") -> str:
    return f"projects/{project}/repositories/{quote(quote(repo, safe=''), safe='')}/artifacts{suffix}"


def listed(api: Catalogue, path: str, **query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect_status(api.get(path, query=query or None), 200).get_json()
    return found


def attach(api: Catalogue, project: str, repo: str, reference: str, label_id: int) -> None:
    expect_status(api.post(arts(project, repo, f"/{reference}/labels"), json_body={"id": label_id}), 200)


def immutable_rule(api: Catalogue, project: str, tag: str = "v*") -> None:
    body = {
        "action": "immutable",
        "template": "immutable_template",
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tag}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    }
    expect_status(api.post(f"projects/{project}/immutabletagrules", json_body=body), 201)


# Labels.


def test_labels_are_shown_when_asked(api: Catalogue, project: tuple[str, int]) -> None:
    name, project_id = project
    labelled, _ = api.push_image(f"{name}/app", "v1")
    bare, _ = api.push_image(f"{name}/app", "v2")
    global_id = create_label(api)
    local_id = create_label(api, project_id=project_id, color="#112233")
    attach(api, name, "app", "v1", global_id)
    attach(api, name, "app", labelled, local_id)

    page = {a["digest"]: a for a in listed(api, arts(name, "app"), with_label="true")}
    assert sorted(label["id"] for label in page[labelled]["labels"]) == sorted([global_id, local_id])
    assert "labels" not in page[bare]  # Harbor omits an empty list
    local = next(label for label in page[labelled]["labels"] if label["id"] == local_id)
    shown = (local["scope"], local["project_id"], local["color"])
    assert shown == ("p", project_id, "#112233")
    assert set(local) == {"id", "name", "color", "scope", "project_id", "creation_time", "update_time"}
    # Harbor's with_label defaults to false: no labels then.
    assert all("labels" not in a for a in listed(api, arts(name, "app")))
    one = expect_status(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}), 200).get_json()
    assert sorted(label["id"] for label in one["labels"]) == sorted([global_id, local_id])
    across = {a["digest"]: a for a in listed(api, f"projects/{name}/artifacts", with_label="true")}
    assert sorted(label["id"] for label in across[labelled]["labels"]) == sorted([global_id, local_id])
    # A detached label is gone from the view at once.
    expect_status(api.delete(arts(name, "app", f"/v1/labels/{global_id}")), 200)
    one = expect_status(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}), 200).get_json()
    assert [label["id"] for label in one["labels"]] == [local_id]


def test_a_page_reads_its_labels_in_one_batch(
    api: Catalogue, project: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list page reads the label sets of its own artifacts (one BatchGetItem), never the
    repository's attachment rows."""
    name, _ = project
    label_id = create_label(api)
    digests = [api.push_image(f"{name}/app", f"t{i}")[0] for i in range(4)]
    for digest in digests:
        attach(api, name, "app", digest, label_id)
    from chalicelib.stores.labels import LabelStore

    asked: list[list[str]] = []
    original = LabelStore.label_sets

    def spy(self: LabelStore, repository: str, wanted: list[str]) -> dict[str, list[int]]:
        asked.append(sorted(wanted))
        return original(self, repository, wanted)

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a list page must not Query the attachment rows")

    monkeypatch.setattr(LabelStore, "label_sets", spy)
    monkeypatch.setattr(LabelStore, "attached", refuse)
    page = listed(api, arts(name, "app"), with_label="true", page_size="3")
    assert [[label["id"] for label in a["labels"]] for a in page] == [[label_id]] * 3
    assert asked == [sorted(a["digest"] for a in page)]


def test_labels_of_deleted_labels_and_artifacts_do_not_linger(api: Catalogue, project: tuple[str, int]) -> None:
    name, _ = project
    config, layer, manifest = api.image()
    for blob in (config, layer):
        api.push_blob(f"{name}/app", blob)
    digest = expect_status(api.put_manifest(f"{name}/app", "v1", manifest), 201).headers["Docker-Content-Digest"]
    kept, dropped = create_label(api), create_label(api)
    attach(api, name, "app", "v1", kept)
    attach(api, name, "app", "v1", dropped)
    expect_status(api.delete(f"labels/{dropped}"), 200)
    one = expect_status(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}), 200).get_json()
    assert [label["id"] for label in one["labels"]] == [kept]
    # A deleted artifact loses its labels; pushed again, it starts without any.
    expect_status(api.delete(arts(name, "app", f"/{digest}")), 200)
    drain()
    expect_status(api.put_manifest(f"{name}/app", "v1", manifest), 201)
    one = expect_status(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}), 200).get_json()
    assert one["digest"] == digest and "labels" not in one
    assert expect_status(api.get(arts(name, "app"), query={"q": f"labels={kept}"}), 200).get_json() == []


def test_q_labels_keeps_artifacts_carrying_every_label(api: Catalogue, project: tuple[str, int]) -> None:
    name, project_id = project
    one, _ = api.push_image(f"{name}/app", "one")
    both, _ = api.push_image(f"{name}/app", "both")
    api.push_image(f"{name}/app", "none")
    first = create_label(api)
    second = create_label(api, project_id=project_id)
    attach(api, name, "app", "one", first)
    attach(api, name, "app", "both", first)
    attach(api, name, "app", "both", second)

    def digests(q: str, path: str = arts(name, "app")) -> set[str]:
        response = expect_status(api.get(path, query={"q": q}), 200)
        found = {a["digest"] for a in response.get_json()}
        assert response.headers["X-Total-Count"] == str(len(found))
        return found

    assert digests(f"labels={first}") == {one, both}
    assert digests(f"labels=({first} {second})") == {both}
    assert digests(f"labels=({second})") == {both}
    assert digests("labels=987654") == set()
    assert digests(f"labels={first},tags=one") == {one}
    assert digests(f"labels=({first} {second})", f"projects/{name}/artifacts") == {both}
    # Harbor accepts only an id or an intersection of ids.
    for bad in (f"labels={{{first} {second}}}", "labels=[1~3]", "labels=~1", "labels=abc", f"labels=({first} x)",
                "labels=(", "labels=1,labels=2"):  # fmt: skip
        check_error(api.get(arts(name, "app"), query={"q": bad}), (400,))
        check_error(api.get(f"projects/{name}/artifacts", query={"q": bad}), (400,))


def test_label_flags_refuse_bad_input(api: Catalogue, project: tuple[str, int]) -> None:
    name, _ = project
    api.push_image(f"{name}/app", "v1")
    guest = api.member(name, "guest")
    for query in ({"with_label": "yes"}, {"with_immutable_status": "2"}, {"page_size": "100000"}, {"page": "0"},
                  {"q": "labels=" + "9" * 2000}):  # fmt: skip
        check_error(api.get(arts(name, "app"), query=query), (400,))
        check_error(api.get(f"projects/{name}/artifacts", query=query), (400,))
    check_error(api.get(arts(name, "app", "/v1"), query={"with_label": "maybe"}), (400,))
    check_error(api.get(arts(name, "app", "/v1/tags"), query={"with_immutable_status": "x"}), (400,))
    check_error(api.get(arts(name, "app"), query={"with_label": "true"}, auth=None), (401,))
    check_error(api.get(arts(name, "app"), query={"with_label": "true"}, auth=api.outsider()), (403, 404))
    check_error(api.get(arts(name, "ghost"), query={"with_label": "true"}), (404,))
    check_error(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}, auth=("admin", "wrong")), (401,))
    assert "labels" not in listed_as(api, arts(name, "app"), guest)[0]


def listed_as(api: Catalogue, path: str, auth: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect_status(api.get(path, query={"with_label": "true"}, auth=auth), 200).get_json()
    return found


# Immutability.


def test_tags_show_their_immutable_status_when_asked(api: Catalogue, project: tuple[str, int]) -> None:
    name, _ = project
    digest, _ = api.push_image(f"{name}/app", "v1")
    expect_status(api.post(arts(name, "app", "/v1/tags"), json_body={"name": "dev"}), 201)
    immutable_rule(api, name)

    def status(**query: str) -> dict[str, bool]:
        (artifact,) = listed(api, arts(name, "app"), **query)
        return {t["name"]: t["immutable"] for t in artifact["tags"]}

    assert status(with_immutable_status="true") == {"v1": True, "dev": False}
    assert status() == {"v1": False, "dev": False}  # Harbor's with_immutable_status defaults to false
    one = expect_status(api.get(arts(name, "app", "/dev"), query={"with_immutable_status": "true"}), 200).get_json()
    assert {t["name"]: t["immutable"] for t in one["tags"]} == {"v1": True, "dev": False}
    across = listed(api, f"projects/{name}/artifacts", with_immutable_status="true")
    assert {t["name"]: t["immutable"] for t in across[0]["tags"]} == {"v1": True, "dev": False}
    for query in ({"with_immutable_status": "true"}, {"with_immutable_status": "true", "q": "name=v1"}):
        tags = listed(api, arts(name, "app", f"/{digest}/tags"), **query)
        assert {t["name"]: t["immutable"] for t in tags} == ({"v1": True, "dev": False} if "q" not in query
                                                             else {"v1": True})  # fmt: skip
    assert {t["immutable"] for t in listed(api, arts(name, "app", f"/{digest}/tags"))} == {False}


def test_immutable_tags_cannot_be_deleted_through_the_api(api: Catalogue, project: tuple[str, int]) -> None:
    name, _ = project
    digest, _ = api.push_image(f"{name}/app", "v1")
    expect_status(api.post(arts(name, "app", "/v1/tags"), json_body={"name": "dev"}), 201)
    other, _ = api.push_image(f"{name}/app", "latest")
    immutable_rule(api, name)

    assert check_error(api.delete(arts(name, "app", "/v1/tags/v1")), (412,))["code"] == "PRECONDITION"
    assert check_error(api.delete(arts(name, "app", f"/{digest}")), (412,))["code"] == "PRECONDITION"
    assert check_error(api.delete(arts(name, "app", "/dev")), (412,))["code"] == "PRECONDITION"
    # Nothing was half-removed: the artifact and both tags are still there.
    (kept,) = [a for a in listed(api, arts(name, "app")) if a["digest"] == digest]
    assert sorted(t["name"] for t in kept["tags"]) == ["dev", "v1"]
    assert expect_status(api.get(f"/v2/{name}/app/manifests/v1"), 200)
    # A mutable tag of the same artifact may go; an artifact without immutable tags may go.
    expect_status(api.delete(arts(name, "app", "/v1/tags/dev")), 200)
    expect_status(api.delete(arts(name, "app", f"/{other}")), 200)
    # Creating a new tag that a rule matches is allowed (Harbor's tag API does not check rules:
    # a new name moves nothing); it is immutable from then on.
    expect_status(api.post(arts(name, "app", "/v1/tags"), json_body={"name": "v2"}), 201)
    assert check_error(api.delete(arts(name, "app", "/v1/tags/v2")), (412,))["code"] == "PRECONDITION"
    check_error(api.post(arts(name, "app", "/v1/tags"), json_body={"name": "v2"}), (409,))


# Repository ids.


def test_artifact_json_names_the_repository_id_the_repositories_api_shows(
    api: Catalogue, project: tuple[str, int]
) -> None:
    name, _ = project
    api.push_image(f"{name}/first", "v1")
    api.push_image(f"{name}/team/second", "v1")
    # `first` gets its id through an artifact list, `team/second` through the repositories API.
    from_artifacts = listed(api, arts(name, "first"))[0]
    second = quote(quote("team/second", safe=""), safe="")
    repo_second = expect_status(api.get(f"projects/{name}/repositories/{second}"), 200)
    second_id = repo_second.get_json()["id"]
    first_id = expect_status(api.get(f"projects/{name}/repositories/first"), 200).get_json()["id"]
    assert from_artifacts["repository_id"] == first_id
    assert {t["repository_id"] for t in from_artifacts["tags"]} == {first_id}
    assert listed(api, arts(name, "team/second"))[0]["repository_id"] == second_id
    assert first_id != second_id and all(isinstance(i, int) and i > 0 for i in (first_id, second_id))
    one = expect_status(api.get(arts(name, "first", "/v1")), 200).get_json()
    assert one["repository_id"] == first_id
    across = {a["repository_name"]: a["repository_id"] for a in listed(api, f"projects/{name}/artifacts")}
    assert across == {f"{name}/first": first_id, f"{name}/team/second": second_id}
    tags = listed(api, arts(name, "first", f"/{one['digest']}/tags"))
    assert {t["repository_id"] for t in tags} == {first_id}
    by_list = {r["name"]: r["id"] for r in expect_status(api.repositories(name), 200).get_json()}
    assert by_list == {f"{name}/first": first_id, f"{name}/team/second": second_id}


def test_a_new_repository_gets_its_id_from_the_project_wide_list(api: Catalogue, project: tuple[str, int]) -> None:
    """The project list assigns an id to a repository nobody has looked at yet, and keeps it."""
    name, _ = project
    api.push_image(f"{name}/fresh", "v1")
    (artifact,) = listed(api, f"projects/{name}/artifacts")
    assert artifact["repository_id"] > 0
    assert (
        expect_status(api.get(f"projects/{name}/repositories/fresh"), 200).get_json()["id"] == artifact["repository_id"]
    )


def test_a_filter_reads_tags_only_when_it_looks_at_them(
    api: Catalogue, project: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`q=labels=...` or `q=type=...` reads the tags of the page returned, not of every candidate."""
    name, _ = project
    label_id = create_label(api)
    digests = [api.push_image(f"{name}/app", f"t{i}")[0] for i in range(3)]
    for digest in digests[:2]:
        attach(api, name, "app", digest, label_id)
    from chalicelib.stores.artifacts import ArtifactStore

    asked: list[int] = []
    original = ArtifactStore.tags_of

    def spy(self: ArtifactStore, repository: str, wanted: list[str], per_artifact: int) -> dict[str, Any]:
        asked.append(len(wanted))
        return original(self, repository, wanted, per_artifact)

    monkeypatch.setattr(ArtifactStore, "tags_of", spy)
    page = listed(api, arts(name, "app"), q=f"labels={label_id}", page_size="1")
    assert len(page) == 1 and page[0]["digest"] in digests[:2] and [t["name"] for t in page[0]["tags"]]
    assert asked == [1]
    asked.clear()
    assert len(listed(api, arts(name, "app"), q="type=IMAGE", page_size="2")) == 2 and asked == [2]
    asked.clear()
    assert len(listed(api, arts(name, "app"), q="tags=~t", page_size="1")) == 1 and asked == [3]


def test_concurrent_attaches_and_detaches_keep_the_label_set_exact(
    api: Catalogue, project: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label set moves in the attach and detach transactions: racing writers of different
    labels on one artifact all land, and a racing attach of the same label lands once."""
    from tests.functional.helpers import run_together, serialise_aws_calls

    serialise_aws_calls(monkeypatch)
    name, _ = project
    api.push_image(f"{name}/app", "v1")
    ids = [create_label(api) for _ in range(4)]
    path = arts(name, "app", "/v1/labels")

    def attach_one(index: int, client: Catalogue) -> int:
        return client.post(path, json_body={"id": ids[index]}).status_code

    assert run_together(api, 4, attach_one) == [200] * 4
    again = run_together(api, 3, lambda _i, client: client.post(path, json_body={"id": ids[0]}).status_code)
    assert again == [409] * 3

    def shown() -> list[int]:
        one = expect_status(api.get(arts(name, "app", "/v1"), query={"with_label": "true"}), 200).get_json()
        return sorted(label["id"] for label in one["labels"])

    assert shown() == sorted(ids)

    def detach_or_attach(index: int, client: Catalogue) -> int:
        if index < 2:
            return client.delete(f"{path}/{ids[index]}").status_code
        return client.post(path, json_body={"id": ids[index]}).status_code

    assert run_together(api, 4, detach_or_attach) == [200, 200, 409, 409]
    assert shown() == sorted(ids[2:])
