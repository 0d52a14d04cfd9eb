"""Harbor's `q` query language, parsed once into a typed AST and evaluated against plain records.

Every Harbor list endpoint takes `q=k1=v1,k2=~v2,k3=[min~max],k4={a b},k5=(a b)`. Handlers should not
each re-parse that string, and typos must surface as a 400 naming the offending key rather than as a
silently empty list, so parsing is strict and typed: each endpoint declares which keys it filters on and
their value types, and gets back frozen terms it can either push down to a store or evaluate in memory
with `Query.matches`.

Differences from Harbor's own parser (`src/lib/q`), all deliberate:
- commas (and spaces, and `~`) inside `[]`, `{}`, `()` or double quotes do not split, so quoted times
  and strings with commas work;
- unknown keys, duplicate keys, malformed values and unbalanced brackets are 400s, where Harbor
  often ignores or overwrites them;
- a range needs at least one bound and is only accepted on number and time keys.

Like Harbor, a `q` that still holds valid `%` escapes is unescaped once more (the portal double encodes
it), naive times are UTC, and fuzzy matching is a case-sensitive substring test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.errors import ErrorCode, RegistryError

MAX_Q_LENGTH = 1024
"""Longest accepted `q`, before the extra unescape; longer strings are rejected, not truncated."""

Scalar = str | int | float | bool | datetime
Bound = int | float | datetime

_SUPPORTED_TYPES: tuple[type, ...] = (str, int, float, bool, datetime)
_OPENERS = {"[": "]", "{": "}", "(": ")"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,12}(\.[0-9]{1,12})?")
_VALID_ESCAPES = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PLUS_SEPARATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\+[0-9]{2}:[0-9]{2}:[0-9]{2}")
_TRUE = frozenset({"true", "1", "t"})
_FALSE = frozenset({"false", "0", "f"})
"""Go's `strconv.ParseBool` spellings, compared case-insensitively (Harbor's generated Python client
sends `True`/`False`)."""


class InvalidQuery(RegistryError):
    """A malformed `q`, `sort`, `page` or `page_size`: Harbor answers these with BAD_REQUEST."""

    code = ErrorCode.BAD_REQUEST


def query_bool(name: str, raw: str | None, *, default: bool) -> bool:
    """A boolean query parameter (`public`, `with_tag`, `relative`, ...): absent or empty is `default`.

    Every spelling Go's `strconv.ParseBool` takes, in any case; anything else is a 400 naming the
    parameter (Harbor reads an unknown word as false, which hides typos)."""
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise InvalidQuery(f"{name} must be true or false, got {raw[:32]!r}")


# ---------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Exact:
    """`k=v`: the field equals `v` (or, for a list field, one element does)."""

    value: Scalar

    def matches(self, actual: Any) -> bool:
        return _any_element(actual, _kind(self.value), lambda v: v == self.value)


@dataclass(frozen=True)
class Fuzzy:
    """`k=~v`: `v` is a case-sensitive substring of the field (SQL `LIKE %v%`)."""

    value: str

    def matches(self, actual: Any) -> bool:
        return _any_element(actual, str, lambda v: self.value in v)


@dataclass(frozen=True)
class Range:
    """`k=[min~max]`: inclusive bounds; `None` is an open side."""

    min: Bound | None = None
    max: Bound | None = None

    def matches(self, actual: Any) -> bool:
        bound = self.min if self.min is not None else self.max
        return _any_element(actual, _kind(bound), self._within)

    def _within(self, value: Any) -> bool:
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)


@dataclass(frozen=True)
class AnyOf:
    """`k={v1 v2}`: the field equals one of the values (a list field: shares at least one)."""

    values: tuple[Scalar, ...]

    def matches(self, actual: Any) -> bool:
        return _any_element(actual, _kind(self.values[0]), lambda v: v in self.values)


@dataclass(frozen=True)
class AllOf:
    """`k=(v1 v2)`: every value is present in the (usually multi-valued) field, e.g. tags or labels."""

    values: tuple[Scalar, ...]

    def matches(self, actual: Any) -> bool:
        if actual is None:
            return False
        kind = _kind(self.values[0])
        elements = actual if _is_multi(actual) else [actual]
        present = [c for c in (_coerce(e, kind) for e in elements) if c is not None]
        return all(v in present for v in self.values)


Term = Exact | Fuzzy | Range | AnyOf | AllOf


@dataclass(frozen=True)
class Query:
    """The parsed `q`: one term per key, all of which must match (terms are AND-ed, like Harbor)."""

    terms: dict[str, Term] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.terms

    def get(self, key: str) -> Term | None:
        return self.terms.get(key)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when every term matches; a missing or `None` field matches nothing (SQL NULL)."""
        return all(term.matches(record.get(key)) for key, term in self.terms.items())

    def filter(self, records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [r for r in records if self.matches(r)]


# ------------------------------------------------------------------------------------------ parsing


def parse_q(text: str | None, allowed: Mapping[str, type], *, max_length: int = MAX_Q_LENGTH) -> Query:
    """Parse a raw `q` (already URL-decoded once) against the keys an endpoint filters on.

    `allowed` maps each key to its value type: `str`, `int`, `bool` or `datetime`. For multi-valued
    fields (tags, labels) give the element type; the record then holds a list.
    """
    for key, kind in allowed.items():
        if kind not in _SUPPORTED_TYPES:
            raise TypeError(f"unsupported q value type {kind!r} for key {key!r}")
    if text is None or not text.strip():
        return Query()
    if len(text) > max_length:
        raise InvalidQuery(f"q is too long: {len(text)} characters, at most {max_length} are accepted")
    text = _unescape(text)
    terms: dict[str, Term] = {}
    for raw in _split(text, lambda c: c == ","):
        key, term = _parse_term(raw.strip(), allowed)
        if key in terms:
            raise InvalidQuery(f'q: key "{key}" is given more than once')
        terms[key] = term
    return Query(terms)


def _unescape(text: str) -> str:
    """Undo the portal's second encoding, as Harbor's `url.QueryUnescape` does.

    Only when a `%` escape shows a layer remains (and every `%` is a valid escape): Harbor also turns a
    bare `+` into a space, which would corrupt media types such as `application/vnd.oci.image.index.v1+json`.
    """
    if "%" in text and not _VALID_ESCAPES.search(text):
        return unquote_plus(text)
    return text


def _split(text: str, is_separator: Callable[[str], bool]) -> list[str]:
    """Split on separator characters that are outside double quotes and brackets; check balance."""
    parts: list[str] = []
    stack: list[str] = []
    quoted = False
    start = 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in _OPENERS:
            stack.append(char)
        elif char in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[char]:
                raise InvalidQuery(f"q: unbalanced {char!r} in {text!r}")
        elif not stack and is_separator(char):
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        raise InvalidQuery(f"q: unterminated double quote in {text!r}")
    if stack:
        raise InvalidQuery(f"q: unclosed {stack[-1]!r} in {text!r}")
    parts.append(text[start:])
    return parts


def _parse_term(raw: str, allowed: Mapping[str, type]) -> tuple[str, Term]:
    key, sep, value = raw.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise InvalidQuery(f'q: each term must be "key=value" with a non-empty key and value, got {raw!r}')
    if key not in allowed:
        names = ", ".join(sorted(allowed)) or "none"
        raise InvalidQuery(f'q: unknown key "{key}" (supported: {names})')
    return key, _parse_value(key, value, allowed[key])


def _parse_value(key: str, value: str, kind: type) -> Term:
    opener = value[0]
    if opener in _OPENERS:
        if value[-1] != _OPENERS[opener]:
            raise InvalidQuery(f'q: malformed value for "{key}": {value!r}')
        inner = value[1:-1]
        if any(c in _OPENERS or c in _CLOSERS for c in _outside_quotes(inner)):
            raise InvalidQuery(f'q: nested or repeated brackets are not supported in "{key}": {value!r}')
        if opener == "[":
            return _parse_range(key, inner, kind)
        values = tuple(_typed(key, token, kind) for token in _split(inner, str.isspace) if token)
        if not values:
            raise InvalidQuery(f'q: empty list for "{key}"')
        return AnyOf(values) if opener == "{" else AllOf(values)
    if opener == "~":
        if kind is not str:
            raise InvalidQuery(f'q: fuzzy match (~) is only supported on string keys, not "{key}"')
        fuzzy = _unquote(value[1:].strip())
        if not fuzzy:
            raise InvalidQuery(f'q: empty fuzzy match for "{key}"')
        return Fuzzy(fuzzy)
    return Exact(_typed(key, value, kind))


def _parse_range(key: str, inner: str, kind: type) -> Range:
    if kind not in (int, float, datetime):
        raise InvalidQuery(f'q: range is only supported on number and time keys, not "{key}"')
    sides = _split(inner, lambda c: c == "~")
    if len(sides) != 2:
        raise InvalidQuery(f'q: range for "{key}" must be [min~max], got [{inner}]')
    low, high = (side.strip() for side in sides)
    if not low and not high:
        raise InvalidQuery(f'q: range for "{key}" needs at least one bound')
    lo = _bound(key, low, kind) if low else None
    hi = _bound(key, high, kind) if high else None
    if lo is not None and hi is not None and lo > hi:  # type: ignore[operator]
        raise InvalidQuery(f'q: range for "{key}" has min greater than max')
    return Range(lo, hi)


def _bound(key: str, text: str, kind: type) -> Bound:
    value = _typed(key, text, kind)
    assert isinstance(value, int | float | datetime)
    return value


def _typed(key: str, token: str, kind: type) -> Scalar:
    """Convert one value to the key's type; a failure is the client's fault, so a 400."""
    text = _unquote(token.strip())
    if kind is str:
        return text
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise InvalidQuery(f'q: "{key}" expects true or false, got {text!r}')
    if kind is int:
        if _INT.fullmatch(text):
            return int(text)
        raise InvalidQuery(f'q: "{key}" expects an integer, got {text!r}')
    if kind is float:
        if _DECIMAL.fullmatch(text):
            return float(text)
        raise InvalidQuery(f'q: "{key}" expects a number, got {text!r}')
    parsed = _parse_time(text)
    if parsed is None:
        raise InvalidQuery(f'q: "{key}" expects a time like "2020-04-09 02:36:00", got {text!r}')
    return parsed


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _outside_quotes(text: str) -> str:
    return "".join(part for i, part in enumerate(text.split('"')) if i % 2 == 0)


def _parse_time(text: str) -> datetime | None:
    """Harbor's `2006-01-02 15:04:05` layout, or any ISO 8601 form; naive times are UTC."""
    if not text or not text[0].isdigit():
        return None
    if _PLUS_SEPARATED.fullmatch(text):  # a form-encoded space that nothing decoded
        text = text.replace("+", " ", 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --------------------------------------------------------------------------------------- evaluation


def _kind(value: Any) -> type:
    """The query-side type of a term value; checked in this order because bool is an int."""
    for kind in (bool, int, float, datetime, str):
        if isinstance(value, kind):
            return kind
    return str


def _is_multi(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def _any_element(actual: Any, kind: type, test: Callable[[Any], bool]) -> bool:
    """Apply `test` to the field (or to each element of a list field) after coercing to `kind`."""
    if actual is None:
        return False
    elements = actual if _is_multi(actual) else [actual]
    for element in elements:
        coerced = _coerce(element, kind)
        if coerced is not None and test(coerced):
            return True
    return False


def _coerce_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    return None


def _coerce_int(value: Any) -> int | float | Decimal | None:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def _coerce_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return _parse_time(value.strip()) if isinstance(value, str) else None


def _coerce_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_COERCERS: dict[type, Callable[[Any], Any]] = {
    bool: _coerce_bool,
    int: _coerce_int,
    float: _coerce_int,
    datetime: _coerce_time,
    str: _coerce_str,
}


def _coerce(value: Any, kind: type) -> Any:
    """Bring a stored value to the query's type (DynamoDB gives Decimals, ISO strings, "true"); None
    when it cannot be, which simply does not match."""
    coercer: Callable[[Any], Any] = _COERCERS.get(kind, _coerce_str)
    return coercer(value)
