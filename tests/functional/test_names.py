"""Repository names: the grammar on every route, deep names, and names that look like routes."""

from __future__ import annotations

import pytest
import requests

from tests.functional.helpers import assert_error, digest_of, random_bytes

DIGEST = "sha256:" + "a" * 64
INVALID_NAMES = [
    "Library/Upper",
    "UPPER",
    "a//b",
    "trailing-",
    "trailing/-",
    "-leading",
    "_leading",
    "a..b",
    "a/./b",
    "a/../b",
    "sp ace",
    "semi;colon",
    "a" * 256,
    "/".join(["abcdefghij"] * 23) + "/abc",
]
ROUTES = [
    ("GET", "/v2/{name}/tags/list"),
    ("GET", "/v2/{name}/manifests/latest"),
    ("HEAD", "/v2/{name}/manifests/latest"),
    ("PUT", "/v2/{name}/manifests/latest"),
    ("DELETE", "/v2/{name}/manifests/latest"),
    ("GET", "/v2/{name}/blobs/" + DIGEST),
    ("HEAD", "/v2/{name}/blobs/" + DIGEST),
    ("DELETE", "/v2/{name}/blobs/" + DIGEST),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("GET", "/v2/{name}/blobs/uploads/some-id"),
    ("PATCH", "/v2/{name}/blobs/uploads/some-id"),
    ("PUT", "/v2/{name}/blobs/uploads/some-id"),
    ("DELETE", "/v2/{name}/blobs/uploads/some-id"),
    ("GET", "/v2/{name}/referrers/" + DIGEST),
]


def test_invalid_names_are_long_enough():
    assert len(INVALID_NAMES[-1]) == 256


def _assert_name_invalid(registry, name: str, method: str, route: str) -> None:
    from urllib.parse import quote

    path = route.format(name=quote(name, safe="/"))
    response = registry.request(method, path, data=b"{}", query_string={"digest": DIGEST})
    assert response.status_code == 400, (path, response.status_code, response.get_data()[:200])
    if method != "HEAD":
        assert_error(response, 400, "NAME_INVALID")


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_name_is_400_on_every_route(registry, name):
    for method, route in ROUTES:
        _assert_name_invalid(registry, name, method, route)


@pytest.mark.parametrize("name", ["Library/Upper", "a//b", "trailing-", "a" * 256])
def test_invalid_name_leaves_nothing_behind(registry, name):
    data = b"payload"
    registry.post(f"/v2/{name}/blobs/uploads/", query_string={"digest": digest_of(data)}, data=data)
    assert registry.get("/v2/_catalog").get_json()["repositories"] == []
    assert registry.object_keys() == []


def _longest_deep_name() -> str:
    name = "library/" + "/".join(["abcdefghij"] * 22)
    return name + "/" + "a" * (255 - len(name) - 1)


@pytest.mark.parametrize(
    "name",
    [
        "library/b/c/d",
        "library/b0/c-d/e_f/g__h/i.j/k--l",
        _longest_deep_name(),
        # Names whose components look like route words.
        "library/blobs",
        "library/manifests/x",
        "library/tags/list/x",
        "library/blobs/uploads",
        "library/referrers/b",
        "library/v2/catalog",
    ],
)
def test_valid_names_work_everywhere(registry, name):
    assert len(name) <= 255
    assert name != _longest_deep_name() or len(name) == 255
    data = random_bytes(100)
    blob = registry.push_blob_chunked(name, data, 40)
    head = registry.head(f"/v2/{name}/blobs/{blob}")
    assert head.status_code == 200 and head.headers["Content-Length"] == "100"
    get = registry.get(f"/v2/{name}/blobs/{blob}")
    assert get.status_code == 307
    assert requests.get(get.headers["Location"], timeout=30).content == data
    upload = registry.start_upload(name)
    assert upload.headers["Location"].startswith(f"/v2/{name}/blobs/uploads/")
    assert registry.get(upload.headers["Location"]).status_code == 204
    assert registry.delete(upload.headers["Location"]).status_code == 204

    digest, body = registry.push_image(name, "v1")
    for reference in ("v1", digest):
        response = registry.get(f"/v2/{name}/manifests/{reference}")
        assert response.status_code == 200
        assert response.get_data() == body
    assert registry.tags(name).get_json() == {"name": name, "tags": ["v1"]}
    assert name in registry.get("/v2/_catalog").get_json()["repositories"]
    referrers = registry.get(f"/v2/{name}/referrers/{digest}")
    assert referrers.status_code == 200
    assert referrers.get_json()["manifests"] == []

    mounted = registry.post("/v2/library/other/blobs/uploads/", query_string={"mount": blob, "from": name})
    assert mounted.status_code == 201
    assert registry.delete(f"/v2/{name}/manifests/v1").status_code == 202
    assert registry.delete(f"/v2/{name}/manifests/{digest}").status_code == 202
    assert registry.delete(f"/v2/{name}/blobs/{blob}").status_code == 202
    assert registry.head(f"/v2/{name}/blobs/{blob}").status_code == 404


def test_similar_names_are_distinct(registry):
    registry.push_image("library/b", "one")
    registry.push_image("library/b/c", "two")
    registry.push_image("library/bc", "three")
    assert registry.tag_names("library/b") == ["one"]
    assert registry.tag_names("library/b/c") == ["two"]
    assert registry.tag_names("library/bc") == ["three"]
    assert_error(registry.get("/v2/library/manifests/one"), 404, "MANIFEST_UNKNOWN")
