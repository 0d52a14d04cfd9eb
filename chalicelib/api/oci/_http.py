"""Small parsers and header builders shared by the /v2 handlers."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from chalicelib.errors import BlobUploadInvalid, PaginationInvalid

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


def page_size(value: str | None, maximum: int) -> int:
    """`n` of a paginated list: a non-negative integer, capped at `maximum` (the rest pages on)."""
    if value is None or value == "":
        return maximum
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise PaginationInvalid("n must be a non-negative integer", {"n": value[:20]})
    return min(int(value), maximum)


def next_link(path: str, limit: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": limit, "last": last})}>; rel="next"'


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{quote(upload_id)}"


def blob_location(name: str, digest: str) -> str:
    return f"/v2/{name}/blobs/{digest}"


def range_header(offset: int) -> str:
    return f"0-{max(offset - 1, 0)}"
