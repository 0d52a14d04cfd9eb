"""/service/token (GET and the OAuth2 POST form) and bearer-token verification on /v2.

The suite configures the app's signing key (REGISTRY_TOKEN_KEY_FILE), so tests can forge tokens:
a correctly signed forged token is accepted (which proves the forging is right), and every
defect (expiry, nbf, audience, issuer, algorithm, key) is then a 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.functional.identity.identity_support import (
    ADMIN,
    ISSUER,
    PASSWORD,
    SERVICE,
    actions_in,
    claims_of,
    expect_error,
    expect_status,
    header_of,
)


def libtrust_kid(public_key: rsa.RSAPublicKey) -> str:
    """docker/libtrust key id: base32(sha256(SPKI DER)[:30]) in 12 groups of 4, joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


@pytest.fixture(scope="module")
def repo(harbor) -> str:
    project, _ = harbor.create_project(public=False)
    harbor.push_image(f"{project}/app", "v1")
    return f"{project}/app"


@pytest.fixture
def forge(signing_key):
    """Sign arbitrary claims with the app's key (or another), defaults being a valid admin token."""

    def make(
        repository: str,
        *,
        key: Any = None,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "admin",
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now,
            "iat": now,
            "jti": "forged-jti-0123456789",
            "access": [{"type": "repository", "name": repository, "actions": ["pull", "push"]}],
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        all_headers = {"kid": libtrust_kid(signing_key.public_key()), **(headers or {})}
        return jwt.encode(claims, key if key is not None else signing_key, algorithm=algorithm, headers=all_headers)

    return make


def test_token_response_claims_and_header(harbor, repo, signing_key):
    before = int(time.time())
    response = expect_status(harbor.token_response([f"repository:{repo}:pull,push"]), 200)
    body = response.get_json()
    assert set(body) >= {"token", "expires_in", "issued_at"}
    assert body["expires_in"] == 1800  # token_expiration defaults to 30 minutes
    issued = datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert issued.year >= 2024

    token = body["token"]
    header = header_of(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == libtrust_kid(signing_key.public_key())
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"]), header["kid"]
    # The signature verifies with the configured key, for the registry audience and issuer.
    claims = jwt.decode(token, signing_key.public_key(), algorithms=["RS256"], audience=SERVICE, issuer=ISSUER)
    assert claims["sub"] == "admin"
    for name in ("exp", "nbf", "iat"):
        assert isinstance(claims[name], int), name
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert claims["nbf"] <= claims["iat"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert [(a["type"], a["name"]) for a in claims["access"]] == [("repository", repo)]
    assert {"pull", "push", "delete"} <= set(claims["access"][0]["actions"])  # exact sets: test_identity_matrix
    # Every token gets its own jti.
    assert claims_of(harbor.token([f"repository:{repo}:pull"]))["jti"] != claims["jti"]


def test_the_token_works_on_v2(harbor, repo):
    token = harbor.token([f"repository:{repo}:pull"])
    expect_status(harbor.pull(repo, "v1", auth=token), 200)


def test_registry_tokens_are_refused_on_the_management_api(harbor, repo):
    """As in Harbor: a token's narrow /v2 grant must not become a full API login."""
    token = harbor.token([f"repository:{repo}:pull"])
    expect_error(harbor.get("users/current", auth=token), 401, "UNAUTHORIZED")
    expect_error(harbor.get("projects", auth=token), 401, "UNAUTHORIZED")


def test_several_scopes_in_one_token(harbor, repo):
    other = f"{repo.split('/')[0]}/other"
    token = harbor.token([f"repository:{repo}:pull", f"repository:{other}:push", "registry:catalog:*"])
    access = claims_of(token)["access"]
    assert [(a["type"], a["name"]) for a in access] == [
        ("repository", repo),
        ("repository", other),
        ("registry", "catalog"),
    ]
    assert "pull" in actions_in(token, repo) and "push" in actions_in(token, other)
    assert actions_in(token, "catalog", "registry") == {"*"}
    # The OAuth2 style: several scopes in one space-separated value.
    token = harbor.token([f"repository:{repo}:pull registry:catalog:*"])
    assert len(claims_of(token)["access"]) == 2


@pytest.mark.parametrize(
    ("scope", "type_", "name"),
    [
        ("repository:a/b:c:pull", "repository", "a/b:c"),
        ("repository:localhost:5000/library/app:pull,push", "repository", "localhost:5000/library/app"),
        ("repository(plugin):a/b:pull", "repository", "a/b"),
    ],
)
def test_scope_names_containing_colons_parse(harbor, scope, type_, name):
    """Type before the first ':', actions after the last, the name is all in between."""
    response = expect_status(harbor.token_response([scope]), 200)
    access = claims_of(response.get_json()["token"])["access"]
    assert [(a["type"], a["name"]) for a in access] == [(type_, name)]
    assert access[0]["actions"] == []  # no such project: nothing granted, and no error


def test_scope_name_with_colon_in_an_existing_project(harbor, repo):
    project = repo.split("/")[0]
    token = harbor.token([f"repository:{project}/app:tag:pull"])
    assert actions_in(token, f"{project}/app:tag") >= {"pull"}


def test_unknown_scope_types_and_malformed_scopes_grant_nothing(harbor):
    response = expect_status(harbor.token_response(["foo:bar:pull", "garbage", "repository::pull", ":x:y"]), 200)
    access = claims_of(response.get_json()["token"])["access"]
    assert all(entry["actions"] == [] for entry in access), access


def test_tampered_token_is_401(harbor, repo):
    token = harbor.token([f"repository:{repo}:pull"])
    header, payload, signature = token.split(".")
    # Widen the grant by rewriting the payload, keeping the signature.
    claims = claims_of(token)
    claims["sub"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for bad in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}",
        f"{header}.{payload}.{signature[:-3]}{'A' if signature[-3] != 'A' else 'B'}{signature[-2:]}",
        f"{header}.{payload}.",
        f"{header}.{payload}",
        "not-a-jwt",
    ):
        response = harbor.pull(repo, "v1", auth=bad)
        expect_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


def test_token_for_another_service_is_refused_on_v2(harbor, repo, forge):
    response = harbor.token_response([f"repository:{repo}:pull"], service="other")
    if response.status_code == 200:
        token = response.get_json()["token"]
        assert claims_of(token)["aud"] == "other"
        expect_error(harbor.pull(repo, "v1", auth=token), 401, "UNAUTHORIZED")
    else:
        expect_error(response, 400, "BAD_REQUEST")
    expect_error(harbor.pull(repo, "v1", auth=forge(repo, aud="other")), 401, "UNAUTHORIZED")
    expect_error(harbor.pull(repo, "v1", auth=forge(repo, aud=["other", "another"])), 401, "UNAUTHORIZED")


def test_a_correctly_forged_token_is_accepted(harbor, repo, forge):
    """Sanity check of the forging fixture: the 401s below are then about the one defect each has."""
    expect_status(harbor.pull(repo, "v1", auth=forge(repo)), 200)
    expect_status(harbor.pull(repo, "v1", auth=forge(repo, aud=[SERVICE])), 200)


@pytest.mark.parametrize(
    "defect",
    [
        {"exp": int(time.time()) - 10},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600, "nbf": int(time.time()) - 10},
        {"iss": "someone-else"},
        {"exp": None},
        {"nbf": None},
        {"aud": None},
        {"jti": None},
        {"sub": None},
        {"access": "pull"},
        {"access": [{"type": "repository", "name": 5, "actions": ["pull"]}]},
        {"exp": "tomorrow"},
    ],
    ids=lambda d: ",".join(f"{k}={'missing' if v is None else 'bad'}" for k, v in d.items()),
)
def test_defective_claims_are_401(harbor, repo, forge, defect):
    expect_error(harbor.pull(repo, "v1", auth=forge(repo, **defect)), 401, "UNAUTHORIZED")


def test_token_signed_by_another_key_or_algorithm_is_401(harbor, repo, forge, signing_key):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    candidates = {
        "other key, our kid": forge(repo, key=other_key),
        "other key, its kid": forge(repo, key=other_key, headers={"kid": libtrust_kid(other_key.public_key())}),
        "no kid": jwt.encode(claims_of(forge(repo)), signing_key, algorithm="RS256"),
        "alg none": _unsigned(forge(repo)),
        "HS256 with the public key as secret": _hs256(forge(repo), public_pem),
        "PS256": forge(repo, algorithm="PS256"),
    }
    for label, token in candidates.items():
        response = harbor.pull(repo, "v1", auth=token)
        assert response.status_code == 401, (label, response.status_code, response.get_data()[:300])
        expect_error(response, 401, "UNAUTHORIZED")


def _unsigned(token: str) -> str:
    header = dict(header_of(token), alg="none")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    return f"{encoded}.{token.split('.')[1]}."


def _hs256(token: str, secret: bytes) -> str:
    import hmac

    header = dict(header_of(token), alg="HS256")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    signing_input = f"{encoded}.{token.split('.')[1]}".encode()
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).decode().rstrip("=")
    return f"{signing_input.decode()}.{signature}"


