"""Docker token-spec scopes, the `access` claim and the `WWW-Authenticate` challenge.

Why this module exists: the registry (`/v2/...`) and the token service (`/service/token`) must agree
byte for byte on how a scope is written and read. A client asks for
`scope=repository:localhost:5000/proj/app:pull,push`; the name may itself contain `:` (a host port),
so the only safe split is the one distribution and Harbor use: the type is before the *first* `:`,
the actions are after the *last* `:`, and the name is everything in between. Keeping the grammar,
the JWT `access` claim shape and the 401 challenge together means one tested place owns them.

Everything here is pure: no I/O, no settings, no AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# distribution docs/spec/auth/scope.md: resourcetype := resourcetypevalue [ '(' resourcetypevalue ')' ]
_TYPE_RE = re.compile(r"^(?P<type>[a-z0-9]+)(?:\((?P<cls>[a-z0-9]+)\))?$")
# Actions are short words (`pull`, `push`, `delete`, `*`, Harbor's `scanner-pull`).
_ACTION_RE = re.compile(r"^[A-Za-z0-9*_.-]+$")
# A name is validated structurally only; authorization decides whether it means anything.
_BAD_NAME_CHARS = re.compile(r'[\s",\\\x00-\x1f\x7f]')
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Scope:
    """One requested resource scope, e.g. `repository:proj/app:pull,push`.

    A `(class)` suffix on the type (`repository(plugin)`) is accepted but dropped, as distribution does.
    """

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass
class Access:
    """One entry of the JWT `access` claim: what the token holder may do on one resource."""

    type: str
    name: str
    actions: list[str] = field(default_factory=list)

    def to_claim(self) -> dict[str, str | list[str]]:
        """The JSON shape the Docker token spec puts in the `access` claim."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    @classmethod
    def from_claim(cls, claim: object) -> Access:
        """Read one `access` entry back from a decoded token; raise `ValueError` if malformed."""
        if not isinstance(claim, Mapping):
            raise ValueError("access entry is not an object")
        type_, name, actions = claim.get("type"), claim.get("name"), claim.get("actions", [])
        if not isinstance(type_, str) or not isinstance(name, str):
            raise ValueError("access entry needs string type and name")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ValueError("access actions must be a list of strings")
        return cls(type=type_, name=name, actions=list(actions))


def _parse_type(text: str) -> str | None:
    match = _TYPE_RE.fullmatch(text)
    return match.group("type") if match else None


def _parse_name(text: str) -> str | None:
    if not text or _BAD_NAME_CHARS.search(text):
        return None
    return text


def _parse_actions(text: str) -> tuple[str, ...] | None:
    actions = [part.strip() for part in text.split(",") if part.strip()]
    if not actions or not all(_ACTION_RE.fullmatch(action) for action in actions):
        return None
    return tuple(dict.fromkeys(actions))  # de-duplicated, order kept


def parse_scope(text: str) -> Scope | None:
    """Parse `type[(class)]:name:action[,action]`; return None if it is empty or malformed."""
    text = text.strip()
    first, last = text.find(":"), text.rfind(":")
    if first <= 0 or last == first:
        return None
    type_ = _parse_type(text[:first])
    name = _parse_name(text[first + 1 : last])
    actions = _parse_actions(text[last + 1 :])
    if type_ is None or name is None or actions is None:
        return None
    return Scope(type=type_, name=name, actions=actions)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse every scope in `values`, skipping malformed ones.

    Accepts both wire forms: the GET token endpoint repeats `scope=` (one scope per value), and the
    OAuth2 POST form sends a single `scope` field holding a space-separated list.
    """
    return [scope for value in values for part in value.split() if (scope := parse_scope(part)) is not None]


def _quote(value: str) -> str:
    """An RFC 7230 quoted-string: control characters dropped, `\\` and `"` escaped."""
    cleaned = _CONTROL_CHARS.sub("", value)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(realm: str, service: str, scope: str | None, error: str | None = None) -> str:
    """The `WWW-Authenticate` value for a 401: `Bearer realm="...",service="..."[,scope="..."][,error="..."]`.

    The `/v2/` ping challenge carries no scope; a token that lacks an action gets
    `error="insufficient_scope"` so the client fetches a new one.
    """
    params = [("realm", realm), ("service", service)]
    if scope:
        params.append(("scope", scope))
    if error:
        params.append(("error", error))
    return "Bearer " + ",".join(f"{key}={_quote(value)}" for key, value in params)
