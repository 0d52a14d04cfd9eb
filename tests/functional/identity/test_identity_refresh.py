"""Refresh tokens are revocable and end: bound to the account's id and token version, capped in
lifetime, and only ever issued for the configured service."""

from __future__ import annotations

from typing import Any

from tests.functional.identity.identity_support import (
    PASSWORD,
    SERVICE,
    claims_of,
    expect_error,
    expect_status,
    unique,
)

DAY = 86_400
NEW_PASSWORD = "Changed-Pass2"


def _offline_login(harbor, username: str, password: str, repo: str = "library/none") -> dict[str, Any]:
    form = {
        "grant_type": "password",
        "client_id": "docker",
        "username": username,
        "password": password,
        "service": SERVICE,
        "scope": f"repository:{repo}:pull",
        "access_type": "offline",
    }
    return expect_status(harbor.oauth(form), 200).get_json()


def _refresh(harbor, token: str, service: str = SERVICE) -> Any:
    form = {"grant_type": "refresh_token", "client_id": "docker", "refresh_token": token, "service": service}
    return harbor.oauth({**form, "scope": "repository:library/none:pull"})


def _robot_refresh_token(harbor, robot: dict[str, Any]) -> str:
    response = harbor.token_response(["repository:library/none:pull"], auth=(robot["name"], robot["secret"]),
                                     offline_token="true")  # fmt: skip
    return str(expect_status(response, 200).get_json()["refresh_token"])


def test_a_password_change_revokes_refresh_tokens(harbor):
    user, user_id = harbor.create_user()
    refresh = _offline_login(harbor, user, PASSWORD)["refresh_token"]
    expect_status(_refresh(harbor, refresh), 200)
    body = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    expect_status(harbor.put(f"users/{user_id}/password", json_body=body, auth=(user, PASSWORD)), 200)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")
    # A token from the new password works.
    expect_status(_refresh(harbor, _offline_login(harbor, user, NEW_PASSWORD)["refresh_token"]), 200)


def test_a_deleted_users_refresh_token_does_not_open_a_new_user_of_the_same_name(harbor):
    name, user_id = harbor.create_user()
    refresh = _offline_login(harbor, name, PASSWORD)["refresh_token"]
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    harbor.create_user(name)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")


def test_a_refresh_does_not_extend_the_chain(harbor, clock):
    user, _ = harbor.create_user()
    first = _offline_login(harbor, user, PASSWORD)["refresh_token"]
    expires = claims_of(first)["exp"]
    clock(6 * DAY)
    renewed = expect_status(_refresh(harbor, first), 200).get_json()
    assert claims_of(renewed["refresh_token"])["exp"] <= expires
    clock(DAY + 60)
    expect_error(_refresh(harbor, renewed["refresh_token"]), 401, "UNAUTHORIZED")
    expect_error(_refresh(harbor, first), 401, "UNAUTHORIZED")


def test_only_the_configured_service_is_an_audience(harbor):
    """`service=harbor-registry#refresh` once gave an access token that worked as a refresh token."""
    user, _ = harbor.create_user()
    response = harbor.token_response(["repository:library/none:pull"], auth=(user, PASSWORD),
                                     service=f"{SERVICE}#refresh")  # fmt: skip
    expect_error(response, 400, "BAD_REQUEST")
    form = {"grant_type": "password", "client_id": "docker", "username": user, "password": PASSWORD,
            "service": f"{SERVICE}#refresh", "scope": "repository:library/none:pull"}  # fmt: skip
    if (answer := harbor.oauth(form)).status_code == 200:
        expect_error(_refresh(harbor, answer.get_json()["access_token"]), 401, "UNAUTHORIZED")
    else:
        expect_error(answer, 400, "BAD_REQUEST")
    refresh = _offline_login(harbor, user, PASSWORD)["refresh_token"]
    expect_error(_refresh(harbor, refresh, service=f"{SERVICE}#refresh"), 400, "BAD_REQUEST")
    expect_error(_refresh(harbor, refresh, service="another-registry"), 400, "BAD_REQUEST")
    # No service at all means the configured one.
    expect_status(_refresh(harbor, refresh, service=""), 200)


def test_disabling_a_robot_revokes_its_refresh_tokens_for_good(harbor):
    robot = harbor.project_robot("library", [{"resource": "repository", "action": "pull"}])
    refresh = _robot_refresh_token(harbor, robot)
    expect_status(_refresh(harbor, refresh), 200)
    current = expect_status(harbor.get(f"robots/{robot['id']}"), 200).get_json()
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={**current, "disable": True}), 200)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")
    expect_status(harbor.put(f"robots/{robot['id']}", json_body={**current, "disable": False}), 200)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")
    # Its secret still signs it in, and a new refresh token works.
    expect_status(_refresh(harbor, _robot_refresh_token(harbor, robot)), 200)


def test_a_robot_secret_refresh_revokes_its_refresh_tokens(harbor):
    robot = harbor.project_robot("library", [{"resource": "repository", "action": "pull"}])
    refresh = _robot_refresh_token(harbor, robot)
    expect_status(harbor.patch(f"robots/{robot['id']}", json_body={}), 200)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")


def test_a_deleted_robots_refresh_token_does_not_open_a_new_robot_of_the_same_name(harbor):
    short = unique("again")
    access = [{"resource": "repository", "action": "pull"}]
    robot = harbor.project_robot("library", access, name=short)
    refresh = _robot_refresh_token(harbor, robot)
    expect_status(harbor.delete(f"robots/{robot['id']}"), 200)
    harbor.project_robot("library", access, name=short)
    expect_error(_refresh(harbor, refresh), 401, "UNAUTHORIZED")


def test_refresh_token_errors_say_nothing_about_why(harbor):
    user, user_id = harbor.create_user()
    refresh = _offline_login(harbor, user, PASSWORD)["refresh_token"]
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    messages = {
        expect_error(_refresh(harbor, token), 401, "UNAUTHORIZED")["message"]
        for token in (refresh, refresh[:-4] + "AAAA", "garbage")
    }
    assert messages == {"invalid refresh token"}
