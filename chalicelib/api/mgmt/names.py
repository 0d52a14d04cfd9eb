"""How Harbor path segments name things: double-encoded repository names and name-or-id lookups.

Repository names contain `/`, which cannot sit in one path segment, so Harbor clients encode the name
twice (`a/b` -> `a%252Fb`); the framework decodes once and leaves `a%2Fb`. Paths like
`{project_name_or_id}` take either a name or a numeric id, and `X-Is-Resource-Name: true` lets a client
whose project is literally called `123` say it means the name.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_DIGITS = re.compile(r"[0-9]+")
_MAX_DECODES = 2


def decode_repository_name(path_value: str) -> str:
    """Undo the client's second encoding; a plain name comes back unchanged.

    Decodes at most twice, so it also copes with a front end that did not decode at all. Valid
    repository names never contain `%`, so extra decoding cannot corrupt one; an invalid result is left
    for name validation to reject.
    """
    name = path_value
    for _ in range(_MAX_DECODES):
        if "%" not in name:
            break
        name = unquote(name)
    return name


def is_resource_name(value: str, header: str | None) -> bool:
    """True when `value` should be looked up as a name: the header says so, or it is not all digits."""
    if header is not None and header.strip().lower() == "true":
        return True
    return not _DIGITS.fullmatch(value)
