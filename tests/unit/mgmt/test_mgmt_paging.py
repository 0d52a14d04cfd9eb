"""page/page_size validation, sort parsing and application, slicing, and the list response headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib.api.mgmt.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    apply_sort,
    page_headers,
    paginate,
    parse_page,
    parse_sort,
)
from chalicelib.api.mgmt.query import InvalidQuery
from chalicelib.errors import ErrorCode

# ------------------------------------------------------------------------------------------ paging


@pytest.mark.parametrize(
    ("page", "page_size", "expected"),
    [
        (None, None, Page(1, DEFAULT_PAGE_SIZE)),
        ("", "", Page(1, 10)),
        ("1", "10", Page(1, 10)),
        ("3", "25", Page(3, 25)),
        (" 2 ", " 5 ", Page(2, 5)),
        ("+2", None, Page(2, 10)),
        (None, "1", Page(1, 1)),
        (None, str(MAX_PAGE_SIZE), Page(1, 100)),
        ("1000000", "100", Page(1000000, 100)),
    ],
)
def test_parse_page_valid(page: str | None, page_size: str | None, expected: Page) -> None:
    assert parse_page(page, page_size) == expected


@pytest.mark.parametrize(
    ("page", "page_size", "fragment"),
    [
        ("0", None, "page must be 1 or greater"),
        ("-1", None, "page must be 1 or greater"),
        ("abc", None, "page must be an integer"),
        ("1.5", None, "page must be an integer"),
        ("1e3", None, "page must be an integer"),
        (None, "0", "page_size must be between 1 and 100"),
        (None, "-5", "page_size must be between 1 and 100"),
        (None, "101", "page_size must be between 1 and 100"),
        (None, "ten", "page_size must be an integer"),
    ],
)
def test_parse_page_invalid(page: str | None, page_size: str | None, fragment: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_page(page, page_size)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert caught.value.http_status == 400
    assert fragment in caught.value.message


def test_parse_page_custom_limits() -> None:
    assert parse_page(None, None, default_size=15) == Page(1, 15)
    assert parse_page(None, "500", max_size=500) == Page(1, 500)
    with pytest.raises(InvalidQuery, match="between 1 and 20"):
        parse_page(None, "21", max_size=20)


@pytest.mark.parametrize(("page", "offset"), [(Page(1, 10), 0), (Page(2, 10), 10), (Page(5, 3), 12)])
def test_offset(page: Page, offset: int) -> None:
    assert page.offset == offset


def test_paginate() -> None:
    items = list(range(25))
    assert paginate(items, Page(1, 10)) == list(range(10))
    assert paginate(items, Page(3, 10)) == [20, 21, 22, 23, 24]
    assert paginate(items, Page(4, 10)) == []
    assert paginate((), Page(1, 10)) == []


# ------------------------------------------------------------------------------------------- sort

SORTABLE = {"name", "creation_time", "size"}


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (None, []),
        ("", []),
        ("name", [("name", False)]),
        ("-name", [("name", True)]),
        ("+name", [("name", False)]),
        ("name,-creation_time", [("name", False), ("creation_time", True)]),
        (" -size , name ", [("size", True), ("name", False)]),
        ("name,", [("name", False)]),
    ],
)
def test_parse_sort(sort: str | None, expected: list[tuple[str, bool]]) -> None:
    assert parse_sort(sort, SORTABLE) == expected


@pytest.mark.parametrize(
    ("sort", "fragment"),
    [
        ("colour", 'unknown field "colour" (supported: creation_time, name, size)'),
        ("name,-bogus", '"bogus"'),
        ("-", 'unknown field ""'),
        ("name,-name", "more than once"),
    ],
)
def test_parse_sort_invalid(sort: str, fragment: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_sort(sort, SORTABLE)
    assert caught.value.http_status == 400
    assert fragment in caught.value.message


ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "b", "size": 3},
    {"id": 2, "name": "a", "size": None},
    {"id": 3, "name": "c", "size": 3},
    {"id": 4, "name": "a", "size": 1},
    {"id": 5, "name": None, "size": 2},
    {"id": 6, "name": "b"},
]


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([], [1, 2, 3, 4, 5, 6]),
        ([("name", False)], [2, 4, 1, 6, 3, 5]),  # ties keep input order, None last
        ([("name", True)], [3, 1, 6, 2, 4, 5]),  # descending is still stable, None still last
        ([("size", False)], [4, 5, 1, 3, 2, 6]),  # missing counts as None
        ([("size", True)], [1, 3, 5, 4, 2, 6]),
        ([("name", False), ("size", True)], [4, 2, 1, 6, 3, 5]),
        ([("size", False), ("name", True)], [4, 5, 3, 1, 6, 2]),  # secondary key orders the None group too
        ([("name", True), ("size", False)], [3, 1, 6, 4, 2, 5]),
    ],
)
def test_apply_sort(spec: list[tuple[str, bool]], expected: list[int]) -> None:
    original = [dict(r) for r in ROWS]
    assert _ids(apply_sort(ROWS, spec)) == expected
    assert original == ROWS  # input untouched


def test_apply_sort_with_parsed_spec() -> None:
    assert _ids(apply_sort(ROWS, parse_sort("-size,name", {"size", "name"}))) == [1, 3, 5, 4, 2, 6]


# ---------------------------------------------------------------------------------------- headers

BASE = "/api/v2.0/projects/library/repositories/a%252Fb/artifacts"


def _links(header: str) -> dict[str, dict[str, str]]:
    """rel -> parsed query of that link, asserting the RFC 5988 shape on the way."""
    links: dict[str, dict[str, str]] = {}
    for part in header.split(", "):
        target, rel = part.split("; ")
        assert target.startswith("<")
        assert target.endswith(">")
        url = urlsplit(target[1:-1])
        assert url.path == BASE
        links[rel.removeprefix('rel="').removesuffix('"')] = dict(parse_qsl(url.query))
    return links


def test_first_page_has_only_next() -> None:
    headers = page_headers(BASE, {}, Page(1, 10), 25)
    assert headers["X-Total-Count"] == "25"
    assert headers["Link"] == f'<{BASE}?page=2&page_size=10>; rel="next"'


def test_middle_page_has_prev_and_next_in_one_header() -> None:
    headers = page_headers(BASE, {"page": "2", "page_size": "10"}, Page(2, 10), 25)
    assert headers["Link"] == f'<{BASE}?page=1&page_size=10>; rel="prev", <{BASE}?page=3&page_size=10>; rel="next"'


def test_last_page_has_only_prev() -> None:
    headers = page_headers(BASE, {"page": "3"}, Page(3, 10), 25)
    assert headers == {"X-Total-Count": "25", "Link": f'<{BASE}?page=2&page_size=10>; rel="prev"'}


def test_exactly_full_last_page_has_no_next() -> None:
    assert page_headers(BASE, {}, Page(2, 10), 20)["Link"] == f'<{BASE}?page=1&page_size=10>; rel="prev"'


@pytest.mark.parametrize(
    ("page", "total"),
    [(Page(1, 10), 0), (Page(1, 10), 10), (Page(1, 100), 3), (Page(5, 10), 25), (Page(4, 10), 30)],
)
def test_no_link_when_single_page_or_past_end(page: Page, total: int) -> None:
    assert page_headers(BASE, {}, page, total) == {"X-Total-Count": str(total)}


def test_other_params_are_preserved_and_encoded() -> None:
    params = {"q": 'name=~ng,tags=(v1 v2),push_time=[~"2020-04-09 02:36:00"]', "sort": "-push_time", "with_tag": "true"}
    headers = page_headers(BASE, {**params, "page": "2", "page_size": "5"}, Page(2, 5), 100)
    links = _links(headers["Link"])
    assert set(links) == {"prev", "next"}
    assert links["prev"] == {**params, "page": "1", "page_size": "5"}
    assert links["next"] == {**params, "page": "3", "page_size": "5"}
    assert " " not in headers["Link"].replace(", <", "").replace("; rel", "")  # values are escaped
    # keys are sorted, like Go's url.Values.Encode in Harbor
    next_query = headers["Link"].split("<")[2].split(">")[0].split("?", 1)[1]
    assert [kv.split("=")[0] for kv in next_query.split("&")] == ["page", "page_size", "q", "sort", "with_tag"]


def test_page_size_default_is_written_into_links() -> None:
    links = _links(page_headers(BASE, {"q": "name=x"}, Page(1, 10), 11)["Link"])
    assert links == {"next": {"q": "name=x", "page": "2", "page_size": "10"}}
