"""The one parser of JSON that arrives from outside: request bodies, manifests, cursors.

`json.loads` alone lets a hostile document through to code that was never meant to meet it:
100,000 nested brackets raise RecursionError (not a ValueError), a 5,000-digit number raises the
interpreter's int-conversion ValueError, `1e999` becomes infinity and `NaN` is accepted. Each ended as
a 500. Here every one of them is a `JsonInvalid` (a ValueError), which each edge turns into its own
400, and what is returned is bounded: at most `MAX_DEPTH` levels, integers of at most
`MAX_INTEGER_DIGITS` digits (int64 has 19), finite floats, and strings that are Unicode text.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_INTEGER_DIGITS = 20


class JsonInvalid(ValueError):
    """The document is not JSON, or exceeds a bound; the message says which, for a 400."""


def loads(data: bytes | str) -> Any:
    """Parse strict JSON (UTF-8) within the bounds above, or raise JsonInvalid."""
    try:
        value = json.loads(data, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonInvalid(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except JsonInvalid:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonInvalid(f"not valid JSON: {str(exc)[:200]}") from None
    _check(value)
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonInvalid(f"JSON number longer than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 64:
        raise JsonInvalid("JSON number longer than 64 characters")
    value = float(text)
    if not math.isfinite(value):
        raise JsonInvalid("JSON number out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonInvalid(f"{name} is not JSON")


def _check(value: Any) -> None:
    """Refuse a document deeper than MAX_DEPTH, or holding a string that is no Unicode text (a lone
    surrogate such as `"\\ud800"` parses, then fails wherever it is encoded: a database write, a
    log line). Iterative: the check itself must not recurse."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            _text(node)
            continue
        if isinstance(node, dict):
            for key in node:
                _text(key)
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        for child in children:
            if isinstance(child, dict | list) and depth >= MAX_DEPTH:
                raise JsonInvalid(f"JSON nested deeper than {MAX_DEPTH} levels")
            pending.append((child, depth + 1))


def _text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInvalid("JSON string is not valid Unicode (a lone surrogate)") from None