def test_real_token_expires_when_the_clock_moves(harbor, repo, clock):
    token = harbor.token([f"repository:{repo}:pull"])
    expect_status(harbor.pull(repo, "v1", auth=token), 200)
    clock(1780)  # 20 s of slack for a slow machine
    expect_status(harbor.pull(repo, "v1", auth=token), 200)
    clock(21)
    expect_error(harbor.pull(repo, "v1", auth=token), 401, "UNAUTHORIZED")


def test_token_expiration_setting(harbor, repo, clock):
    harbor.set_config(token_expiration=1)
    try:
        response = expect_status(harbor.token_response([f"repository:{repo}:pull"]), 200)
        body = response.get_json()
        assert body["expires_in"] == 60
        claims = claims_of(body["token"])
        assert claims["exp"] - claims["iat"] == 60
        expect_status(harbor.pull(repo, "v1", auth=body["token"]), 200)
        clock(61)
        expect_error(harbor.pull(repo, "v1", auth=body["token"]), 401, "UNAUTHORIZED")
    finally:
        harbor.set_config(token_expiration=30)


def test_token_issued_in_the_future_is_not_yet_valid(harbor, repo, clock):
    clock(600)
    token = harbor.token([f"repository:{repo}:pull"])  # nbf is 10 minutes ahead of real time
    clock(-600)
    expect_error(harbor.pull(repo, "v1", auth=token), 401, "UNAUTHORIZED")


