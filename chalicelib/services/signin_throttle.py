"""Throttling of failed sign-ins, per account name and per source address.

After `limit` failed sign-ins of one account name (or from one source address) within a window,
further sign-ins of that name (from that source) are refused with 429 and `Retry-After` until the
window ends, whatever the password: a correct guess must not get through either. A success clears
the account's count; a refused attempt does not extend the window.

Why in process and not in DynamoDB: a shared counter would cost a read on every sign-in and a
write on every failure, and the token request is the hottest authenticated path. Kept in memory
it costs nothing, and the state is bounded (at most `max_keys` names and sources each, the least
recently failed dropped first). The limit is per process: on AWS each warm Lambda instance keeps
its own counts, so an attacker whose requests spread over N instances gets about N times the
budget, and a cold start begins at zero. Pair it with API Gateway throttling or an AWS WAF
rate-based rule for a global limit. The per-account limit also lets anyone who knows a name hold
off that account's password sign-ins (not its tokens already issued); set it to 0 to turn it off.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import TooManyRequests


class _Failures:
    """Failures per key in fixed windows, for at most `max_keys` keys."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._entries: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (window start, count)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: it may now)."""
        entry = self._entries.get(key)
        if self._limit <= 0 or entry is None or entry[1] < self._limit:
            return 0.0
        return max(0.0, entry[0] + self._window - now)

    def add(self, key: str, now: float) -> None:
        if self._limit <= 0:
            return
        start, count = self._entries.pop(key, (now, 0))
        if now - start >= self._window:
            start, count = now, 0
        self._entries[key] = (start, count + 1)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class SignInThrottle:
    def __init__(self, per_account: int, per_source: int, window_seconds: int, *, max_keys: int = 10_000,
                 clock: Clock = system_clock) -> None:  # fmt: skip
        self._accounts = _Failures(per_account, window_seconds, max_keys)
        self._sources = _Failures(per_source, window_seconds, max_keys)
        self._clock = clock
        self._lock = threading.Lock()

    def check(self, account: str, source: str | None) -> None:
        """Raise 429 while the account or the source is throttled."""
        account = _key(account)
        now = self._clock()
        with self._lock:
            wait = max(self._accounts.wait(account, now), self._sources.wait(source, now) if source else 0.0)
        if wait > 0:
            raise TooManyRequests("too many failed sign-ins; try again later", retry_after=math.ceil(wait))

    def failed(self, account: str, source: str | None) -> None:
        now = self._clock()
        with self._lock:
            self._accounts.add(_key(account), now)
            if source:
                self._sources.add(source, now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._accounts.clear(_key(account))


def _key(account: str) -> str:
    """Names longer than any account share one key, so a huge name cannot hold much memory."""
    return account[:_MAX_KEY]


_MAX_KEY = 512
