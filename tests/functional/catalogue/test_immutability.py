"""Tag immutability over HTTP on moto: the rules API (Harbor's JSON, RBAC, limits, bad input) and
its enforcement on /v2 pushes and deletes, including racing writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.catalogue.rules_support import (
    api,
    atomic_calls,
    create_project,
    expect,
    harbor_error,
    member,
    small_image,
)
from tests.functional.helpers import OCI_MANIFEST, Registry, assert_error, digest_of, run_together

__all__ = ["atomic_calls"]


def rule_body(tag: str = "v*", repo: str = "**", *, tag_decoration: str = "matches",
              repo_decoration: str = "repoMatches", **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "action": "immutable",
        "template": "immutable_template",
        "priority": 0,
        "tag_selectors": [{"kind": "doublestar", "decoration": tag_decoration, "pattern": tag}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": repo_decoration, "pattern": repo}]},
        **extra,
    }


def add_rule(registry: Registry, project: str, body: dict[str, Any] | None = None) -> int:
    response = expect(api(registry, "POST", f"/projects/{project}/immutabletagrules", json=body or rule_body()), 201)
    location = response.headers["Location"]
    assert location.startswith(f"/api/v2.0/projects/{project}/immutabletagrules/")
    return int(location.rsplit("/", 1)[1])


def list_rules(registry: Registry, project: str, **query: str) -> list[dict[str, Any]]:
    response = expect(api(registry, "GET", f"/projects/{project}/immutabletagrules", query_string=query), 200)
    rules: list[dict[str, Any]] = response.get_json()
    assert response.headers["X-Total-Count"] == str(len(rules)) or "page_size" in query
    return rules


@pytest.fixture
def project(registry: Registry) -> Iterator[tuple[str, int]]:
    """A private project of its own; its cached rules are dropped afterwards (the services outlive
    the test's table)."""
    created = create_project(registry)
    yield created
    from chalicelib.wiring import services

    services().immutability.forget(created[0])


def test_rule_lifecycle_in_harbor_json(registry, project):
    name, project_id = project
    assert list_rules(registry, name) == []
    rule_id = add_rule(registry, name, rule_body("release-{dev,prod}", "team/**"))
    [rule] = list_rules(registry, name)
    assert rule == {  # Harbor's ImmutableRule: no project id; priority 0, false and {} are omitted
        "id": rule_id,
        "action": "immutable",
        "template": "immutable_template",
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "release-{dev,prod}"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "team/**"}]},
    }
    # By project id too; a PUT may send back what GET returned.
    changed = {**rule, "disabled": True, "tag_selectors": [{**rule["tag_selectors"][0], "pattern": "v*"}]}
    expect(api(registry, "PUT", f"/projects/{project_id}/immutabletagrules/{rule_id}", json=changed), 200)
    [after] = list_rules(registry, str(project_id))
    assert after["disabled"] is True and after["tag_selectors"][0]["pattern"] == "v*"
    expect(api(registry, "DELETE", f"/projects/{name}/immutabletagrules/{rule_id}"), 200)
    assert list_rules(registry, name) == []
    harbor_error(api(registry, "DELETE", f"/projects/{name}/immutabletagrules/{rule_id}"), 404, "NOT_FOUND")


def test_action_and_template_may_be_left_out(registry, project):
    name, _ = project
    body = {k: v for k, v in rule_body().items() if k not in ("action", "template", "priority")}
    add_rule(registry, name, body)
    [rule] = list_rules(registry, name)
    assert (rule["action"], rule["template"], rule.get("priority", 0)) == ("immutable", "immutable_template", 0)


def test_list_pages_filters_and_sorts(registry, project):
    name, _ = project
    ids = [add_rule(registry, name, rule_body(f"t{i}*", priority=10 - i)) for i in range(3)]
    response = expect(api(registry, "GET", f"/projects/{name}/immutabletagrules",
                          query_string={"page": "1", "page_size": "2", "sort": "priority"}), 200)  # fmt: skip
    assert response.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in response.headers["Link"]
    assert [r["id"] for r in response.get_json()] == [ids[2], ids[1]]
    assert [r["id"] for r in list_rules(registry, name, q=f"id={ids[1]}")] == [ids[1]]
    harbor_error(api(registry, "GET", f"/projects/{name}/immutabletagrules", query_string={"q": "nope=1"}), 400)
    harbor_error(api(registry, "GET", f"/projects/{name}/immutabletagrules", query_string={"page_size": "100000"}),
                 400)  # fmt: skip
    harbor_error(api(registry, "GET", f"/projects/{name}/immutabletagrules", query_string={"sort": "pattern"}), 400)


