"""Harbor's own clients against the registry (issue 16, items 1-6): the spellings of boolean query
values the generated Python client sends, RFC 3339 timestamps, omitted empty fields, the error texts
Harbor's API tests compare, 403 rather than 404 for a caller that can see the project, and quota
sorting. Every request is the one a Harbor client sends."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.functional.catalogue.rules_support import (
    api,
    create_project,
    create_user,
    expect,
    harbor_error,
    small_image,
    unique,
)
from tests.functional.helpers import OCI_MANIFEST, Registry

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def robot(registry: Registry, level: str, permissions: list[dict[str, Any]]) -> tuple[str, str]:
    body = {"name": unique("bot"), "level": level, "duration": -1, "permissions": permissions}
    created = expect(api(registry, "POST", "/robots", json=body), 201).get_json()
    return created["name"], created["secret"]


# 1. Boolean query values.


@pytest.mark.parametrize("spelling", ["True", "TRUE", "true", "1", "t", "T"])
def test_public_filter_takes_go_true_spellings(registry, spelling):
    public, _ = create_project(registry, public=True)
    private, _ = create_project(registry)
    names = {p["name"] for p in expect(api(registry, "GET", "/projects", query_string={
        "public": spelling, "page_size": "100"}), 200).get_json()}  # fmt: skip
    assert public in names and private not in names


@pytest.mark.parametrize("spelling", ["False", "FALSE", "false", "0", "f", "F"])
def test_public_filter_takes_go_false_spellings(registry, spelling):
    public, _ = create_project(registry, public=True)
    private, _ = create_project(registry)
    names = {p["name"] for p in expect(api(registry, "GET", "/projects", query_string={
        "public": spelling, "with_detail": "True", "page_size": "100"}), 200).get_json()}  # fmt: skip
    assert private in names and public not in names


def test_artifact_flags_and_permission_relative_take_harbor_spellings(registry):
    project, project_id = create_project(registry)
    repo = f"{project}/app"
    registry.push_manifest(repo, "v1", small_image(registry, repo, "flags"), OCI_MANIFEST)
    path = f"/projects/{project}/repositories/app/artifacts"
    listed = expect(api(registry, "GET", path, query_string={
        "with_tag": "False", "with_label": "True", "with_scan_overview": "True",
        "with_immutable_status": "True", "with_accessory": "False"}), 200).get_json()  # fmt: skip
    assert listed and not listed[0].get("tags")
    one = expect(api(registry, "GET", f"{path}/v1", query_string={"with_tag": "TRUE", "with_signature": "False"}), 200)
    assert [t["name"] for t in one.get_json()["tags"]] == ["v1"]
    tags = api(registry, "GET", f"{path}/v1/tags", query_string={"with_immutable_status": "True"})
    assert [t["immutable"] for t in expect(tags, 200).get_json()] == [False]
    everywhere = api(registry, "GET", f"/projects/{project}/artifacts", query_string={"latest_in_repository": "True"})
    assert len(expect(everywhere, 200).get_json()) == 1
    permissions = api(registry, "GET", "/users/current/permissions",
                      query_string={"scope": f"/project/{project_id}", "relative": "True"})  # fmt: skip
    assert all(not p["resource"].startswith("/") for p in expect(permissions, 200).get_json())


def test_a_boolean_query_value_that_is_no_boolean_is_a_400_naming_it(registry):
    entry = harbor_error(api(registry, "GET", "/projects", query_string={"public": "maybe"}), 400, "BAD_REQUEST")
    assert "public" in entry["message"]


# 2. Timestamps.


def test_quota_times_are_rfc3339_strings(registry):
    _, project_id = create_project(registry)
    quotas = expect(api(registry, "GET", "/quotas", query_string={
        "reference": "project", "reference_id": str(project_id)}), 200).get_json()  # fmt: skip
    one = expect(api(registry, "GET", f"/quotas/{quotas[0]['id']}"), 200).get_json()
    for quota in (quotas[0], one):
        assert RFC3339.match(quota["creation_time"]) and RFC3339.match(quota["update_time"]), quota


# 3. Omitted vs empty.


def test_users_without_a_comment_omit_it(registry):
    name, password = create_user(registry)
    current = expect(api(registry, "GET", "/users/current", auth=(name, password)), 200).get_json()
    assert "comment" not in current, current
    by_id = expect(api(registry, "GET", f"/users/{current['user_id']}"), 200).get_json()
    assert "comment" not in by_id, by_id
    assert by_id["sysadmin_flag"] is False and by_id["admin_role_in_auth"] is False  # x-omitempty: false


# 4. Error texts.


def test_non_admin_project_create_under_adminonly_has_harbor_text(registry):
    expect(api(registry, "PUT", "/configurations", json={"project_creation_restriction": "adminonly"}), 200)
    user = create_user(registry)
    response = api(registry, "POST", "/projects", auth=user, json={"project_name": unique("p"), "metadata": {}})
    assert response.get_json() == {"errors": [{"code": "FORBIDDEN", "message": "Only system admin can create project"}]}


def _immutable_rule(registry: Registry, project: str) -> None:
    rule = {"disabled": False, "action": "immutable", "template": "immutable_template",
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v1"}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                "pattern": "**"}]}}  # fmt: skip
    expect(api(registry, "POST", f"/projects/{project}/immutabletagrules", json=rule), 201)


def test_immutable_tag_delete_and_overwrite_have_harbor_texts(registry):
    project, _ = create_project(registry)
    source, _ = create_project(registry)
    repo = f"{project}/app"
    digest = registry.push_manifest(repo, "v1", small_image(registry, repo, "one"), OCI_MANIFEST)
    other = registry.push_manifest(f"{source}/app", "v9", small_image(registry, f"{source}/app", "two"), OCI_MANIFEST)
    _immutable_rule(registry, project)
    base = f"/projects/{project}/repositories/app/artifacts"
    deleted = harbor_error(api(registry, "DELETE", f"{base}/v1/tags/v1"), 412, "PRECONDITION")
    assert deleted["message"].endswith("configured as immutable, cannot be deleted"), deleted
    deleted = harbor_error(api(registry, "DELETE", f"{base}/{digest}"), 412, "PRECONDITION")
    assert deleted["message"] == "the tag v1 configured as immutable, cannot be deleted"
    deleted = harbor_error(api(registry, "DELETE", f"/projects/{project}/repositories/app"), 412, "PRECONDITION")
    assert "configured as immutable, cannot be deleted" in deleted["message"]
    copied = api(registry, "POST", base, query_string={"from": f"{source}/app:v9"})
    assert expect(copied, 201)  # a new tag name: allowed
    copied = api(registry, "POST", base, query_string={"from": f"{source}/app@{other}"})
    expect(copied, 201)  # by digest, no tag moves
    expect(api(registry, "POST", f"{base}/{other}/tags", json={"name": "v2"}), 201)
    moved = registry.put_manifest(repo, "v1", registry.get(f"/v2/{source}/app/manifests/v9").get_data(), OCI_MANIFEST)
    assert "configured as immutable" in moved.get_json()["errors"][0]["message"]


def test_immutable_tag_moved_by_copy_has_harbor_update_text(registry):
    project, _ = create_project(registry)
    source, _ = create_project(registry)
    repo = f"{project}/app"
    registry.push_manifest(repo, "v1", small_image(registry, repo, "one"), OCI_MANIFEST)
    registry.push_manifest(f"{source}/app", "v1", small_image(registry, f"{source}/app", "two"), OCI_MANIFEST)
    _immutable_rule(registry, project)
    base = f"/projects/{project}/repositories/app/artifacts"
    entry = harbor_error(api(registry, "POST", base, query_string={"from": f"{source}/app:v1"}), 412, "PRECONDITION")
    assert entry["message"] == "the tag v1 configured as immutable, cannot be updated"


def test_robot_pushing_outside_its_rights_gets_harbor_401(registry):
    own, _ = create_project(registry)
    other, _ = create_project(registry)
    login = robot(registry, "system", [{"kind": "project", "namespace": own, "access": [
        {"resource": "repository", "action": "push"}, {"resource": "repository", "action": "pull"}]}])  # fmt: skip
    token = registry.get("/service/token", auth=login, query_string={
        "service": "harbor-registry", "scope": f"repository:{other}/app:pull,push"}).get_json()["token"]  # fmt: skip
    response = registry.post(f"/v2/{other}/app/blobs/uploads/", auth=None, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    entry = response.get_json()["errors"][0]
    assert entry["code"] == "UNAUTHORIZED"
    assert entry["message"] == f"unauthorized to access repository: {other}/app, action: push"
    basic = registry.post(f"/v2/{other}/app/blobs/uploads/", auth=login)
    assert basic.status_code == 401, basic.get_data()[:300]
    assert basic.get_json()["errors"][0]["message"] == f"unauthorized to access repository: {other}/app, action: push"


# 5. 403 versus 404.


def test_system_robot_without_tag_create_gets_403_not_404(registry):
    project, _ = create_project(registry)
    repo = f"{project}/app"
    digest = registry.push_manifest(repo, "v1", small_image(registry, repo, "tags"), OCI_MANIFEST)
    login = robot(registry, "system", [{"kind": "project", "namespace": project, "access": [
        {"resource": "repository", "action": "pull"}, {"resource": "artifact", "action": "read"}]}])  # fmt: skip
    path = f"/projects/{project}/repositories/app/artifacts/{digest}/tags"
    harbor_error(api(registry, "POST", path, auth=login, json={"name": "v2"}), 403, "FORBIDDEN")
    stranger = create_user(registry)  # no right at all in the private project: not disclosed
    harbor_error(api(registry, "POST", path, auth=stranger, json={"name": "v2"}), 404, "NOT_FOUND")


# 6. Quota sorting.


def test_quotas_sort_by_used_and_hard_storage(registry):
    small, small_id = create_project(registry)
    big, big_id = create_project(registry)
    _, limited_id = create_project(registry)
    expect(api(registry, "PUT", f"/quotas/{limited_id}", json={"hard": {"storage": 10_000_000}}), 200)
    for name, size in ((small, 10), (big, 5000)):
        registry.push_blob(f"{name}/app", b"x" * size)

    def order(sort: str) -> list[int]:
        listed = expect(api(registry, "GET", "/quotas", query_string={"sort": sort, "page_size": "100"}), 200)
        mine = {small_id, big_id, limited_id}
        return [q["ref"]["id"] for q in listed.get_json() if q["ref"]["id"] in mine]

    assert order("used.storage") == [limited_id, small_id, big_id]
    assert order("-used.storage") == [big_id, small_id, limited_id]
    assert order("hard.storage")[0] == limited_id  # -1 (unlimited) sorts as the largest
    assert order("-hard.storage")[-1] == limited_id
    harbor_error(api(registry, "GET", "/quotas", query_string={"sort": "used.count"}), 400, "BAD_REQUEST")
