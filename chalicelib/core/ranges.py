"""Upload byte ranges on the wire, shared by the app's upload routes and the relay."""

from __future__ import annotations

import re

from chalicelib.errors import BlobUploadInvalid

# `<start>-<end>`, with or without a `bytes ` or `bytes=` prefix (clients differ), and an optional `/<size>`.
# ASCII digits, at most 18 (int64): `\d` takes any script's digits, and 5,000 of them made int() raise.
_RANGE_RE = re.compile(r"^(?:bytes[ =])?([0-9]{1,18})-([0-9]{1,18})(?:/(?:[0-9]{1,18}|\*))?$")


def content_range(value: str | None) -> tuple[int, int] | None:
    """Parse `<start>-<end>` (inclusive); a malformed header is BLOB_UPLOAD_INVALID."""
    if value is None or value == "":
        return None
    match = _RANGE_RE.fullmatch(value.strip())
    if not match or int(match[2]) < int(match[1]):
        raise BlobUploadInvalid("malformed Content-Range; expected <start>-<end>", {"Content-Range": value[:100]})
    return int(match[1]), int(match[2])


def range_header(offset: int) -> str:
    """The `Range` an upload session answers with: the bytes it holds (`0-0` when empty, as distribution)."""
    return f"0-{max(offset - 1, 0)}"
