"""GET /v2/, unknown endpoints and unsupported methods."""

from __future__ import annotations

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
