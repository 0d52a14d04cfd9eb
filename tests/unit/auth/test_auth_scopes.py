"""Scope grammar, the `access` claim shape and the `WWW-Authenticate` challenge."""

from __future__ import annotations

import pytest

from chalicelib.auth.scopes import Access, Scope, challenge, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:proj/app:pull", Scope("repository", "proj/app", ("pull",))),
        ("repository:proj/app:pull,push", Scope("repository", "proj/app", ("pull", "push"))),
        ("repository:samalba/my-app:pull,push", Scope("repository", "samalba/my-app", ("pull", "push"))),
        ("repository:app:*", Scope("repository", "app", ("*",))),
        ("registry:catalog:*", Scope("registry", "catalog", ("*",))),
        ("repository:proj/app:scanner-pull", Scope("repository", "proj/app", ("scanner-pull",))),
        ("repository:proj/app:delete,pull,push", Scope("repository", "proj/app", ("delete", "pull", "push"))),
        # The name may contain `:` (a host port): type before the first `:`, actions after the last.
        ("repository:localhost:5000/a/b:pull,push", Scope("repository", "localhost:5000/a/b", ("pull", "push"))),
        ("repository:reg.example.com:443/p/r:pull", Scope("repository", "reg.example.com:443/p/r", ("pull",))),
        ("repository:[::1]:5000/p/r:pull", Scope("repository", "[::1]:5000/p/r", ("pull",))),
        # A `(class)` suffix on the type is dropped.
        ("repository(plugin):proj/app:pull", Scope("repository", "proj/app", ("pull",))),
        ("repository(plugin):localhost:5000/x:push", Scope("repository", "localhost:5000/x", ("push",))),
        # Surrounding whitespace, blank and repeated actions are tolerated.
        ("  repository:proj/app:pull  ", Scope("repository", "proj/app", ("pull",))),
        ("repository:proj/app:pull,,push,", Scope("repository", "proj/app", ("pull", "push"))),
        ("repository:proj/app:pull,pull", Scope("repository", "proj/app", ("pull",))),
    ],
)
def test_parse_scope_valid(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "repository",
        "repository:proj/app",  # no actions part
        "repository:proj/app:",  # empty actions
        "repository:proj/app:,",  # only separators
        ":proj/app:pull",  # empty type
        "repository::pull",  # empty name
        "::",
        "Repository:proj/app:pull",  # type is lower-case alphanumerics
        "repo-sitory:proj/app:pull",
        "repository(:proj/app:pull",  # unbalanced class
        "repository(plugin:proj/app:pull",
        "repository()",
        "repository():proj/app:pull",  # empty class
        "repository(a)(b):proj/app:pull",
        "repository:proj app:pull",  # whitespace in name
        'repository:proj"app:pull',  # quote in name would break the challenge header
        "repository:proj,app:pull",
        "repository:proj/app:pu ll",
        "repository:proj/app:pull;rm",
    ],
)
def test_parse_scope_malformed(text: str) -> None:
    assert parse_scope(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "repository:proj/app:pull",
        "repository:proj/app:pull,push",
        "repository:localhost:5000/a/b:pull,push",
        "registry:catalog:*",
        "repository:proj/app:scanner-pull",
    ],
)
def test_scope_str_round_trips(text: str) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert str(scope) == text
    assert parse_scope(str(scope)) == scope


def test_scope_str_drops_class() -> None:
    assert str(parse_scope("repository(plugin):a/b:pull")) == "repository:a/b:pull"


def test_scope_is_frozen_and_hashable() -> None:
    scope = Scope("repository", "a", ("pull",))
    with pytest.raises(AttributeError):
        scope.name = "b"  # type: ignore[misc]
    assert {scope, Scope("repository", "a", ("pull",))} == {scope}


def test_parse_scopes_repeated_query_values() -> None:
    values = ["repository:a/b:pull", "repository:localhost:5000/c:pull,push", "registry:catalog:*"]
    assert parse_scopes(values) == [
        Scope("repository", "a/b", ("pull",)),
        Scope("repository", "localhost:5000/c", ("pull", "push")),
        Scope("registry", "catalog", ("*",)),
    ]


