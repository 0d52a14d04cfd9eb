"""/api/v2.0/repositories and /projects/{p}/repositories over HTTP on moto."""

from __future__ import annotations

import re

import pytest

from tests.functional.catalogue.catalogue_support import (
    ADMIN,
    Catalogue,
    catalogue_of,
    check_error,
    drain,
    expect_status,
)
from tests.functional.helpers import canonical, digest_of, run_together, serialise_aws_calls

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z")
INDEX = "application/vnd.oci.image.index.v1+json"
FIELDS = {"id", "project_id", "name", "description", "artifact_count", "pull_count", "creation_time", "update_time"}


@pytest.fixture
def api(registry) -> Catalogue:
    return catalogue_of(registry)


@pytest.fixture
def world(api):
    """A private project with three repositories (one nested, one with two artifacts)."""
    project, project_id = api.create_project()
    api.push_image(f"{project}/app", "v1")
    api.push_image(f"{project}/app", "v2")
    api.push_image(f"{project}/team/tool", "v1")
    api.push_image(f"{project}/zeta", "v1")
    return project, project_id


def test_project_repositories_have_harbor_shape(api, world):
    project, project_id = world
    response = expect_status(api.repositories(project, sort="name"), 200)
    assert response.headers["X-Total-Count"] == "3"
    listed = response.get_json()
    assert [r["name"] for r in listed] == [f"{project}/app", f"{project}/team/tool", f"{project}/zeta"]
    for record in listed:
        assert set(record) == FIELDS - {"description"}  # Harbor omits an empty description
        assert record["project_id"] == project_id and record["pull_count"] == 0
        assert TIME.fullmatch(record["creation_time"]) and TIME.fullmatch(record["update_time"])
        assert isinstance(record["id"], int) and record["id"] > 0
    assert [r["artifact_count"] for r in listed] == [2, 1, 1]
    assert len({r["id"] for r in listed}) == 3
    # Ids are stable: the same on the next read and on the single GET.
    again = {r["name"]: r["id"] for r in api.repositories(project).get_json()}
    assert again == {r["name"]: r["id"] for r in listed}
    single = expect_status(api.get(f"projects/{project}/repositories/team%252Ftool"), 200).get_json()
    assert single == listed[1]


def test_paging_sorting_and_query(api, world):
    project, _ = world
    first = expect_status(api.repositories(project, page_size=2, sort="name"), 200)
    assert first.headers["X-Total-Count"] == "3"
    assert [r["name"] for r in first.get_json()] == [f"{project}/app", f"{project}/team/tool"]
    assert 'rel="next"' in first.headers["Link"] and "page=2" in first.headers["Link"]
    second = expect_status(api.repositories(project, page=2, page_size=2, sort="name"), 200)
    assert [r["name"] for r in second.get_json()] == [f"{project}/zeta"]
    assert 'rel="prev"' in second.headers["Link"] and 'rel="next"' not in second.headers["Link"]
    descending = api.repositories(project, sort="-name").get_json()
    assert [r["name"] for r in descending] == [f"{project}/zeta", f"{project}/team/tool", f"{project}/app"]
    fuzzy = expect_status(api.repositories(project, q="name=~team"), 200)
    assert [r["name"] for r in fuzzy.get_json()] == [f"{project}/team/tool"] and fuzzy.headers["X-Total-Count"] == "1"
    # A prefix of another project's name does not leak into this project's list.
    other, _ = api.create_project(f"{project}x")
    api.push_image(f"{other}/app", "v1")
    assert api.repositories(project).headers["X-Total-Count"] == "3"


def test_default_order_is_newest_first(api, clock):
    project, _ = api.create_project()
    api.push_image(f"{project}/older", "v1")
    clock.advance(1)  # creation times have a one-second resolution
    api.push_image(f"{project}/newer", "v1")
    assert [r["name"] for r in api.repositories(project).get_json()] == [f"{project}/newer", f"{project}/older"]
    assert [r["name"] for r in api.repositories(project, sort="creation_time").get_json()] == [
        f"{project}/older",
        f"{project}/newer",
    ]


