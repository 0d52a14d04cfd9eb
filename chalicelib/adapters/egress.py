"""The one egress policy: every outbound call the registry makes (webhooks, Slack and scanners now;
replication and proxy-cache upstreams and preheat providers later) goes through `EgressClient`.

A URL a user supplies must not become a way into the registry's own network (SSRF): a project admin
pointed a webhook at `127.0.0.1:<registry port>`, `0x7f000001`, `:22` and the link-local metadata
address, and read the answers back from the task log. So:

- the host is resolved here, and every address it resolves to must be public: loopback,
  link-local, private, unique-local, multicast, unspecified and reserved addresses are refused,
  including IPv4 inside IPv6 (`::ffff:127.0.0.1`, NAT64, 6to4, Teredo). Odd spellings
  (`0x7f000001`, `017700000001`, `127.1`) are what the resolver turns them into: 127.0.0.1;
- unless the address is in a network the system administrator allows
  (`REGISTRY_EGRESS_ALLOW_NETWORKS`, CIDRs), for receivers inside a private network;
- the connection goes to the address that was checked, never to the name again (so DNS
  rebinding, a name that answers a public address to the check and 127.0.0.1 to the connect,
  cannot slip through), with the name kept in the Host header, TLS SNI and certificate check;
- redirects are never followed (a redirect could name any host), and a refusal says only that
  the address is not allowed, the same for every refused address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from chalicelib.errors import EgressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL: where to connect (`address`) and what to call it (`host`, for Host and SNI)."""

    scheme: str
    host: str
    port: int
    address: str
    target: str  # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == _DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) from configuration; a malformed one raises ValueError."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


class EgressPolicy:
    """Decides whether an address may be called, and resolves a URL to a checked destination."""

    def __init__(self, allow_networks: Iterable[IPNetwork] = (), resolver: Resolver = socket.getaddrinfo) -> None:
        self._allowed = tuple(allow_networks)
        self._resolve = resolver

    def allows(self, address: IPAddress) -> bool:
        if any(address in network for network in self._allowed if network.version == address.version):
            return True
        return all(_public(candidate) for candidate in _embedded(address))

    def check(self, url: str) -> Destination:
        """Resolve `url`'s host and return where to connect; EgressRefused if any address it
        resolves to is not allowed, or the URL is not an absolute http(s) URL."""
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            raise EgressRefused() from None
        host = parts.hostname
        if parts.scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
            raise EgressRefused()
        addresses = self._addresses(host, port)
        if not addresses or not all(self.allows(address) for address in addresses):
            raise EgressRefused()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Destination(parts.scheme, host, port, str(addresses[0]), target)

    def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            found = self._resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise EgressRefused() from None
        addresses: list[IPAddress] = []
        for entry in found:
            text = str(entry[4][0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is link-local anyway
            address = ipaddress.ip_address(text)
            if address not in addresses:
                addresses.append(address)
        return addresses


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address it carries (mapped, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
    return found


def _public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


class EgressClient:
    """HTTP calls through the policy: connects to the checked address, never follows redirects."""

    def __init__(self, policy: EgressPolicy, timeout_seconds: float) -> None:
        self._policy = policy
        self._timeout_seconds = timeout_seconds

    def check(self, url: str) -> None:
        """Refuse (EgressRefused) a URL that may not be called, before it is stored anywhere."""
        self._policy.check(url)

    def post(self, url: str, body: bytes, headers: dict[str, str], verify: bool) -> int:
        """POST to `url`; the status code (raises on a connection error, EgressRefused if refused)."""
        session = EgressSession(self._policy, self._timeout_seconds, verify)
        try:
            return int(session.request("POST", url, headers, body).status)  # the answer's body is not wanted
        finally:
            session.close()

    def request(
        self, method: str, url: str, headers: dict[str, str], verify: bool, *, body: bytes | None = None, max_bytes: int
    ) -> EgressResponse:
        """One call with its answer read whole; an answer longer than `max_bytes` raises
        AnswerTooLarge (a remote party must not be able to fill the caller's memory)."""
        with self.open(method, url, headers, verify, body=body) as response:
            data = response.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise AnswerTooLarge(url)
            return EgressResponse(int(response.status), dict(response.headers.items()), data)

    @contextmanager
    def open(
        self, method: str, url: str, headers: dict[str, str], verify: bool, *, body: bytes | None = None
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        """A call whose answer is read as it arrives (`read(n)`, `stream(n)`), closed on exit.
        Header lookups on the answer are case-insensitive; a redirect is returned, never followed."""
        session = EgressSession(self._policy, self._timeout_seconds, verify)  # one call: its own connection
        try:
            response = session.request(method, url, headers, body)
            try:
                yield response
            finally:
                response.release_conn()
        finally:
            session.close()


@dataclass(frozen=True, slots=True)
class EgressResponse:
    """An answer read whole: status, headers (names as the remote sent them) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


class AnswerTooLarge(Exception):
    """A remote answer longer than the caller agreed to read."""

    def __init__(self, url: str) -> None:
        super().__init__(f"the answer from {urlsplit(url).netloc} is larger than expected")


class EgressSession:
    """Many calls through the policy, reusing one keep-alive pool per checked address (a registry
    client makes hundreds of calls to one upstream). Every call is checked again, so a name that
    now resolves elsewhere gets a pool of its own, or a refusal. Redirects are never followed here:
    the caller decides, and calls `request` again for the new URL, which is checked in turn."""

    def __init__(
        self, policy: EgressPolicy, timeout_seconds: float, verify: bool = True, ca_certificates: str | None = None
    ) -> None:
        self._policy = policy
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._verify = verify
        # PEM CAs a remote's certificate is checked against instead of the system's (a registry's
        # `ca_certificate`); None: the system's.
        self._ca = ca_certificates or None
        self._pools: dict[Destination, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | Iterable[bytes] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; the response body is not read (stream it, then `release_conn`).
        EgressRefused if refused; urllib3's errors on connection failures."""
        destination = self._policy.check(url)
        key = Destination(destination.scheme, destination.host, destination.port, destination.address, "")
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _pool(destination, self._verify, self._timeout, maxsize=4, ca=self._ca)
        return pool.urlopen(
            method,
            destination.target,
            body=body,
            headers={**headers, "Host": destination.host_header},
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            chunked=body is not None and not isinstance(body, bytes) and "Content-Length" not in headers,
        )

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _pool(
    destination: Destination, verify: bool, timeout: urllib3.Timeout, maxsize: int, ca: str | None = None
) -> urllib3.HTTPConnectionPool:
    if destination.scheme == "http":
        return urllib3.HTTPConnectionPool(destination.address, destination.port, timeout=timeout, maxsize=maxsize)
    return urllib3.HTTPSConnectionPool(
        destination.address,
        destination.port,
        timeout=timeout,
        maxsize=maxsize,
        cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        server_hostname=destination.host,
        assert_hostname=destination.host if verify else False,
        ca_cert_data=ca if verify else None,
    )