def test_bad_credentials_on_the_token_service_are_401(harbor, repo):
    user, _ = harbor.create_user()
    for auth in ((user, "Wrong-Pass1"), ("nobody-here", PASSWORD), ("robot$nobody", PASSWORD)):
        expect_error(harbor.token_response([f"repository:{repo}:pull"], auth=auth), 401, "UNAUTHORIZED")
    for header in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest abc"):
        response = harbor.get(
            "/service/token",
            auth=None,
            headers={"Authorization": header},
            query={"service": SERVICE, "scope": f"repository:{repo}:pull"},
        )
        expect_error(response, 401, "UNAUTHORIZED")


def test_anonymous_token_for_a_private_repository_is_empty(harbor, repo):
    response = expect_status(harbor.token_response([f"repository:{repo}:pull,push"], auth=None), 200)
    claims = claims_of(response.get_json()["token"])
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": repo, "actions": []}]


def test_anonymous_token_without_scope_is_refused_like_harbor(harbor):
    """Harbor answers an anonymous token request with no scope (a `docker login` probe) with 401."""
    response = harbor.token_response([], auth=None)
    assert response.status_code == 401, (response.status_code, response.get_data()[:300])


def test_too_many_scopes_is_400(harbor, repo):
    response = harbor.token_response([f"repository:{repo}-{i}:pull" for i in range(40)])
    expect_error(response, 400, "BAD_REQUEST")


# ------------------------------------------------------------------------------ OAuth2 POST form


