"""System configuration with Harbor's keys: defaults from settings, overrides stored in DynamoDB.

Read on hot paths (robot login prefix, token lifetime), so values are cached in-process for a few
seconds; a change made through the API is visible everywhere within that time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.stores.configuration import ConfigurationStore

_CACHE_SECONDS = 5.0


def _restriction(value: Any) -> str:
    if value not in ("everyone", "adminonly"):
        raise BadRequest("project_creation_restriction must be 'everyone' or 'adminonly'")
    return str(value)


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(f"must be an integer from {low} to {high}")
        return value

    return check


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 16 or any(c in value for c in "+: /"):
        raise BadRequest("robot_name_prefix must be 1-16 characters without '+', ':', '/' or spaces")
    return value


_BANNER_MAX = 4096


def _banner(value: Any) -> str:
    """Harbor's UI stores a JSON string (`{"message", "type", "closable", "fromDate", "toDate"}`);
    like Harbor, any string is kept as it is."""
    if not isinstance(value, str) or len(value) > _BANNER_MAX:
        raise BadRequest(f"banner_message must be a string of at most {_BANNER_MAX} characters")
    return value


# Editable keys and their validators; Harbor's fixed keys are reported read-only.
_EDITABLE: dict[str, Callable[[Any], Any]] = {
    "project_creation_restriction": _restriction,
    "robot_name_prefix": _prefix,
    "token_expiration": _int_range(1, 24 * 60),
    "robot_token_duration": _int_range(-1, 365 * 100),
    "storage_per_project": _int_range(-1, 2**62),
    "banner_message": _banner,
}
_FIXED = {"auth_mode": "db_auth", "self_registration": False, "read_only": False}


class ConfigurationService:
    def __init__(self, store: ConfigurationStore, settings: Settings, clock: Clock = system_clock):
        self._store = store
        self._defaults: dict[str, Any] = {
            "project_creation_restriction": settings.project_creation_restriction,
            "robot_name_prefix": settings.robot_name_prefix,
            "token_expiration": settings.token_expiration_minutes,
            "robot_token_duration": settings.robot_token_duration_days,
            "storage_per_project": settings.storage_per_project,
            "banner_message": "",
        }
        self._clock = clock
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def values(self) -> dict[str, Any]:
        with self._lock:
            if self._cached and self._cached[0] > self._clock():
                return self._cached[1]
        merged = {**self._defaults, **self._store.load()}
        with self._lock:
            self._cached = (self._clock() + _CACHE_SECONDS, merged)
        return merged

    def forget(self) -> None:
        """Drop the cached copy: the next read goes to the table."""
        with self._lock:
            self._cached = None

    def describe(self) -> dict[str, dict[str, Any]]:
        """Harbor's GET /configurations shape: each key as {value, editable}."""
        out = {k: {"value": v, "editable": True} for k, v in self.values().items()}
        out.update({k: {"value": v, "editable": False} for k, v in _FIXED.items()})
        return out

    def update(self, changes: dict[str, Any]) -> None:
        unknown = sorted(set(changes) - set(_EDITABLE))
        if unknown:
            raise BadRequest(f"unknown or read-only configuration keys: {', '.join(unknown)}")
        checked = {key: _EDITABLE[key](value) for key, value in changes.items()}
        self._store.save({**self._store.load(), **checked})
        self.forget()

    def robot_name_prefix(self) -> str:
        return str(self.values()["robot_name_prefix"])

    def token_expiration_minutes(self) -> int:
        return int(self.values()["token_expiration"])

    def project_creation_restriction(self) -> str:
        return str(self.values()["project_creation_restriction"])

    def robot_token_duration(self) -> int:
        return int(self.values()["robot_token_duration"])

    def storage_per_project(self) -> int:
        return int(self.values()["storage_per_project"])

    def banner_message(self) -> str:
        return str(self.values()["banner_message"])
