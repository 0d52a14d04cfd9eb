"""Tags list and catalog over HTTP: lexical order, `n`/`last` paging and the `Link` header."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.functional.helpers import OCI_MANIFEST, assert_error

REPO = "library/discovery"
TAGS = ["b", "a", "C", "10", "9", "a-1", "a_1", "a.1", "Z", "latest"]
LINK_RE = re.compile(r'^<(?P<url>/v2/[^>]+)>; rel="next"$')


def _tagged(registry, repo: str, tags: list[str]) -> None:
    _, body = registry.push_image(repo, tags[0], layers=0)
    for tag in tags[1:]:
        registry.push_manifest(repo, tag, body, OCI_MANIFEST)


def _next(response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK_RE.match(link)
    assert match, link
    return match["url"]


def _walk(registry, url: str, key: str) -> tuple[list[str], list[int]]:
    """Follow `Link` headers from `url`; returns every entry and each page's size."""
    seen: list[str] = []
    sizes: list[int] = []
    next_url: str | None = url
    while next_url is not None:
        response = registry.get(next_url)
        assert response.status_code == 200, response.get_data()
        page = response.get_json()[key]
        seen.extend(page)
        sizes.append(len(page))
        next_url = _next(response)
        assert len(sizes) < 50
    return seen, sizes


class TestTagsList:
    @pytest.fixture(autouse=True)
    def _tags(self, registry):
        _tagged(registry, REPO, TAGS)

    def test_all_tags_in_lexical_order(self, registry):
        response = registry.tags(REPO)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.get_json() == {"name": REPO, "tags": sorted(TAGS)}
        assert "Link" not in response.headers

    def test_paging_with_link(self, registry):
        response = registry.tags(REPO, n="3")
        assert response.get_json()["tags"] == sorted(TAGS)[:3]
        url = _next(response)
        assert url is not None
        parts = urlsplit(url)
        assert parts.path == f"/v2/{REPO}/tags/list"
        assert parse_qs(parts.query) == {"n": ["3"], "last": [sorted(TAGS)[2]]}
        seen, sizes = _walk(registry, f"/v2/{REPO}/tags/list?n=3", "tags")
        assert seen == sorted(TAGS)
        assert sizes == [3, 3, 3, 1]

    def test_no_link_when_the_page_ends_exactly(self, registry):
        seen, sizes = _walk(registry, f"/v2/{REPO}/tags/list?n=5", "tags")
        assert seen == sorted(TAGS)
        assert sizes == [5, 5]

    def test_n_larger_than_the_list(self, registry):
        response = registry.tags(REPO, n="1000")
        assert response.get_json()["tags"] == sorted(TAGS)
        assert "Link" not in response.headers

    def test_n_zero_is_empty(self, registry):
        response = registry.tags(REPO, n="0")
        assert response.status_code == 200
        assert response.get_json()["tags"] == []
        assert "Link" not in response.headers

    def test_last_alone(self, registry):
        response = registry.tags(REPO, last="a")
        assert response.get_json()["tags"] == [t for t in sorted(TAGS) if t > "a"]

    def test_last_that_is_not_a_tag(self, registry):
        response = registry.tags(REPO, n="2", last="a0")
        assert response.get_json()["tags"] == [t for t in sorted(TAGS) if t > "a0"][:2]

    def test_last_after_everything(self, registry):
        response = registry.tags(REPO, last="zzz")
        assert response.get_json()["tags"] == []
        assert "Link" not in response.headers

    @pytest.mark.parametrize("n", ["-1", "abc", "1.5", " ", "0x10"])
    def test_invalid_n(self, registry, n):
        assert_error(registry.tags(REPO, n=n), 400, "PAGINATION_NUMBER_INVALID")

    def test_deleted_tag_disappears(self, registry):
        assert registry.delete(f"/v2/{REPO}/manifests/b").status_code == 202
        assert registry.tag_names(REPO) == sorted(t for t in TAGS if t != "b")

    def test_tags_of_one_repository_only(self, registry):
        _tagged(registry, f"{REPO}/sub", ["only"])
        _tagged(registry, "library/discoverz", ["other"])
        assert registry.tag_names(REPO) == sorted(TAGS)
        assert registry.tag_names(f"{REPO}/sub") == ["only"]


def test_unknown_repository_tags(registry):
    assert_error(registry.tags("library/never"), 404, "NAME_UNKNOWN")


def test_repository_with_only_blobs_has_no_tags(registry):
    registry.push_blob("library/blobs-only", b"data")
    response = registry.tags("library/blobs-only")
    if response.status_code == 200:
        assert response.get_json()["tags"] == []
    else:
        assert_error(response, 404, "NAME_UNKNOWN")


def test_repository_with_untagged_manifest(registry):
    registry.push_image("library/untagged")
    response = registry.tags("library/untagged")
    assert response.status_code == 200
    assert response.get_json() == {"name": "library/untagged", "tags": []}


class TestCatalog:
    NAMES = tuple(
        f"library/{n}" for n in ("zeta", "alpha/one", "alpha/two", "alpha", "beta/a/b/c", "b-c", "b_c", "b.c")
    )

    @pytest.fixture(autouse=True)
    def _repos(self, registry):
        for name in self.NAMES:
            registry.push_image(name, "v1", layers=0)

    def test_catalog_in_lexical_order(self, registry):
        response = registry.get("/v2/_catalog")
        assert response.status_code == 200
        assert response.get_json() == {"repositories": sorted(self.NAMES)}
        assert "Link" not in response.headers

    def test_catalog_paging(self, registry):
        response = registry.get("/v2/_catalog", query_string={"n": "3"})
        assert response.get_json()["repositories"] == sorted(self.NAMES)[:3]
        url = _next(response)
        assert url is not None
        parts = urlsplit(url)
        assert parts.path == "/v2/_catalog"
        assert parse_qs(parts.query) == {"n": ["3"], "last": [sorted(self.NAMES)[2]]}
        seen, sizes = _walk(registry, "/v2/_catalog?n=3", "repositories")
        assert seen == sorted(self.NAMES)
        assert sizes == [3, 3, 2]

    def test_catalog_page_ends_exactly(self, registry):
        _, sizes = _walk(registry, "/v2/_catalog?n=4", "repositories")
        assert sizes == [4, 4]

    def test_catalog_last(self, registry):
        response = registry.get("/v2/_catalog", query_string={"last": "library/alpha/two"})
        assert response.get_json()["repositories"] == [n for n in sorted(self.NAMES) if n > "library/alpha/two"]

    def test_catalog_n_zero(self, registry):
        response = registry.get("/v2/_catalog", query_string={"n": "0"})
        assert response.status_code == 200
        assert response.get_json()["repositories"] == []
        assert "Link" not in response.headers

    @pytest.mark.parametrize("n", ["-1", "abc"])
    def test_catalog_invalid_n(self, registry, n):
        assert_error(registry.get("/v2/_catalog", query_string={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


def test_empty_catalog(registry):
    response = registry.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.get_json() == {"repositories": []}
