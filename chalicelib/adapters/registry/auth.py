"""Authentication to a remote registry: the `WWW-Authenticate` challenge flow of the distribution
token spec, and Basic.

The first call goes out bare; a 401 names the scheme. `Basic` means the credentials go on every
call; `Bearer realm=..,service=..,scope=..` means a token is fetched from the realm (with the
credentials as Basic, or anonymously when there are none, which is how public repositories are
read) and kept per scope until shortly before it expires. Once the realm is known, a call for a new
scope fetches its token before it is sent, so a streamed body never meets a 401 it cannot replay.

Credentials are asked for at the moment they are needed (`CredentialSource`), so a source that
expires (ECR's 12-hour passwords) can renew itself; they never appear in a repr, a log or an error.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

from chalicelib.adapters.registry.errors import RemoteProtocolError, RemoteUnauthorized

# A token without `expires_in` lives 60 s (the token spec's default); one is renewed this long before.
DEFAULT_TOKEN_SECONDS = 60
RENEW_MARGIN_SECONDS = 10

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class CredentialSource(Protocol):
    """Where a client's credentials come from at the moment it needs them; None: anonymous."""

    def current(self) -> BasicCredentials | None: ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Fixed credentials (or none): a user name and password or token held by the caller."""

    credentials: BasicCredentials | None = None

    def current(self) -> BasicCredentials | None:
        return self.credentials


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split()) if self.params.get("scope") else ()


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="https://auth",service="reg",scope="repository:a:pull,push"` -> Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m[1].lower(): (m[2].replace('\\"', '"') if m[2] else m[3]) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


class TokenFetcher(Protocol):
    """GET a token service URL with the given headers: (status, body) of the answer."""

    def __call__(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]: ...


class Authenticator:
    """Decides the Authorization header of each call to one registry, learning from its challenges."""

    def __init__(self, credentials: CredentialSource, fetch: TokenFetcher, clock: Callable[[], float]) -> None:
        self._credentials = credentials
        self._fetch = fetch
        self._clock = clock
        self._scheme: str | None = None
        self._realm: str | None = None
        self._service: str | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()  # one adapter may serve concurrent pulls (the proxy cache)
        self.token_requests = 0  # how many times a token service was asked (tests and metrics)

    @property
    def scheme(self) -> str | None:
        return self._scheme

    def headers(self, scopes: Iterable[str]) -> dict[str, str]:
        """The Authorization header for a call needing `scopes` (none before the first challenge)."""
        if self._scheme == "basic":
            creds = self._credentials.current()
            return {"Authorization": creds.header()} if creds else {}
        if self._scheme == "bearer":
            with self._lock:
                return {"Authorization": "Bearer " + self._token(_key(scopes))}
        return {}

    def challenged(self, header: str | None, scopes: Iterable[str]) -> bool:
        """A 401 arrived with `header`: learn from it. True when a retry can send something new."""
        challenge = parse_challenge(header or "")
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        previous, self._scheme = self._scheme, challenge.scheme
        if challenge.scheme == "basic":
            # Retrying only helps when the credentials were not sent yet.
            return previous != "basic" and self._credentials.current() is not None
        realm = challenge.params.get("realm")
        if not realm:
            raise RemoteProtocolError("the registry asked for a bearer token without naming a realm")
        # A token the registry refused (expired early, or short of scope) is replaced; the caller
        # retries a call once, so a refused fresh token ends in RemoteUnauthorized, not a loop.
        with self._lock:
            self._realm, self._service = realm, challenge.params.get("service")
            self._tokens[_key(scopes)] = self._new_token(_key((*scopes, *challenge.scopes)))
        return True

    def _token(self, key: tuple[str, ...]) -> str:
        cached = self._tokens.get(key)
        if cached is None or cached[1] - RENEW_MARGIN_SECONDS <= self._clock():
            cached = self._tokens[key] = self._new_token(key)
        return cached[0]

    def _new_token(self, key: tuple[str, ...]) -> tuple[str, float]:
        assert self._realm is not None
        query = [("service", self._service)] if self._service else []
        query += [("scope", scope) for scope in key]
        separator = "&" if "?" in self._realm else "?"
        url = self._realm + (separator + urlencode(query) if query else "")
        creds = self._credentials.current()
        headers = {"Authorization": creds.header()} if creds else {}
        now = self._clock()
        self.token_requests += 1
        status, body = self._fetch(url, headers)
        if status in (401, 403):
            raise RemoteUnauthorized("the registry's token service refused the credentials")
        if status != 200:
            raise RemoteProtocolError(f"the registry's token service answered {status}")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
            lifetime = int(answer.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            raise RemoteProtocolError("the registry's token service answered something that is not a token") from None
        if not isinstance(token, str) or not token:
            raise RemoteProtocolError("the registry's token service answered without a token")
        return token, now + lifetime


def _key(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))
