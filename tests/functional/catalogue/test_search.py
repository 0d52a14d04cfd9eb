"""/api/v2.0/search over HTTP on moto: names by substring, only what the caller may see."""

from __future__ import annotations

import pytest

from tests.functional.catalogue.catalogue_support import Catalogue, catalogue_of, check_error, expect_status, unique

PROJECT_FIELDS = {"project_id", "name", "owner_id", "owner_name", "metadata", "repo_count", "creation_time"}
REPO_FIELDS = {"project_id", "project_name", "project_public", "repository_name", "pull_count", "artifact_count"}


@pytest.fixture
def api(registry) -> Catalogue:
    return catalogue_of(registry)


@pytest.fixture
def world(api):
    word = unique("needle")
    private, private_id = api.create_project(f"{word}-private")
    public, public_id = api.create_project(f"{word}-public", public=True)
    hidden, _ = api.create_project()
    api.push_image(f"{private}/app", "v1")
    api.push_image(f"{private}/app", "v2")
    api.push_image(f"{public}/tools/cli", "v1")
    api.push_image(f"{hidden}/{word}-inside", "v1")
    api.push_image(f"{hidden}/unrelated", "v1")
    return {"word": word, "private": private, "private_id": private_id, "public": public,
            "public_id": public_id, "hidden": hidden}  # fmt: skip


def _search(api, text, auth=None):
    kwargs = {} if auth is None else {"auth": auth}
    return expect_status(api.get("search", query={"q": text}, **kwargs), 200).get_json()


def test_administrator_finds_projects_and_repositories(api, world):
    found = _search(api, world["word"])
    assert set(found) == {"project", "repository"}
    assert {p["name"] for p in found["project"]} == {world["private"], world["public"]}
    by_name = {p["name"]: p for p in found["project"]}
    assert set(by_name[world["private"]]) >= PROJECT_FIELDS
    assert by_name[world["private"]]["repo_count"] == 1 and by_name[world["public"]]["repo_count"] == 1
    repos = {r["repository_name"]: r for r in found["repository"]}
    inside = f"{world['hidden']}/{world['word']}-inside"
    assert set(repos) == {f"{world['private']}/app", f"{world['public']}/tools/cli", inside}
    app = repos[f"{world['private']}/app"]
    assert set(app) == REPO_FIELDS - {"project_public", "pull_count"}  # false and 0: omitted, as Harbor does
    assert app == {
        "project_id": world["private_id"],
        "project_name": world["private"],
        "repository_name": f"{world['private']}/app",
        "artifact_count": 2,
    }
    assert repos[f"{world['public']}/tools/cli"]["project_public"] is True


def test_substring_matches_inside_names(api, world):
    found = _search(api, "tools/c")
    assert [r["repository_name"] for r in found["repository"]] == [f"{world['public']}/tools/cli"]
    assert "project" not in found
    assert _search(api, "no-such-thing-anywhere") == {}  # Harbor omits empty lists
    # Repository names match case-insensitively (Harbor's ILIKE), project names exactly.
    upper = _search(api, "TOOLS/C")
    assert [r["repository_name"] for r in upper["repository"]] == [f"{world['public']}/tools/cli"]
    assert "project" not in _search(api, world["word"].upper())


def test_members_see_their_projects_and_public_ones(api, world):
    member = api.member(world["private"], "guest")
    found = _search(api, world["word"], auth=member)
    assert {p["name"] for p in found["project"]} == {world["private"], world["public"]}
    assert {r["repository_name"] for r in found["repository"]} == {
        f"{world['private']}/app",
        f"{world['public']}/tools/cli",
    }
    mine = next(p for p in found["project"] if p["name"] == world["private"])
    assert mine["current_user_role_id"] == 3


def test_strangers_and_anonymous_see_only_public(api, world):
    for auth in (api.outsider(), None):
        response = expect_status(api.get("search", query={"q": world["word"]}, auth=auth), 200)
        found = response.get_json()
        assert [p["name"] for p in found["project"]] == [world["public"]]
        assert [r["repository_name"] for r in found["repository"]] == [f"{world['public']}/tools/cli"]


@pytest.mark.parametrize("query", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 300}])
def test_bad_queries(api, query):
    check_error(api.get("search", query=query or None))


def test_wrong_credentials(api):
    check_error(api.get("search", query={"q": "a"}, auth=("admin", "wrong")), (401,))
    check_error(api.get("search", query={"q": "a"}, auth="not-a-token"), (401,))
