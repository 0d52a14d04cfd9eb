"""One HTTP call to a remote registry, with everything every call needs: the egress policy, the
auth challenge, retries with backoff, honest 429 handling and redirects.

- Every request goes through `EgressSession` (the one egress policy), redirects included: each hop
  is a new, checked request, and the Authorization header goes only to the registry's own origin
  (a blob GET redirected to S3 or a CDN must not carry the registry token there).
- Connection errors and 5xx are retried with exponential backoff when the call can be repeated
  (its body is bytes or empty); a streamed body is sent once.
- 429: a `Retry-After` within `max_retry_after` seconds is waited out (a bounded number of times);
  a longer one, or none, raises RemoteRateLimited at once with the seconds the remote asked for,
  so a caller (a proxy-cache pull) can decide to serve what it has instead of hanging.
- Answers are returned unread; `read_body` bounds what is read into memory.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from chalicelib.adapters.egress import EgressSession
from chalicelib.adapters.registry.auth import Authenticator
from chalicelib.adapters.registry.errors import (
    RemoteError,
    RemoteNotFound,
    RemoteProtocolError,
    RemoteRateLimited,
    RemoteUnauthorized,
    RemoteUnreachable,
)

log = logging.getLogger(__name__)

Body = bytes | Iterable[bytes] | None
_REDIRECTS = (301, 302, 303, 307, 308)
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a client tries: `attempts` per call for connection errors and 5xx (backoff doubles
    from `backoff_seconds` up to `max_backoff_seconds`); a 429 is waited out only when its
    Retry-After is at most `max_retry_after_seconds`, at most `rate_limit_waits` times per call;
    `default_retry_after_seconds` is what RemoteRateLimited reports when the remote named none."""

    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 10.0
    rate_limit_waits: int = 2
    default_retry_after_seconds: int = 60
    max_redirects: int = 5

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff_seconds, self.backoff_seconds * (2**attempt)))


class Transport:
    """Calls to one registry (`base_url`, e.g. `https://registry.example`)."""

    def __init__(
        self,
        base_url: str,
        session: EgressSession,
        auth: Authenticator,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._origin = (parts.scheme, parts.hostname, parts.port)
        self._session = session
        self.auth = auth
        self._retry = retry
        self._sleep = sleep

    def url(self, path: str) -> str:
        """An absolute URL for a path or for a Location/Link the registry sent (relative or not)."""
        return urljoin(self.base_url + "/", path)

    def same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.hostname, parts.port) == self._origin

    def call(
        self,
        method: str,
        path_or_url: str,
        scopes: Iterable[str] = (),
        headers: dict[str, str] | None = None,
        *,
        body: Body = None,
        follow_redirects: bool = False,
        authenticate: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send a call and return the answer unread, after auth, retries, 429 waits and redirects.
        Raises RemoteUnauthorized, RemoteRateLimited, RemoteUnreachable, or EgressRefused.
        `authenticate=False` is for the token service itself (its answer is the caller's to judge)."""
        scopes = tuple(scopes)
        url = self.url(path_or_url)
        replayable = body is None or isinstance(body, bytes)
        failures = rate_waits = redirects = 0
        auth_retried = False
        while True:
            sent = dict(headers or {})
            if authenticate and self.same_origin(url):
                sent.update(self.auth.headers(scopes))
            try:
                response = self._session.request(method, url, sent, body)
            except urllib3.exceptions.HTTPError as exc:
                if replayable and failures + 1 < self._retry.attempts:
                    log.info("%s %s %s failed (%s); retrying", self.base_url, method, _path(url), type(exc).__name__)
                    self._sleep(self._retry.backoff(failures))
                    failures += 1
                    continue
                raise RemoteUnreachable(f"{self.base_url} did not answer ({type(exc).__name__})") from None
            status = response.status
            if status == 401 and authenticate and self.same_origin(url) and not auth_retried:
                challenge = response.headers.get("WWW-Authenticate")
                _drain(response)
                if replayable and self.auth.challenged(challenge, scopes):
                    auth_retried = True
                    continue
                raise RemoteUnauthorized(f"{self.base_url} refused the credentials for {method} {_path(url)}")
            if status == 429:
                wait = self._rate_limit_wait(response, replayable and rate_waits < self._retry.rate_limit_waits)
                log.info("%s rate limits %s %s; waiting %.0f s", self.base_url, method, _path(url), wait)
                self._sleep(wait)
                rate_waits += 1
                continue
            if status >= 500 and replayable and failures + 1 < self._retry.attempts:
                log.info("%s %s %s answered %d; retrying", self.base_url, method, _path(url), status)
                _drain(response)
                self._sleep(self._retry.backoff(failures))
                failures += 1
                continue
            if status in _REDIRECTS and follow_redirects and redirects < self._retry.max_redirects:
                location = response.headers.get("Location")
                _drain(response)
                if not location:
                    raise RemoteProtocolError(f"{self.base_url} redirected without a Location")
                url, redirects = urljoin(url, location), redirects + 1
                if status == 303:
                    method, body = "GET", None
                continue
            return response

    def _rate_limit_wait(self, response: urllib3.BaseHTTPResponse, may_wait: bool) -> float:
        """The seconds to wait before repeating a call answered 429, when within the cap;
        RemoteRateLimited (with the seconds the registry asked for) otherwise."""
        wait = _retry_after(response.headers.get("Retry-After"))
        _drain(response)
        if may_wait and wait is not None and wait <= self._retry.max_retry_after_seconds:
            return wait
        seconds = int(wait) if wait is not None else self._retry.default_retry_after_seconds
        raise RemoteRateLimited(f"{self.base_url} is rate limiting: retry after {seconds} s", retry_after=seconds)


def read_body(response: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """The whole body, refused (RemoteProtocolError) beyond `limit` bytes; the connection is released."""
    try:
        chunks: list[bytes] = []
        total = 0
        for chunk in response.stream(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise RemoteProtocolError(f"an answer larger than {limit} bytes was refused")
            chunks.append(chunk)
        return b"".join(chunks)
    except urllib3.exceptions.HTTPError as exc:
        raise RemoteUnreachable(f"the connection broke while reading an answer ({type(exc).__name__})") from None
    finally:
        response.release_conn()


def fail(response: urllib3.BaseHTTPResponse, what: str) -> RemoteError:
    """The typed error for an answer that is not the one expected for `what`."""
    status = response.status
    detail = _error_code(response)
    suffix = f" ({detail})" if detail else ""
    if status == 404:
        return RemoteNotFound(f"{what}: not found{suffix}")
    if status in (401, 403):
        return RemoteUnauthorized(f"{what}: access denied{suffix}")
    if status >= 500:
        return RemoteUnreachable(f"{what}: the registry answered {status}{suffix}")
    return RemoteProtocolError(f"{what}: the registry answered {status}{suffix}")


def _error_code(response: urllib3.BaseHTTPResponse) -> str:
    """`CODE: message` of the first OCI error in the body, bounded (never the whole body)."""
    try:
        data = read_body(response, _ERROR_BODY_LIMIT)
        errors = json.loads(data).get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}"[:200]
    except (RemoteError, ValueError, AttributeError, IndexError, TypeError):
        return ""


def _drain(response: urllib3.BaseHTTPResponse) -> None:
    with contextlib.suppress(urllib3.exceptions.HTTPError):
        response.drain_conn()
    response.release_conn()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _path(url: str) -> str:
    return urlsplit(url).path
