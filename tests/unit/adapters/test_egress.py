"""The egress policy (issue 9, finding 2): which addresses an outbound call may reach, and that the
connection goes to the address that was checked."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from chalicelib.adapters.egress import EgressClient, EgressPolicy, parse_networks
from chalicelib.errors import EgressRefused

REFUSED_URLS = [
    "http://127.0.0.1:5000/api/v2.0/ping",
    "http://localhost/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",
    "http://2130706433/",
    "http://0/",
    "http://0.0.0.0:22/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[ff02::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "ftp://8.8.8.8/",
    "http://user@8.8.8.8/",
    "http:///path",
    "http://8.8.8.8:99999/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_internal_addresses_and_their_spellings_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        EgressPolicy().check(url)
    assert refused.value.message == EgressRefused().message  # one answer for every refused address


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "https://[2606:4700::1111]:8443/x?y=1"])
def test_public_addresses_pass(url: str) -> None:
    destination = EgressPolicy().check(url)
    assert destination.address in ("8.8.8.8", "2606:4700::1111")


def test_an_allowed_network_opens_only_itself() -> None:
    policy = EgressPolicy(parse_networks(["127.0.0.1/32", " 10.1.0.0/16 "]))
    assert policy.check("http://127.0.0.1:8080/").address == "127.0.0.1"
    assert policy.check("http://10.1.2.3/").address == "10.1.2.3"
    for url in ("http://127.0.0.2/", "http://10.2.0.1/", "http://169.254.169.254/", "http://[::1]/"):
        with pytest.raises(EgressRefused):
            policy.check(url)


def _resolver(*answers: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port)) for answer in answers]

    return resolve


def test_a_name_with_any_internal_address_is_refused() -> None:
    with pytest.raises(EgressRefused):
        EgressPolicy(resolver=_resolver("8.8.8.8", "127.0.0.1")).check("http://hooks.example.com/")
    with pytest.raises(EgressRefused):
        EgressPolicy(resolver=_resolver()).check("http://hooks.example.com/")


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebinding name answers a public address to the check and 127.0.0.1 afterwards: resolved
    once, so the connection is made to the public address (which the pool is built for)."""
    answers = iter(["8.8.8.8", "127.0.0.1"])

    def rebinding(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    seen: dict[str, Any] = {}

    class Pool:
        def __init__(self, host: str, port: int, **kwargs: Any) -> None:
            seen.update(host=host, port=port, **kwargs)

        def urlopen(self, method: str, url: str, **kwargs: Any) -> Any:
            seen.update(method=method, url=url, **kwargs)
            return type("Response", (), {"status": 204})()

        def close(self) -> None:
            seen["closed"] = True

    import chalicelib.adapters.egress as egress

    monkeypatch.setattr(egress.urllib3, "HTTPSConnectionPool", Pool)
    client = EgressClient(EgressPolicy(resolver=rebinding), 5)
    assert client.post("https://hooks.example.com:8443/in?x=1", b"{}", {"Authorization": "t"}, True) == 204
    assert seen["host"] == "8.8.8.8" and seen["port"] == 8443
    assert seen["server_hostname"] == "hooks.example.com" and seen["assert_hostname"] == "hooks.example.com"
    assert seen["headers"]["Host"] == "hooks.example.com:8443" and seen["url"] == "/in?x=1"
    assert seen["redirect"] is False and seen["retries"] is False and seen["closed"]