def test_limit_of_fifteen_and_duplicates(registry, project):
    name, _ = project
    first = add_rule(registry, name, rule_body("a0"))
    harbor_error(api(registry, "POST", f"/projects/{name}/immutabletagrules", json=rule_body("a0")), 409, "CONFLICT")
    for i in range(1, 15):
        add_rule(registry, name, rule_body(f"a{i}"))
    harbor_error(api(registry, "POST", f"/projects/{name}/immutabletagrules", json=rule_body("a15")), 400)
    assert len(list_rules(registry, name, page_size="100")) == 15
    # An update may not turn a rule into a copy of another one.
    dup = api(registry, "PUT", f"/projects/{name}/immutabletagrules/{first}", json=rule_body("a1", id=first))
    harbor_error(dup, 409, "CONFLICT")
    assert {r["tag_selectors"][0]["pattern"] for r in list_rules(registry, name, page_size="100")} == {
        f"a{i}" for i in range(15)
    }


BAD_BODIES = [
    b"{not json",
    b"[]",
    b'{"tag_selectors": "v*"}',
    b'{"unknown": 1}',
    b'{"priority": "high"}',
]


@pytest.mark.parametrize("raw", BAD_BODIES)
def test_malformed_bodies_are_400(registry, project, raw):
    name, _ = project
    response = api(registry, "POST", f"/projects/{name}/immutabletagrules", data=raw,
                   headers={"Content-Type": "application/json"})  # fmt: skip
    harbor_error(response, 400)
    assert list_rules(registry, name) == []


@pytest.mark.parametrize(
    "body",
    [
        rule_body("[oops"),
        rule_body("v*", "{unclosed"),
        rule_body(""),
        rule_body("v*", tag_decoration="repoMatches"),
        rule_body("v*", repo_decoration="matches"),
        rule_body("v*", action="retain"),
        rule_body("v*", template="latestPushedK"),
        {**rule_body(), "tag_selectors": []},
        {**rule_body(), "tag_selectors": rule_body()["tag_selectors"] * 2},
        {**rule_body(), "scope_selectors": {}},
        {**rule_body(), "scope_selectors": {"namespace": rule_body()["scope_selectors"]["repository"]}},
        {**rule_body(), "tag_selectors": [{"kind": "regex", "decoration": "matches", "pattern": ".*"}]},
        rule_body("{a,b,c,d}" * 5),
        rule_body("{a,b}" * 8 + "x" * 40),  # 256 alternatives of 48 terms: too large an automaton
    ],
)
def test_invalid_rules_are_400(registry, project, body):
    name, _ = project
    harbor_error(api(registry, "POST", f"/projects/{name}/immutabletagrules", json=body), 400, "BAD_REQUEST")
    assert list_rules(registry, name) == []


def test_bad_ids_and_foreign_rules(registry, project):
    name, _ = project
    rule_id = add_rule(registry, name)
    other, _ = create_project(registry)
    for bad in ("abc", "-1", "1" * 30):
        harbor_error(api(registry, "DELETE", f"/projects/{name}/immutabletagrules/{bad}"), 400)
    harbor_error(api(registry, "DELETE", f"/projects/{name}/immutabletagrules/999999"), 404, "NOT_FOUND")
    # A rule is reachable only through its own project.
    harbor_error(api(registry, "DELETE", f"/projects/{other}/immutabletagrules/{rule_id}"), 404, "NOT_FOUND")
    harbor_error(api(registry, "PUT", f"/projects/{other}/immutabletagrules/{rule_id}", json=rule_body()), 404)
    mismatched = api(registry, "PUT", f"/projects/{name}/immutabletagrules/{rule_id}", json=rule_body(id=rule_id + 1))
    harbor_error(mismatched, 400)
    harbor_error(api(registry, "GET", "/projects/no-such-project/immutabletagrules"), 404)
    assert len(list_rules(registry, name)) == 1