def test_get_update_and_unknown(api, world):
    project, _ = world
    path = f"projects/{project}/repositories/app"
    before = expect_status(api.get(path), 200).get_json()
    expect_status(api.put(path, json_body={"description": "the app"}), 200)
    after = expect_status(api.get(path), 200).get_json()
    assert after["description"] == "the app" and after["id"] == before["id"]
    # What GET returned may be sent back (Harbor's portal does).
    expect_status(api.put(path, json_body={**after, "description": "again"}), 200)
    assert api.get(path).get_json()["description"] == "again"
    check_error(api.get(f"projects/{project}/repositories/nothing"), (404,))
    check_error(api.put(f"projects/{project}/repositories/nothing", json_body={"description": "x"}), (404,))
    check_error(api.delete(f"projects/{project}/repositories/nothing"), (404,))
    check_error(api.get("projects/no-such-project/repositories"), (404,))


def _push_index(api, repo: str, tag: str) -> tuple[str, list[str]]:
    children = [api.push_image(repo, f"child{i}")[0] for i in range(2)]
    sizes = {d: len(api.pull(repo, d).get_data()) for d in children}
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": sizes[d]}
                for d in children
            ],
        }
    )
    response = api.put(f"/v2/{repo}/manifests/{tag}", data=index, content_type=INDEX)
    expect_status(response, 201)
    return digest_of(index), children


def test_delete_removes_every_artifact_and_releases_quota(api):
    project, project_id = api.create_project()
    keep = f"{project}/keep"
    api.push_image(keep, "v1")
    used_before, _ = api.usage(project_id)
    repo = f"{project}/doomed"
    api.push_image(repo, "v1")
    index, _children = _push_index(api, repo, "multi")
    # Harbor counts what the list shows: the image and the index, not the index's children.
    assert api.get(f"projects/{project}/repositories/doomed").get_json()["artifact_count"] == 2
    expect_status(api.delete(f"projects/{project}/repositories/doomed"), 200)
    check_error(api.get(f"projects/{project}/repositories/doomed"), (404,))
    assert expect_status(api.get(f"/v2/{repo}/manifests/{index}"), 404)
    assert api.get(f"/v2/{repo}/tags/list").status_code == 404
    assert repo not in api.get("/v2/_catalog").get_json()["repositories"]
    assert [r["name"] for r in api.repositories(project).get_json()] == [keep]
    assert api.usage(project_id)[0] == used_before
    # The repository can be pushed again and gets a new id.
    api.push_image(repo, "v1")
    assert api.get(f"projects/{project}/repositories/doomed").get_json()["artifact_count"] == 1


def test_project_is_deletable_after_its_repositories_are(api):
    project, _ = api.create_project()
    api.push_image(f"{project}/only", "v1")
    check_error(api.delete(f"projects/{project}"), (412,))
    expect_status(api.delete(f"projects/{project}/repositories/only"), 200)
    expect_status(api.delete(f"projects/{project}"), 200)


def test_all_repositories_follow_visibility(api):
    private, _ = api.create_project()
    public, _ = api.create_project(public=True)
    hidden, _ = api.create_project()
    for project in (private, public, hidden):
        api.push_image(f"{project}/app", "v1")
    user = api.member(private, "guest")

    def names(auth) -> list[str]:
        response = expect_status(api.get("repositories", auth=auth, query={"page_size": 100}), 200)
        return [r["name"] for r in response.get_json()]

    assert set(names(ADMIN)) == {f"{p}/app" for p in (private, public, hidden)}
    assert set(names(user)) == {f"{private}/app", f"{public}/app"}
    assert names(None) == [f"{public}/app"]
    total = api.get("repositories", query={"page_size": 1}).headers
    assert total["X-Total-Count"] == "3" and 'rel="next"' in total["Link"]


