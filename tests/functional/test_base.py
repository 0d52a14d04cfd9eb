"""GET /v2/, unknown endpoints and unsupported methods."""

from __future__ import annotations

import pytest

from tests.functional.helpers import assert_error


def test_version_check(registry):
    response = registry.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert response.get_json() == {}


def test_version_check_without_slash(registry):
    response = registry.get("/v2")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_head_version_check(registry):
    response = registry.head("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/library/repo/unknown",
        "/v2/library/repo/blobs",
        "/v2/library/repo/manifests",
        "/v2/library/repo/tags",
        "/v2/library/repo/referrers",
        "/v2/library/repo/blobs/uploads/id/extra/more",
        "/v2/_catalog/extra",
        "/not-v2",
    ],
)
def test_unknown_endpoint_is_404(registry, path):
    response = registry.get(path)
    assert response.status_code == 404
    body = response.get_json(force=True)
    assert body["errors"][0]["code"] in ("UNSUPPORTED", "NOT_FOUND", "NAME_UNKNOWN")
    assert response.headers.get("Docker-Distribution-Api-Version", "registry/2.0") == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v2/library/repo/manifests/latest"),
        ("POST", "/v2/library/repo/manifests/latest"),
        ("POST", f"/v2/library/repo/blobs/{'sha256:' + 'a' * 64}"),
        ("PUT", f"/v2/library/repo/blobs/{'sha256:' + 'a' * 64}"),
        ("DELETE", "/v2/library/repo/tags/list"),
        ("PUT", "/v2/library/repo/tags/list"),
        ("GET", "/v2/library/repo/blobs/uploads/"),
        ("DELETE", "/v2/library/repo/blobs/uploads/"),
        ("POST", "/v2/library/repo/blobs/uploads/some-id"),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/library/repo/referrers/sha256:" + "a" * 64),
    ],
)
def test_wrong_method_is_405(registry, method, path):
    response = registry.request(method, path, data=b"{}")
    assert_error(response, 405, "UNSUPPORTED")
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_wrong_method_on_root(registry, method):
    response = registry.request(method, "/v2/")
    assert response.status_code == 405
    assert response.get_json(force=True)["errors"][0]["code"] == "UNSUPPORTED"


def test_error_responses_carry_request_id(registry):
    response = registry.get("/v2/library/repo/manifests/latest")
    assert response.status_code == 404
    assert response.headers["X-Request-Id"]
    assert response.headers["Content-Type"] == "application/json"