def test_permissions_follow_harbor_rbac(registry, project):
    name, _ = project
    rule_id = add_rule(registry, name)
    path = f"/projects/{name}/immutabletagrules"
    harbor_error(api(registry, "GET", path, auth=None), 401, "UNAUTHORIZED")
    harbor_error(api(registry, "POST", path, auth=None, json=rule_body("x")), 401, "UNAUTHORIZED")
    harbor_error(api(registry, "GET", path, auth=("admin", "wrong-password")), 401, "UNAUTHORIZED")
    maintainer = member(registry, name, "maintainer")
    new_id = add_rule(registry.__class__(registry.http, maintainer), name, rule_body("m*"))
    expect(api(registry, "DELETE", f"{path}/{new_id}", auth=maintainer), 200)
    for role in ("developer", "guest"):
        user = member(registry, name, role)
        assert len(expect(api(registry, "GET", path, auth=user), 200).get_json()) == 1
        harbor_error(api(registry, "POST", path, auth=user, json=rule_body("x")), 403, "FORBIDDEN")
        harbor_error(api(registry, "PUT", f"{path}/{rule_id}", auth=user, json=rule_body("x")), 403, "FORBIDDEN")
        harbor_error(api(registry, "DELETE", f"{path}/{rule_id}", auth=user), 403, "FORBIDDEN")
    limited = member(registry, name, "limited")
    harbor_error(api(registry, "GET", path, auth=limited), 403, "FORBIDDEN")
    stranger = member(registry, create_project(registry)[0], "admin")  # admin elsewhere, nothing here
    harbor_error(api(registry, "GET", path, auth=stranger), 404)
    assert [r["id"] for r in list_rules(registry, name)] == [rule_id]


# Enforcement on /v2.


def test_push_to_an_immutable_tag(registry, project):
    name, _ = project
    repo = f"{name}/team/app"
    add_rule(registry, name, rule_body("v*", "team/**"))
    first = small_image(registry, repo, "one")
    second = small_image(registry, repo, "two")
    registry.push_manifest(repo, "v1", first, OCI_MANIFEST)  # the first push of a new tag is allowed
    entry = assert_error(registry.put_manifest(repo, "v1", second, OCI_MANIFEST), 412, "PRECONDITION")
    assert entry["message"] == "Failed to process request due to 'team/app:v1' configured as immutable."
    assert registry.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == digest_of(first)
    # Re-pushing the very same manifest changes nothing, so it is accepted (documented choice).
    assert registry.push_manifest(repo, "v1", first, OCI_MANIFEST) == digest_of(first)
    # Tags and repositories outside the rule stay mutable.
    registry.push_manifest(repo, "latest", first, OCI_MANIFEST)
    registry.push_manifest(repo, "latest", second, OCI_MANIFEST)
    other = f"{name}/elsewhere"
    registry.push_manifest(other, "v1", small_image(registry, other, "a"), OCI_MANIFEST)
    registry.push_manifest(other, "v1", small_image(registry, other, "b"), OCI_MANIFEST)
    # A push by digest never touches a tag.
    registry.push_manifest(repo, digest_of(second), second, OCI_MANIFEST)


def test_a_backtracking_pattern_is_matched_in_linear_time(registry, project):
    """`*a*a*a*a*a*b` against a 128-`a` tag took a regex 9.5 s per push (and held the GIL)."""
    from chalicelib.core.selectors import compile_pattern

    name, _ = project
    repo = f"{name}/app"
    add_rule(registry, name, rule_body("*a*a*a*a*a*b", "**"))
    add_rule(registry, name, rule_body("*a*a*a*a*a*a", "**"))
    tag = "a" * 128
    registry.push_manifest(repo, tag, small_image(registry, repo, "one"), OCI_MANIFEST)
    second = small_image(registry, repo, "two")
    assert_error(registry.put_manifest(repo, tag, second, OCI_MANIFEST), 412, "PRECONDITION")
    assert compile_pattern("*a*a*a*a*a*b").run(tag)[1] < 2_000  # the steps a push spent on that rule


