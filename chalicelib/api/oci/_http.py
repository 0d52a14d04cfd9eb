"""Small parsers and header builders shared by the /v2 handlers."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from chalicelib.errors import PaginationInvalid


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