def test_parse_scopes_space_separated_oauth_form() -> None:
    assert parse_scopes(["repository:a/b:pull repository:localhost:5000/c:push  registry:catalog:*"]) == [
        Scope("repository", "a/b", ("pull",)),
        Scope("repository", "localhost:5000/c", ("push",)),
        Scope("registry", "catalog", ("*",)),
    ]


def test_parse_scopes_mixed_forms_skip_malformed() -> None:
    values = ["repository:a:pull garbage", "", "repository:b:", "repository:c:push\trepository:d:pull"]
    assert [str(s) for s in parse_scopes(values)] == [
        "repository:a:pull",
        "repository:c:push",
        "repository:d:pull",
    ]


def test_parse_scopes_empty() -> None:
    assert parse_scopes([]) == []


def test_parse_scopes_accepts_any_iterable() -> None:
    assert parse_scopes(iter(["repository:a:pull"])) == [Scope("repository", "a", ("pull",))]


def test_access_to_claim() -> None:
    access = Access("repository", "proj/app", ["pull", "push"])
    assert access.to_claim() == {"type": "repository", "name": "proj/app", "actions": ["pull", "push"]}


def test_access_to_claim_copies_actions() -> None:
    access = Access("repository", "a", ["pull"])
    claim = access.to_claim()
    assert isinstance(claim["actions"], list)
    claim["actions"].append("push")
    assert access.actions == ["pull"]


def test_access_default_actions_empty() -> None:
    assert Access("repository", "a").to_claim() == {"type": "repository", "name": "a", "actions": []}


def test_access_from_claim_round_trip() -> None:
    access = Access("registry", "catalog", ["*"])
    assert Access.from_claim(access.to_claim()) == access


def test_access_from_claim_missing_actions_is_empty() -> None:
    assert Access.from_claim({"type": "repository", "name": "a"}) == Access("repository", "a", [])


@pytest.mark.parametrize(
    "claim",
    [
        "repository:a:pull",
        None,
        {"name": "a", "actions": []},
        {"type": "repository", "actions": []},
        {"type": 1, "name": "a", "actions": []},
        {"type": "repository", "name": "a", "actions": "pull"},
        {"type": "repository", "name": "a", "actions": [1]},
    ],
)
def test_access_from_claim_malformed(claim: object) -> None:
    with pytest.raises(ValueError, match="access"):
        Access.from_claim(claim)


def test_challenge_with_scope() -> None:
    value = challenge("https://auth.example/token", "registry.example", "repository:samalba/my-app:pull,push")
    assert value == (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:samalba/my-app:pull,push"'
    )


def test_challenge_ping_has_no_scope() -> None:
    assert challenge("https://r.example/service/token", "harbor-registry", None) == (
        'Bearer realm="https://r.example/service/token",service="harbor-registry"'
    )


def test_challenge_empty_scope_is_omitted() -> None:
    assert "scope=" not in challenge("r", "s", "")


def test_challenge_insufficient_scope() -> None:
    value = challenge("https://r/token", "svc", "repository:a:push", error="insufficient_scope")
    assert value == 'Bearer realm="https://r/token",service="svc",scope="repository:a:push",error="insufficient_scope"'


def test_challenge_scope_with_port() -> None:
    scope = str(parse_scope("repository:localhost:5000/a/b:pull"))
    assert challenge("r", "s", scope).endswith(',scope="repository:localhost:5000/a/b:pull"')


def test_challenge_escapes_quotes_and_backslashes() -> None:
    value = challenge('https://r/"t"', "s\\v", None)
    assert value == 'Bearer realm="https://r/\\"t\\"",service="s\\\\v"'


def test_challenge_drops_control_characters() -> None:
    value = challenge("https://r/token\r\nSet-Cookie: x=1", "svc", None)
    assert "\r" not in value
    assert "\n" not in value
    assert value == 'Bearer realm="https://r/tokenSet-Cookie: x=1",service="svc"'