def test_deletes_of_immutable_tags_and_their_manifests(registry, project):
    name, _ = project
    repo = f"{name}/app"
    rule_id = add_rule(registry, name, rule_body("dev-*", tag_decoration="excludes"))
    image = small_image(registry, repo, "x")
    digest = registry.push_manifest(repo, "v1", image, OCI_MANIFEST)
    registry.push_manifest(repo, "dev-1", image, OCI_MANIFEST)
    assert_error(registry.delete(f"/v2/{repo}/manifests/v1"), 412, "PRECONDITION")
    assert_error(registry.delete(f"/v2/{repo}/manifests/{digest}"), 412, "PRECONDITION")
    expect(registry.delete(f"/v2/{repo}/manifests/dev-1"), 202)  # excluded by the rule: mutable
    assert_error(registry.delete(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert registry.tag_names(repo) == ["v1"]
    # Disabling the rule lifts the protection at once (same process: the cache is invalidated).
    body = {**rule_body("dev-*", tag_decoration="excludes"), "disabled": True}
    expect(api(registry, "PUT", f"/projects/{name}/immutabletagrules/{rule_id}", json=body), 200)
    expect(registry.delete(f"/v2/{repo}/manifests/{digest}"), 202)
    assert registry.tag_names(repo) == []


def test_deleting_the_project_takes_its_rules(registry):
    name, _ = create_project(registry)
    add_rule(registry, name)
    expect(api(registry, "DELETE", f"/projects/{name}"), 200)
    expect(api(registry, "POST", "/projects", json={"project_name": name, "metadata": {"public": "false"}}), 201)
    assert list_rules(registry, name) == []


def test_a_project_without_rules_reads_them_once_per_cache_period(registry, project, monkeypatch):
    """The cost on the push path: no Query, and one GetItem per project per cache period."""
    from chalicelib.stores.immutability import ImmutabilityStore

    name, _ = project
    repo = f"{name}/app"
    loads: list[str] = []
    original = ImmutabilityStore.load

    def counting(self: ImmutabilityStore, project_name: str) -> Any:
        loads.append(project_name)
        return original(self, project_name)

    monkeypatch.setattr(ImmutabilityStore, "load", counting)
    for i in range(5):
        registry.push_manifest(repo, f"v{i}", small_image(registry, repo, str(i)), OCI_MANIFEST)
    assert loads == [name]


@pytest.mark.usefixtures("atomic_calls")
def test_racing_first_pushes_of_an_immutable_tag(registry, project):
    name, _ = project
    repo = f"{name}/race"
    add_rule(registry, name)
    images = [small_image(registry, repo, f"racer-{i}") for i in range(4)]

    def push(index: int, client: Registry) -> int:
        return client.put_manifest(repo, "v1", images[index], OCI_MANIFEST).status_code

    statuses = run_together(registry, len(images), push)
    assert sorted(statuses) == [201, 412, 412, 412], statuses
    winner = images[statuses.index(201)]
    assert registry.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == digest_of(winner)


@pytest.mark.usefixtures("atomic_calls")
def test_same_manifest_racing_to_an_immutable_tag_all_succeed(registry, project):
    name, _ = project
    repo = f"{name}/same"
    add_rule(registry, name)
    image = small_image(registry, repo, "same")
    statuses = run_together(registry, 4, lambda _i, c: c.put_manifest(repo, "v1", image, OCI_MANIFEST).status_code)
    assert statuses == [201] * 4


@pytest.mark.usefixtures("atomic_calls")
def test_rule_created_while_pushes_run(registry, project):
    name, _ = project
    repo = f"{name}/moving"
    images = [small_image(registry, repo, f"m{i}") for i in range(12)]
    registry.push_manifest(repo, "v1", images[0], OCI_MANIFEST)
    statuses: list[int] = []
    started = threading.Event()

    def pusher() -> None:
        client = registry.clone()
        for image in images[1:]:
            started.set()
            statuses.append(client.put_manifest(repo, "v1", image, OCI_MANIFEST).status_code)

    thread = threading.Thread(target=pusher)
    thread.start()
    started.wait(10)
    add_rule(registry, name)
    thread.join(60)
    assert set(statuses) <= {201, 412}, statuses
    # Once the rule is visible, the tag stays where the last accepted push left it.
    if 412 in statuses:
        assert 201 not in statuses[statuses.index(412) :], statuses
    pinned = registry.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"]
    accepted = [images[0]] + [img for img, s in zip(images[1:], statuses, strict=True) if s == 201]
    assert pinned == digest_of(accepted[-1])
    assert_error(registry.put_manifest(repo, "v1", small_image(registry, repo, "late"), OCI_MANIFEST), 412,
                 "PRECONDITION")  # fmt: skip