def test_oauth2_password_grant(harbor, repo):
    user, _ = harbor.create_user()
    project = repo.split("/")[0]
    harbor.add_member(project, user, 3)
    response = harbor.oauth(
        {
            "grant_type": "password",
            "client_id": "docker",
            "username": user,
            "password": PASSWORD,
            "service": SERVICE,
            "scope": f"repository:{repo}:pull,push",
        }
    )
    body = expect_status(response, 200).get_json()
    assert set(body) >= {"access_token", "expires_in", "issued_at", "scope"}
    assert "refresh_token" not in body  # only with access_type=offline
    assert body["expires_in"] == 1800
    claims = claims_of(body["access_token"])
    assert claims["sub"] == user and claims["aud"] == SERVICE
    assert actions_in(body["access_token"], repo) == {"pull"}
    assert body["scope"] == f"repository:{repo}:pull"
    expect_status(harbor.pull(repo, "v1", auth=body["access_token"]), 200)


def test_oauth2_refresh_token_flow_rechecks_the_account(harbor, repo):
    user, user_id = harbor.create_user()
    project = repo.split("/")[0]
    harbor.add_member(project, user, 2)
    form = {
        "grant_type": "password",
        "client_id": "docker",
        "username": user,
        "password": PASSWORD,
        "service": SERVICE,
        "scope": f"repository:{repo}:pull",
        "access_type": "offline",
    }
    body = expect_status(harbor.oauth(form), 200).get_json()
    refresh = body["refresh_token"]
    assert isinstance(refresh, str) and refresh
    # A refresh token is not an access token.
    expect_error(harbor.pull(repo, "v1", auth=refresh), 401, "UNAUTHORIZED")

    again = harbor.oauth(
        {
            "grant_type": "refresh_token",
            "client_id": "docker",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": f"repository:{repo}:pull,push",
        }
    )
    renewed = expect_status(again, 200).get_json()
    assert claims_of(renewed["access_token"])["sub"] == user
    assert actions_in(renewed["access_token"], repo) == {"pull", "push"}
    expect_status(harbor.pull(repo, "v1", auth=renewed["access_token"]), 200)

    # Bad refresh tokens are refused.
    for bad in ("", "garbage", body["access_token"], refresh[:-4] + "AAAA"):
        response = harbor.oauth(
            {"grant_type": "refresh_token", "client_id": "docker", "refresh_token": bad, "service": SERVICE}
        )
        expect_error(response, 401, "UNAUTHORIZED")
    # Once the account is gone, its refresh token is worthless.
    expect_status(harbor.delete(f"users/{user_id}"), 200)
    response = harbor.oauth(
        {
            "grant_type": "refresh_token",
            "client_id": "docker",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": f"repository:{repo}:pull",
        }
    )
    expect_error(response, 401, "UNAUTHORIZED")


def test_get_with_offline_token_returns_a_refresh_token(harbor, repo):
    response = expect_status(harbor.token_response([f"repository:{repo}:pull"], offline_token="true"), 200)
    refresh = response.get_json()["refresh_token"]
    renewed = harbor.oauth(
        {
            "grant_type": "refresh_token",
            "client_id": "docker",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": f"repository:{repo}:pull",
        }
    )
    assert claims_of(expect_status(renewed, 200).get_json()["access_token"])["sub"] == ADMIN[0]


def test_oauth2_bad_credentials_and_bad_forms(harbor, repo):
    user, _ = harbor.create_user()
    base = {
        "grant_type": "password",
        "client_id": "docker",
        "username": user,
        "service": SERVICE,
        "scope": f"repository:{repo}:pull",
    }
    expect_error(harbor.oauth({**base, "password": "Wrong-Pass1"}), 401, "UNAUTHORIZED")
    expect_error(harbor.oauth({**base, "username": "ghost-user", "password": PASSWORD}), 401, "UNAUTHORIZED")
    expect_error(harbor.oauth({**base, "password": PASSWORD, "client_id": ""}), 400, "BAD_REQUEST")
    expect_error(harbor.oauth({**base, "password": PASSWORD, "grant_type": "client_credentials"}), 400, "BAD_REQUEST")
    response = harbor.post(
        "/service/token", auth=None, data=b"\xff\xfe{not a form", content_type="application/x-www-form-urlencoded"
    )
    expect_error(response, 400, "BAD_REQUEST")
