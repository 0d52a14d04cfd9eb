"""The permission matrix, enforced the same on /v2 (Basic and bearer tokens) and on /api/v2.0.

Callers: the five project roles, a logged-in non-member, anonymous, and a system administrator
(a normal user given the sysadmin flag). The project is private and holds `app:v1`.
Roles follow Harbor's `rbac_role.go`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.functional.identity.identity_support import (
    PASSWORD,
    ROLE_IDS,
    SERVICE,
    Auth,
    actions_in,
    claims_of,
    expect_error,
    expect_status,
    unique,
)
from tests.functional.identity.identity_support import (
    digest_of as digest_of_bytes,
)

ROLES = ("projectAdmin", "maintainer", "developer", "guest", "limitedGuest")
CALLERS = (*ROLES, "nonMember", "anonymous", "sysadmin")

PULLERS = {"projectAdmin", "maintainer", "developer", "guest", "limitedGuest", "sysadmin"}
PUSHERS = {"projectAdmin", "maintainer", "developer", "sysadmin"}
DELETERS = {"projectAdmin", "maintainer", "sysadmin"}
# What a token for `repository:<p>/app:pull,push` must carry for each caller (Harbor's repository
# filter grants what the caller can do; scanner-pull belongs to the scanner robot only).
TOKEN_ACTIONS = {
    "projectAdmin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "guest": {"pull"},
    "limitedGuest": {"pull"},
    "nonMember": set(),
    "anonymous": set(),
    "sysadmin": {"pull", "push", "delete"},
}
# API operations: the callers allowed, and what the others get.
MEMBER_READERS = {"projectAdmin", "maintainer", "developer", "guest", "sysadmin"}
PROJECT_MANAGERS = {"projectAdmin", "sysadmin"}


@dataclass
class World:
    project: str
    project_id: int
    digest: str
    auth: dict[str, Auth]

    @property
    def repo(self) -> str:
        return f"{self.project}/app"


@pytest.fixture(scope="module")
def world(harbor) -> World:
    project, project_id = harbor.create_project(public=False)
    digest, _ = harbor.push_image(f"{project}/app", "v1")
    auth: dict[str, Auth] = {"anonymous": None}
    for role in ROLES:
        username, _ = harbor.create_user(unique(role.lower()))
        harbor.add_member(project, username, ROLE_IDS[role])
        auth[role] = (username, PASSWORD)
    auth["nonMember"] = (harbor.create_user(unique("stranger"))[0], PASSWORD)
    admin_name, admin_id = harbor.create_user(unique("sysadm"))
    expect_status(harbor.put(f"users/{admin_id}/sysadmin", json_body={"sysadmin_flag": True}), 200)
    auth["sysadmin"] = (admin_name, PASSWORD)
    return World(project, project_id, digest, auth)


def _refused_on_v2(response: Any, caller: str) -> None:
    """Anonymous gets a 401 challenge; a logged-in caller without the right gets Harbor's 401
    "unauthorized to access repository"."""
    if caller == "anonymous":
        expect_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer realm="), response.headers
    else:
        expect_error(response, 401, "UNAUTHORIZED")


def _refused_on_api(response: Any, caller: str) -> None:
    """Anonymous 401; a non-member does not see the private project (404); a member without the right 403."""
    if caller == "anonymous":
        expect_error(response, 401, "UNAUTHORIZED")
    elif caller == "nonMember":
        expect_error(response, 404, "NOT_FOUND")
    else:
        expect_error(response, 403, "FORBIDDEN")


# ------------------------------------------------------------------------------- /v2 with Basic


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_pull(harbor, world, caller):
    response = harbor.pull(world.repo, "v1", auth=world.auth[caller])
    if caller in PULLERS:
        expect_status(response, 200)
        assert response.headers["Docker-Content-Digest"] == world.digest
        expect_status(harbor.pull(world.repo, world.digest, auth=world.auth[caller]), 200)
    else:
        _refused_on_v2(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_tags_list(harbor, world, caller):
    response = harbor.get(f"/v2/{world.repo}/tags/list", auth=world.auth[caller])
    if caller in PULLERS:
        assert expect_status(response, 200).get_json() == {"name": world.repo, "tags": ["v1"]}
    else:
        _refused_on_v2(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_push(harbor, world, caller):
    repo = f"{world.project}/push-{caller.lower()}"
    auth = world.auth[caller]
    if caller in PUSHERS:
        digest, _ = harbor.push_image(repo, "v1", auth=auth)
        expect_status(harbor.pull(repo, "v1"), 200)
        assert harbor.pull(repo, "v1").headers["Docker-Content-Digest"] == digest
        return
    _refused_on_v2(harbor.start_upload(repo, auth=auth), caller)
    # The manifest PUT is refused too (even with blobs already in place).
    config, layer, manifest = harbor.image()
    harbor.push_blob(repo, config)
    harbor.push_blob(repo, layer)
    _refused_on_v2(harbor.put_manifest(repo, "v1", manifest, auth=auth), caller)
    expect_error(harbor.pull(repo, "v1"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_delete_manifest(harbor, world, caller):
    auth = world.auth[caller]
    if caller in DELETERS:
        repo = f"{world.project}/del-{caller.lower()}"
        digest, _ = harbor.push_image(repo, "v1")
        expect_status(harbor.delete(f"/v2/{repo}/manifests/{digest}", auth=auth), 202)
        expect_error(harbor.pull(repo, digest), 404, "MANIFEST_UNKNOWN")
        return
    _refused_on_v2(harbor.delete(f"/v2/{world.repo}/manifests/{world.digest}", auth=auth), caller)
    expect_status(harbor.pull(world.repo, world.digest), 200)


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_catalog(harbor, world, caller):
    response = harbor.get("/v2/_catalog", auth=world.auth[caller])
    if caller == "sysadmin":
        assert world.repo in expect_status(response, 200).get_json()["repositories"]
    else:
        expect_error(response, (401, 403), ("UNAUTHORIZED", "DENIED"))


def test_basic_push_to_a_missing_project_names_it(harbor, world):
    repo = f"{unique('missing')}/app"
    expect_error(harbor.start_upload(repo, auth=world.auth["sysadmin"]), 404, "NAME_UNKNOWN")
    expect_error(harbor.start_upload(repo, auth=world.auth["developer"]), 404, "NAME_UNKNOWN")


# --------------------------------------------------------------------------------- token flow


@pytest.mark.parametrize("caller", CALLERS)
def test_token_grants_exactly_what_the_role_allows(harbor, world, caller):
    token = harbor.token([f"repository:{world.repo}:pull,push"], auth=world.auth[caller])
    assert actions_in(token, world.repo) == TOKEN_ACTIONS[caller], claims_of(token)["access"]
    subject = claims_of(token)["sub"]
    assert subject == ("" if caller == "anonymous" else world.auth[caller][0])


@pytest.mark.parametrize("caller", CALLERS)
def test_bearer_pull_push_delete_and_tags(harbor, world, caller):
    repo = world.repo
    token = harbor.token([f"repository:{repo}:pull,push,delete"], auth=world.auth[caller])
    granted = actions_in(token, repo)

    pull = harbor.pull(repo, "v1", auth=token)
    tags = harbor.get(f"/v2/{repo}/tags/list", auth=token)
    if "pull" in granted:
        expect_status(pull, 200)
        expect_status(tags, 200)
    else:
        for response in (pull, tags):
            expect_error(response, (401, 404), ("UNAUTHORIZED", "NAME_UNKNOWN"))
        expect_error(pull, 401, "UNAUTHORIZED")
        assert 'scope="repository:' in pull.headers["WWW-Authenticate"]

    upload = harbor.start_upload(repo, auth=token)
    if "push" in granted:
        expect_status(upload, 202)
    else:
        expect_error(upload, 401, "UNAUTHORIZED")
        challenge = upload.headers["WWW-Authenticate"]
        assert f'scope="repository:{repo}:pull,push"' in challenge, challenge

    if "delete" in granted:
        victim = f"{world.project}/bearer-del-{caller.lower()}"
        digest, _ = harbor.push_image(victim, "v1")
        victim_token = harbor.token([f"repository:{victim}:delete"], auth=world.auth[caller])
        expect_status(harbor.delete(f"/v2/{victim}/manifests/{digest}", auth=victim_token), 202)
    else:
        expect_error(harbor.delete(f"/v2/{repo}/manifests/{world.digest}", auth=token), 401, "UNAUTHORIZED")
        expect_status(harbor.pull(repo, world.digest), 200)


def test_a_token_for_one_repository_does_not_open_another(harbor, world):
    token = harbor.token([f"repository:{world.repo}:pull,push"], auth=world.auth["projectAdmin"])
    other = f"{world.project}/elsewhere"
    expect_error(harbor.start_upload(other, auth=token), 401, "UNAUTHORIZED")
    expect_error(harbor.pull(world.repo.replace("/app", "/other"), "v1", auth=token), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("caller", CALLERS)
def test_catalog_token(harbor, world, caller):
    token = harbor.token(["registry:catalog:*"], auth=world.auth[caller])
    granted = actions_in(token, "catalog", "registry")
    response = harbor.get("/v2/_catalog", auth=token)
    if caller == "sysadmin":
        assert granted == {"*"}
        assert world.repo in expect_status(response, 200).get_json()["repositories"]
    else:
        assert granted == set()
        expect_error(response, (401, 403), ("UNAUTHORIZED", "DENIED"))


# ------------------------------------------------------------------------- anonymous and public


def test_anonymous_on_public_and_private_projects(harbor, world):
    public, _ = harbor.create_project(public=True)
    repo = f"{public}/app"
    digest, _ = harbor.push_image(repo, "v1")

    # Public: anonymous pull works, directly and with a token holding exactly `pull`.
    expect_status(harbor.pull(repo, "v1", auth=None), 200)
    token = harbor.token([f"repository:{repo}:pull,push"], auth=None)
    assert actions_in(token, repo) == {"pull"}
    expect_status(harbor.pull(repo, digest, auth=token), 200)
    # ... but anonymous push is refused: 401 with a challenge asking for push.
    response = harbor.start_upload(repo, auth=None)
    expect_error(response, 401, "UNAUTHORIZED")
    assert f'scope="repository:{repo}:pull,push"' in response.headers["WWW-Authenticate"]
    expect_error(harbor.start_upload(repo, auth=token), 401, "UNAUTHORIZED")

    # Private: anonymous pull is a 401 with the full Bearer challenge.
    response = harbor.pull(world.repo, "v1", auth=None)
    expect_error(response, 401, "UNAUTHORIZED")
    challenge = response.headers["WWW-Authenticate"]
    assert re.fullmatch(
        rf'Bearer realm="https?://[^"]+/service/token",service="{SERVICE}",scope="repository:{world.repo}:pull"',
        challenge,
    ), challenge
    assert response.headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    # The anonymous token for a private repository is issued, but empty.
    token = harbor.token([f"repository:{world.repo}:pull"], auth=None)
    assert actions_in(token, world.repo) == set()
    expect_error(harbor.pull(world.repo, "v1", auth=token), 401, "UNAUTHORIZED")


def test_logged_in_non_member_may_pull_a_public_project_but_not_push(harbor, world):
    public, _ = harbor.create_project(public=True)
    repo = f"{public}/app"
    harbor.push_image(repo, "v1")
    stranger = world.auth["nonMember"]
    expect_status(harbor.pull(repo, "v1", auth=stranger), 200)
    expect_error(harbor.start_upload(repo, auth=stranger), 401, "UNAUTHORIZED")
    token = harbor.token([f"repository:{repo}:pull,push"], auth=stranger)
    assert actions_in(token, repo) == {"pull"}


def test_guest_push_is_refused_both_ways(harbor, world):
    guest = world.auth["guest"]
    expect_error(harbor.upload_blob(world.repo, b"guest data", auth=guest), 401, "UNAUTHORIZED")
    token = harbor.token([f"repository:{world.repo}:push"], auth=guest)
    assert "push" not in actions_in(token, world.repo)
    expect_error(harbor.upload_blob(world.repo, b"guest data", auth=token), 401, "UNAUTHORIZED")


def test_v2_root_needs_credentials(harbor, world):
    response = harbor.get("/v2/", auth=None)
    expect_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="')
    for caller in ("guest", "nonMember", "sysadmin"):
        expect_status(harbor.get("/v2/", auth=world.auth[caller]), 200)
    token = harbor.token([], auth=world.auth["nonMember"])
    expect_status(harbor.get("/v2/", auth=token), 200)


# ------------------------------------------------------------------------------------- the API


@pytest.mark.parametrize("caller", CALLERS)
def test_api_members_list(harbor, world, caller):
    response = harbor.get(f"projects/{world.project}/members", auth=world.auth[caller])
    if caller in MEMBER_READERS:
        names = {m["entity_name"] for m in expect_status(response, 200).get_json()}
        assert {world.auth[r][0] for r in ROLES} <= names
    else:
        _refused_on_api(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_api_members_add(harbor, world, caller):
    target, _ = harbor.create_user(unique("target")) if caller in PROJECT_MANAGERS else (world.auth["nonMember"][0], 0)
    response = harbor.post(
        f"projects/{world.project}/members",
        auth=world.auth[caller],
        json_body={"role_id": 3, "member_user": {"username": target}},
    )
    if caller in PROJECT_MANAGERS:
        expect_status(response, 201)
    else:
        _refused_on_api(response, caller)
        listed = expect_status(harbor.get(f"projects/{world.project}/members", query={"entityname": target}), 200)
        assert listed.get_json() == []


@pytest.mark.parametrize("caller", CALLERS)
def test_api_robot_create(harbor, world, caller):
    body = {
        "name": unique("bot"),
        "level": "project",
        "duration": -1,
        "permissions": [
            {"kind": "project", "namespace": world.project, "access": [{"resource": "repository", "action": "pull"}]}
        ],
    }
    response = harbor.post("robots", json_body=body, auth=world.auth[caller])
    if caller in PROJECT_MANAGERS:
        expect_status(response, 201)
        assert response.get_json()["name"] == f"robot${world.project}+{body['name']}"
    else:
        _refused_on_api(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_api_project_metadata_update(harbor, world, caller):
    response = harbor.put(
        f"projects/{world.project_id}", auth=world.auth[caller], json_body={"metadata": {"auto_scan": "true"}}
    )
    if caller in PROJECT_MANAGERS:
        expect_status(response, 200)
    else:
        _refused_on_api(response, caller)
    # The project stays private whatever happened.
    assert expect_status(harbor.get(f"projects/{world.project_id}"), 200).get_json()["metadata"]["public"] == "false"


@pytest.mark.parametrize("caller", CALLERS)
def test_api_project_delete(harbor, world, caller):
    response = harbor.delete(f"projects/{world.project_id}", auth=world.auth[caller])
    if caller in PROJECT_MANAGERS:
        expect_error(response, 412, "PRECONDITION")  # allowed, but the project still holds repositories
    else:
        _refused_on_api(response, caller)
    expect_status(harbor.get(f"projects/{world.project_id}"), 200)


@pytest.mark.parametrize("caller", CALLERS)
def test_api_empty_project_delete(harbor, world, caller):
    name, project_id = harbor.create_project()
    if caller in ROLES:
        harbor.add_member(name, world.auth[caller][0], ROLE_IDS[caller])
    response = harbor.delete(f"projects/{project_id}", auth=world.auth[caller])
    if caller in PROJECT_MANAGERS:
        expect_status(response, 200)
        expect_error(harbor.get(f"projects/{project_id}"), 404, "NOT_FOUND")
    else:
        _refused_on_api(response, caller)
        expect_status(harbor.get(f"projects/{project_id}"), 200)


@pytest.mark.parametrize("caller", CALLERS)
def test_api_project_read(harbor, world, caller):
    response = harbor.get(f"projects/{world.project}", auth=world.auth[caller])
    if caller in PULLERS:
        project = expect_status(response, 200).get_json()
        expected_roles = [ROLE_IDS[caller]] if caller in ROLES else []
        assert project.get("current_user_role_ids", []) == expected_roles  # Harbor omits an empty list
    else:
        _refused_on_api(response, caller)


def test_cross_repository_mount_needs_pull_on_the_source(harbor, world):
    """A developer of one project cannot mount a blob out of a private project they cannot read."""
    secret_project, _ = harbor.create_project(public=False)
    secret = b"secret layer " + bytes(range(50))
    harbor.push_blob(f"{secret_project}/vault", secret)
    developer = world.auth["developer"]
    target = f"{world.project}/mounted"
    query = {"mount": digest_of_bytes(secret), "from": f"{secret_project}/vault"}
    response = harbor.post(f"/v2/{target}/blobs/uploads/", auth=developer, query=query)
    assert response.status_code == 202, (response.status_code, response.get_data()[:300])  # a plain session
    assert harbor.head(f"/v2/{target}/blobs/{digest_of_bytes(secret)}").status_code == 404
    # From a repository they can read, the mount works.
    readable = b"readable layer " + bytes(range(40))
    harbor.push_blob(world.repo, readable)
    query = {"mount": digest_of_bytes(readable), "from": world.repo}
    expect_status(harbor.post(f"/v2/{target}/blobs/uploads/", auth=developer, query=query), 201)
    assert harbor.head(f"/v2/{target}/blobs/{digest_of_bytes(readable)}").status_code == 200
    # With a token, the token's grants decide: pull on the target only is not enough.
    token = harbor.token([f"repository:{target}:pull,push"], auth=world.auth["sysadmin"])
    query = {"mount": digest_of_bytes(secret), "from": f"{secret_project}/vault"}
    assert harbor.post(f"/v2/{target}/blobs/uploads/", auth=token, query=query).status_code == 202
