"""The registry types and what they declare (Harbor's /replication/adapters, /replication/adapterinfos
and /registries/{id}/info shapes), and the pieces of the client that need no peer."""

from __future__ import annotations

import pytest

from chalicelib.adapters.egress import EgressPolicy, EgressSession
from chalicelib.adapters.registry.auth import Authenticator, StaticCredentials, parse_challenge
from chalicelib.adapters.registry.base import Endpoint, literal_names
from chalicelib.adapters.registry.catalog import adapter_infos, adapter_types, create_adapter
from chalicelib.adapters.registry.client import next_link
from chalicelib.adapters.registry.dockerhub import hub_name
from chalicelib.adapters.registry.errors import RemoteError, RemoteProtocolError, RemoteUnauthorized
from chalicelib.adapters.registry.transport import _retry_after


def test_adapter_types_are_harbors_names() -> None:
    assert adapter_types() == [
        "aws-ecr", "docker-hub", "docker-registry", "github-ghcr", "gitlab", "harbor", "quay",
    ]  # fmt: skip


def test_adapterinfos_shape() -> None:
    infos = adapter_infos()
    assert set(infos) == set(adapter_types())
    assert infos["docker-hub"]["endpoint_pattern"] == {
        "endpoint_type": "EndpointPatternTypeFix",
        "endpoints": [{"key": "hub.docker.com", "value": "https://hub.docker.com"}],
    }
    assert infos["docker-registry"] == {
        "endpoint_pattern": {"endpoint_type": "EndpointPatternTypeStandard", "endpoints": []},
        "credential_pattern": {
            "access_key_type": "AccessKeyTypeStandard",
            "access_key_data": "",
            "access_secret_type": "AccessSecretTypePass",
            "access_secret_data": "",
        },
    }


def test_registry_info_per_type() -> None:
    session = EgressSession(EgressPolicy(), 1)
    harbor = create_adapter(Endpoint("harbor", "https://harbor.example"), session).info().wire()
    assert harbor["supported_triggers"] == ["manual", "scheduled", "event_based"]
    assert [f["type"] for f in harbor["supported_resource_filters"]] == ["name", "tag", "label", "resource"]
    assert harbor["supported_resource_filters"][3] == {
        "type": "resource",
        "style": "radio",
        "values": ["image", "artifact"],
    }
    assert harbor["supported_copy_by_chunk"] is True
    hub = create_adapter(Endpoint("docker-hub", "https://hub.docker.com"), session).info().wire()
    assert hub["supported_triggers"] == ["manual", "scheduled"]
    assert hub["supported_repository_path_component_type"] == "ONLY_TWO"
    assert "supported_copy_by_chunk" not in hub  # Harbor omits a false one
    with pytest.raises(RemoteError):
        create_adapter(Endpoint("azure-acr", "https://x.azurecr.io"), session)


def test_docker_hub_names() -> None:
    assert hub_name("alpine") == "library/alpine"
    assert hub_name("bitnami/redis") == "bitnami/redis"


def test_challenge_parsing() -> None:
    c = parse_challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
    assert c is not None and c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert c.scopes == ("repository:a/b:pull,push",)
    basic = parse_challenge('Basic realm="127.0.0.1"')
    assert basic is not None and basic.scheme == "basic" and basic.scopes == ()


def test_token_answers_that_are_not_tokens_are_typed_errors() -> None:
    def answer(status: int, body: bytes) -> Authenticator:
        return Authenticator(StaticCredentials(), lambda url, headers: (status, body), lambda: 0.0)

    challenge = 'Bearer realm="https://auth.example/token"'
    with pytest.raises(RemoteUnauthorized):
        answer(401, b"").challenged(challenge, ["repository:a:pull"])
    with pytest.raises(RemoteProtocolError):
        answer(200, b"not json").challenged(challenge, ["repository:a:pull"])
    with pytest.raises(RemoteProtocolError):
        answer(200, b'{"token": ""}').challenged(challenge, ["repository:a:pull"])
    with pytest.raises(RemoteProtocolError):
        answer(200, b"{}").challenged('Bearer service="x"', ["repository:a:pull"])


def test_tokens_are_renewed_before_they_expire() -> None:
    now = [0.0]
    fetched: list[str] = []

    def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        fetched.append(url)
        return 200, b'{"token": "t%d", "expires_in": 60}' % len(fetched)

    auth = Authenticator(StaticCredentials(), fetch, lambda: now[0])
    assert auth.challenged('Bearer realm="https://a/token",service="s"', ["repository:x:pull"])
    assert auth.headers(["repository:x:pull"]) == {"Authorization": "Bearer t1"}
    now[0] = 45.0
    assert auth.headers(["repository:x:pull"]) == {"Authorization": "Bearer t1"}
    now[0] = 51.0  # within the renewal margin
    assert auth.headers(["repository:x:pull"]) == {"Authorization": "Bearer t2"}
    assert fetched == ["https://a/token?service=s&scope=repository%3Ax%3Apull"] * 2


def test_link_and_retry_after_parsing() -> None:
    assert next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert next_link("<https://r/v2/x/tags/list?n=1&last=a>; rel=next") == "https://r/v2/x/tags/list?n=1&last=a"
    assert next_link("") is None
    assert _retry_after("120") == 120.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert _retry_after("soon") is None


def test_literal_name_filters() -> None:
    assert literal_names("library/alpine") == ["library/alpine"]
    assert literal_names("{a/b,c/d}") == ["a/b", "c/d"]
    for pattern in ("", "library/*", "a/**", "{a,b}/c", "a/[bc]", "x?"):
        assert literal_names(pattern) == []
