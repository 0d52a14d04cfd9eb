"""What a token request costs in DynamoDB calls, and that the cheaper read decides exactly as before.

A token for many repositories reads the caller's row (one GetItem: the password or secret hash,
read on every request so a changed password or a disabled account takes effect at once) and then
every project named by the scopes with the caller's membership in each, in one BatchGetItem. The
membership is read on every token request, so a removed member or a changed role is refused by
the very next token (tokens already issued stay valid until they expire).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.helpers import dynamodb_calls
from tests.functional.identity.identity_support import (
    PASSWORD,
    ROLE_IDS,
    actions_in,
    expect_status,
)


@pytest.fixture(scope="module")
def world(harbor) -> dict[str, Any]:
    """A user who develops in one private project, is a guest in another, and is no member of a
    third (public) or a fourth (private) project."""
    user, _ = harbor.create_user()
    dev, _ = harbor.create_project()
    guest, _ = harbor.create_project()
    public, _ = harbor.create_project(public=True)
    private, _ = harbor.create_project()
    members = {
        "dev": harbor.add_member(dev, user, ROLE_IDS["developer"]),
        "guest": harbor.add_member(guest, user, ROLE_IDS["guest"]),
    }
    return {"user": user, "dev": dev, "guest": guest, "public": public, "private": private, "members": members}


def _scopes(world: dict[str, Any]) -> list[str]:
    return [
        f"repository:{world['dev']}/app:pull,push",
        f"repository:{world['dev']}/tools:pull,push",
        f"repository:{world['guest']}/app:pull,push",
        f"repository:{world['public']}/app:pull,push",
        f"repository:{world['private']}/app:pull,push",
        f"repository:no-such-project-{world['dev']}/app:pull",
    ]


def test_a_token_with_cached_credentials_costs_two_calls(harbor, world):
    auth = (world["user"], PASSWORD)
    harbor.token(_scopes(world), auth=auth)  # verifies the password once (argon2), then it is cached
    with dynamodb_calls() as calls:
        token = harbor.token(_scopes(world), auth=auth)
    assert sorted(calls) == ["BatchGetItem", "GetItem"], calls
    assert actions_in(token, f"{world['dev']}/app") == {"pull", "push"}
    assert actions_in(token, f"{world['dev']}/tools") == {"pull", "push"}
    assert actions_in(token, f"{world['guest']}/app") == {"pull"}
    assert actions_in(token, f"{world['public']}/app") == {"pull"}
    assert actions_in(token, f"{world['private']}/app") == set()
    assert actions_in(token, f"no-such-project-{world['dev']}/app") == set()


def test_a_robot_token_costs_two_calls(harbor, world):
    robot = harbor.project_robot(world["dev"], [{"resource": "repository", "action": "pull"}])
    auth = (robot["name"], robot["secret"])
    scopes = [f"repository:{world['dev']}/app:pull,push", f"repository:{world['private']}/app:pull"]
    harbor.token(scopes, auth=auth)
    with dynamodb_calls() as calls:
        token = harbor.token(scopes, auth=auth)
    assert sorted(calls) == ["BatchGetItem", "GetItem"], calls
    assert actions_in(token, f"{world['dev']}/app") == {"pull"}
    assert actions_in(token, f"{world['private']}/app") == set()


def test_a_changed_role_and_a_removed_member_take_effect_on_the_next_token(harbor):
    user, _ = harbor.create_user()
    project, _ = harbor.create_project()
    other, _ = harbor.create_project()
    member = harbor.add_member(project, user, ROLE_IDS["developer"])
    harbor.add_member(other, user, ROLE_IDS["developer"])
    auth = (user, PASSWORD)
    scopes = [f"repository:{project}/app:pull,push", f"repository:{other}/app:pull,push"]
    token = harbor.token(scopes, auth=auth)  # the credentials are now in the cache
    assert actions_in(token, f"{project}/app") == {"pull", "push"}

    expect_status(harbor.put(f"projects/{project}/members/{member}", json_body={"role_id": ROLE_IDS["guest"]}), 200)
    token = harbor.token(scopes, auth=auth)
    assert actions_in(token, f"{project}/app") == {"pull"}
    assert actions_in(token, f"{other}/app") == {"pull", "push"}

    expect_status(harbor.delete(f"projects/{project}/members/{member}"), 200)
    token = harbor.token(scopes, auth=auth)
    assert actions_in(token, f"{project}/app") == set()
    assert actions_in(token, f"{other}/app") == {"pull", "push"}


def test_a_changed_password_is_refused_at_once_despite_the_cache(harbor):
    user, user_id = harbor.create_user()
    project, _ = harbor.create_project()
    harbor.add_member(project, user, ROLE_IDS["developer"])
    scopes = [f"repository:{project}/app:pull"]
    harbor.token(scopes, auth=(user, PASSWORD))
    new_password = "Changed-Pass2"
    response = harbor.put(
        f"users/{user_id}/password", json_body={"old_password": PASSWORD, "new_password": new_password}
    )
    expect_status(response, 200)
    assert harbor.token_response(scopes, auth=(user, PASSWORD)).status_code == 401
    assert "pull" in actions_in(harbor.token(scopes, auth=(user, new_password)), f"{project}/app")