@pytest.mark.parametrize(
    ("role", "get", "put", "delete"),
    [
        ("limited", 200, 403, 403),
        ("guest", 200, 403, 403),
        ("developer", 200, 200, 403),
        ("maintainer", 200, 200, 200),
        ("admin", 200, 200, 200),
    ],
)
def test_roles(api, role, get, put, delete):
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")
    auth = api.member(project, role)
    path = f"projects/{project}/repositories/app"
    assert api.get(path, auth=auth).status_code == get
    assert api.repositories(project, auth=auth).status_code == get
    response = api.put(path, auth=auth, json_body={"description": role})
    assert response.status_code == put, response.get_data()
    response = api.delete(path, auth=auth)
    assert response.status_code == delete, response.get_data()
    if delete == 403:
        check_error(response, (403,))
        assert api.get(path).status_code == 200


def test_outsiders_and_anonymous(api):
    private, _ = api.create_project()
    public, _ = api.create_project(public=True)
    api.push_image(f"{private}/app", "v1")
    api.push_image(f"{public}/app", "v1")
    stranger = api.outsider()
    check_error(api.repositories(private, auth=stranger), (404,))
    check_error(api.get(f"projects/{private}/repositories/app", auth=stranger), (404,))
    check_error(api.repositories(private, auth=None), (401,))
    expect_status(api.repositories(public, auth=None), 200)
    expect_status(api.get(f"projects/{public}/repositories/app", auth=None), 200)
    check_error(api.put(f"projects/{public}/repositories/app", auth=None, json_body={"description": "x"}), (401,))
    check_error(api.delete(f"projects/{public}/repositories/app", auth=stranger), (403,))
    check_error(api.get("repositories", auth=("admin", "wrong")), (401,))
    assert api.get(f"projects/{public}/repositories/app").get_json()["artifact_count"] == 1


def test_pull_count_is_counted_and_coalesced(api, registry):
    registry.configure(pull_count_flush_seconds=60)  # a coalescer that has not flushed yet
    project, _ = api.create_project()
    repo = f"{project}/app"
    api.push_image(repo, "v1")
    for _ in range(3):
        expect_status(api.pull(repo, "v1"), 200)
    drain()
    # The first pull is written at once; the next ones wait for the flush window (60 s).
    counted = api.get(f"projects/{project}/repositories/app").get_json()
    assert counted["pull_count"] == 1
    from chalicelib.wiring import services

    services().pulls.flush()
    assert api.get(f"projects/{project}/repositories/app").get_json()["pull_count"] == 3
    registry.configure(pull_count_flush_seconds=0)
    api.pull(repo, "v1")
    api.pull(repo, "v1")
    drain()
    assert api.get(f"projects/{project}/repositories/app").get_json()["pull_count"] == 5
    # HEAD is not a pull.
    api.head(f"/v2/{repo}/manifests/v1")
    drain()
    assert api.get(f"projects/{project}/repositories/app").get_json()["pull_count"] == 5


def test_concurrent_first_reads_agree_on_one_id(api, monkeypatch):
    serialise_aws_calls(monkeypatch)
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")

    def read(_index: int, client: Catalogue) -> int:
        response = expect_status(client.get(f"projects/{project}/repositories/app"), 200)
        return int(response.get_json()["id"])

    ids = run_together(api, 6, read)
    assert len(set(ids)) == 1
    assert api.get(f"projects/{project}/repositories/app").get_json()["id"] == ids[0]


