"""JSON calls to a vendor's management API (Harbor's /api/v2.0, Docker Hub's hub API), through the
same transport as the distribution calls: egress policy, retries, 429 handling. These APIs do not
use the distribution challenge flow, so the caller names the Authorization header itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.adapters.egress import EgressSession
from chalicelib.adapters.registry.auth import Authenticator, StaticCredentials
from chalicelib.adapters.registry.client import next_link
from chalicelib.adapters.registry.errors import RemoteProtocolError
from chalicelib.adapters.registry.transport import RetryPolicy, Transport, fail, read_body

MAX_JSON_BYTES = 8 * 1024 * 1024


class JsonApi:
    """A management API at `base_url`; `authorization()` gives the header for each call (or None)."""

    def __init__(
        self,
        base_url: str,
        session: EgressSession,
        authorization: Callable[[], str | None],
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        never = Authenticator(StaticCredentials(), _no_tokens, lambda: 0.0)
        self._transport = Transport(base_url, session, never, retry, sleep)
        self._authorization = authorization

    def url(self, path: str) -> str:
        return self._transport.url(path)

    def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        """(status, parsed JSON, or None for an answer that is not JSON) when the status is one of
        `expect`; a typed error otherwise."""
        status, value, _ = self._call(method, path, body, expect)
        return status, value

    def _call(self, method: str, path: str, body: Any, expect: tuple[int, ...]) -> tuple[int, Any, str]:
        headers = {"Accept": "application/json"}
        auth = self._authorization()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = self._transport.call(method, path, headers=headers, body=data, authenticate=False)
        if response.status not in expect:
            raise fail(response, f"{method} {path.split('?', 1)[0]}")
        link = response.headers.get("Link", "")
        is_json = "json" in (response.headers.get("Content-Type") or "").lower()
        raw = read_body(response, MAX_JSON_BYTES)
        if not raw.strip() or not is_json:  # an empty answer, or a plain one (Harbor's ping: "Pong")
            return response.status, None, link
        try:
            return response.status, json.loads(raw), link
        except ValueError:
            raise RemoteProtocolError(f"{method} {path.split('?', 1)[0]}: the answer is not JSON") from None

    def get(self, path: str) -> Any:
        return self.call("GET", path)[1]

    def pages(self, path: str) -> Iterator[Any]:
        """Every item of a Harbor-style list, following `Link: <...>; rel="next"` headers."""
        url: str | None = path
        while url:
            _, items, link = self._call("GET", url, None, (200,))
            yield from items or []
            found = next_link(link)
            url = self.url(found) if found else None


def _no_tokens(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    raise RemoteProtocolError("a management API asked for a registry token")
