"""Harbor list conventions shared by every /api/v2.0 list endpoint: `page`, `page_size`, `sort`, and the
`X-Total-Count` / RFC 5988 `Link` response headers.

Harbor clients (the portal, harbor-cli, Terraform's provider) walk lists by following `Link: rel="next"`
and size their views from `X-Total-Count`, so every endpoint must emit them identically; keeping the
validation and header building here means a handler only lists, filters, sorts and slices.

Bad values are 400s (`InvalidQuery`), never silently clamped: a client asking for 500 items that gets
100 back would otherwise stop paging early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from chalicelib.api.mgmt.query import InvalidQuery

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100

T = TypeVar("T")
M = TypeVar("M", bound=Mapping[str, Any])
SortSpec = list[tuple[str, bool]]
"""`(field, descending)` pairs, most significant first."""

_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Page:
    """A validated page request; `page` counts from 1."""

    page: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def parse_page(
    page: str | None,
    page_size: str | None,
    *,
    default_size: int = DEFAULT_PAGE_SIZE,
    max_size: int = MAX_PAGE_SIZE,
) -> Page:
    """Validate `page` (default 1, at least 1) and `page_size` (default `default_size`, 1..`max_size`)."""
    number = _integer("page", page, 1)
    size = _integer("page_size", page_size, default_size)
    if number < 1:
        raise InvalidQuery(f"page must be 1 or greater, got {number}")
    if not 1 <= size <= max_size:
        raise InvalidQuery(f"page_size must be between 1 and {max_size}, got {size}")
    return Page(number, size)


def _integer(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    if not _INT.fullmatch(raw.strip()) or len(raw.strip()) > 18:
        raise InvalidQuery(f"{name} must be an integer of at most 18 digits, got {raw[:32]!r}")
    return int(raw)


def parse_sort(sort: str | None, allowed: Iterable[str]) -> SortSpec:
    """Parse `sort=field1,-field2`: a leading `-` sorts descending (`+`, or none, ascending)."""
    names = set(allowed)
    spec: SortSpec = []
    seen: set[str] = set()
    for part in (sort or "").split(","):
        item = part.strip()
        if not item:
            continue
        descending = item.startswith("-")
        name = item.lstrip("+-").strip()
        if name not in names:
            supported = ", ".join(sorted(names)) or "none"
            raise InvalidQuery(f'sort: unknown field "{name}" (supported: {supported})')
        if name in seen:
            raise InvalidQuery(f'sort: field "{name}" is given more than once')
        seen.add(name)
        spec.append((name, descending))
    return spec


def apply_sort(records: Iterable[M], sort_spec: Sequence[tuple[str, bool]]) -> list[M]:
    """Stable multi-key sort of dicts; missing or `None` values go last in either direction."""
    result = list(records)
    for name, descending in reversed(sort_spec):
        present = [r for r in result if r.get(name) is not None]
        absent = [r for r in result if r.get(name) is None]
        present.sort(key=lambda r: r[name], reverse=descending)
        result = present + absent
    return result


def paginate(records: Sequence[T], page: Page) -> list[T]:
    """The records on `page`; past the end, an empty list."""
    return list(records[page.offset : page.offset + page.size])


def page_headers(base_path: str, query_params: Mapping[str, str], page: Page, total: int) -> dict[str, str]:
    """`X-Total-Count`, plus a `Link` header with `rel="prev"` and/or `rel="next"` when they exist.

    Follows Harbor's rules: `prev` only from a page after the first that still holds items (none past the
    end), `next` while items remain after this page.
    Other query parameters (q, sort, ...) are kept; `page` and `page_size` are replaced; keys are sorted
    like Go's `url.Values.Encode`. `base_path` is emitted verbatim, so pass it still encoded.
    """
    headers = {"X-Total-Count": str(total)}
    links = []
    if page.page > 1 and page.offset < total:
        links.append(f'<{_page_url(base_path, query_params, page.page - 1, page.size)}>; rel="prev"')
    if page.page * page.size < total:
        links.append(f'<{_page_url(base_path, query_params, page.page + 1, page.size)}>; rel="next"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers


def _page_url(base_path: str, query_params: Mapping[str, str], number: int, size: int) -> str:
    params = {k: v for k, v in query_params.items() if k not in ("page", "page_size")}
    params["page"] = str(number)
    params["page_size"] = str(size)
    return f"{base_path}?{urlencode(sorted(params.items()))}"