BAD_QUERIES = [
    {"page_size": "1000"},
    {"page_size": "0"},
    {"page": "0"},
    {"page": "x"},
    {"q": "nokey=1"},
    {"q": "name=[1~2]"},
    {"q": "name=(a"},
    {"q": "project_id=abc"},
    {"sort": "size"},
    {"q": "x" * 2000},
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_list_queries(api, world, query):
    project, _ = world
    check_error(api.repositories(project, **query))
    check_error(api.get("repositories", query=query))


@pytest.mark.parametrize(
    "body", [b'{"description": ', b"[]", b"\xff\xfe", b'{"description": 5}', b'{"colour": "x"}', b"null"]
)
def test_bad_update_bodies_change_nothing(api, world, body):
    project, _ = world
    path = f"projects/{project}/repositories/app"
    expect_status(api.put(path, json_body={"description": "kept"}), 200)
    check_error(api.put(path, data=body, content_type="application/json"))
    assert api.get(path).get_json()["description"] == "kept"


@pytest.mark.parametrize("name", ["UPPER", "a%252F..%252Fb", "-lead", "a%252F%252Fb", "x" * 300])
def test_bad_repository_names(api, world, name):
    project, _ = world
    for method in ("GET", "PUT", "DELETE"):
        response = api.request(method, f"projects/{project}/repositories/{name}", json_body={"description": "x"})
        check_error(response, (400, 404))
    assert api.repositories(project).headers["X-Total-Count"] == "3"


def test_project_robots_need_repository_list(api):
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")
    lister = api.project_robot(project, [{"resource": "repository", "action": "list"}])
    puller = api.project_robot(project, [{"resource": "repository", "action": "pull"}])
    auth = (lister["name"], lister["secret"])
    listed = expect_status(api.repositories(project, auth=auth), 200).get_json()
    assert [r["name"] for r in listed] == [f"{project}/app"]
    expect_status(api.get(f"projects/{project}/repositories/app", auth=auth), 200)
    # Denied (ProjectService answers 404 to callers without `project:read`, as if unseen).
    check_error(api.put(f"projects/{project}/repositories/app", auth=auth, json_body={"description": "x"}), (403, 404))
    check_error(api.repositories(project, auth=(puller["name"], puller["secret"])), (403, 404))
    assert "description" not in api.get(f"projects/{project}/repositories/app").get_json()


@pytest.mark.slow
def test_delete_racing_a_push_never_hides_an_artifact(api, monkeypatch):
    """Whichever wins, a manifest that exists afterwards is in a listed repository, and a delete
    that answered 200 left nothing behind. (A 409 may leave the repository, emptied or not.)"""
    serialise_aws_calls(monkeypatch)
    project, _ = api.create_project()
    outcomes = set()
    for round_ in range(8):
        repo = f"{project}/race{round_}"
        api.push_image(repo, "old")
        config, layer, manifest = api.image()
        api.push_blob(repo, config)
        api.push_blob(repo, layer)

        def race(index: int, client: Catalogue, repo: str = repo, manifest: bytes = manifest) -> int:
            if index == 0:
                return client.delete(f"projects/{project}/repositories/{repo.split('/', 1)[1]}").status_code
            return client.put_manifest(repo, "new", manifest).status_code

        deleted, pushed = run_together(api, 2, race)
        assert deleted in (200, 409) and pushed == 201, (deleted, pushed)
        outcomes.add(deleted)
        survives = api.pull(repo, "new").status_code == 200
        listed = api.get(f"projects/{project}/repositories/{repo.split('/', 1)[1]}")
        if survives:
            assert expect_status(listed, 200).get_json()["artifact_count"] >= 1
        if deleted == 200 and not survives:
            check_error(listed, (404,))
    assert outcomes


def test_push_landing_just_before_the_row_is_deleted_keeps_the_repository(api, monkeypatch):
    """The worst moment for a push: after the delete found the repository empty, before it removes
    the row (in the same second as the last push). The delete must refuse (409), not hide it."""
    from chalicelib.stores.repositories import RepositoryStore

    project, _ = api.create_project()
    repo = f"{project}/app"
    api.push_image(repo, "old")
    config, layer, manifest = api.image()
    api.push_blob(repo, config)
    api.push_blob(repo, layer)
    original_delete, original_artifacts = RepositoryStore.delete, RepositoryStore.artifacts
    state = {"deleting": False, "pushed": 0}

    def delete(self, *args):
        state["deleting"] = True
        return original_delete(self, *args)

    def artifacts(self, name):
        found = original_artifacts(self, name)
        if state["deleting"] and not found and not state["pushed"]:
            state["pushed"] = api.clone().put_manifest(repo, "new", manifest).status_code
        return found

    monkeypatch.setattr(RepositoryStore, "delete", delete)
    monkeypatch.setattr(RepositoryStore, "artifacts", artifacts)
    check_error(api.delete(f"projects/{project}/repositories/app"), (409,))
    assert state["pushed"] == 201
    expect_status(api.pull(repo, "new"), 200)
    listed = expect_status(api.get(f"projects/{project}/repositories/app"), 200).get_json()
    assert listed["artifact_count"] == 1 and TIME.fullmatch(listed["update_time"])
