"""The functional suite's response check fails a test whose /api/v2.0 answer drifts from Harbor's model
(so a green run means every modelled answer parsed), and leaves other answers alone."""

from __future__ import annotations

import json

import pytest

from tests.functional.wire_check import DriftFromHarbor, check, unmodelled

T = "2026-01-02T03:04:05.000Z"
USER = {"user_id": 1, "username": "admin", "sysadmin_flag": True, "admin_role_in_auth": False,
        "creation_time": T, "update_time": T}  # fmt: skip


def _check(method: str, path: str, document: object, status: int = 200, content_type: str = "application/json") -> None:
    check(method, path, status, content_type, json.dumps(document).encode())


def test_a_conforming_answer_passes() -> None:
    _check("GET", "/api/v2.0/users/current", USER)
    _check("GET", "/api/v2.0/users", [USER, USER])


@pytest.mark.parametrize(
    ("path", "document", "names"),
    [
        ("/api/v2.0/users/current", {**USER, "comment": ""}, "comment"),
        ("/api/v2.0/users", [USER, {**USER, "creation_time": 1}], "creation_time"),
        ("/api/v2.0/users", USER, "JSON array"),
        ("/api/v2.0/quotas/1", {"id": 1, "hard": {}, "used": {}, "creation_time": T, "update_time": T, "x": 1}, "x"),
    ],
)
def test_a_drifting_answer_fails_naming_the_route_and_field(path: str, document: object, names: str) -> None:
    with pytest.raises(DriftFromHarbor, match=names):
        _check("GET", path, document)


def test_errors_other_media_types_and_unmodelled_routes_are_not_checked() -> None:
    _check("GET", "/api/v2.0/users/current", {"errors": [{"code": "NOT_FOUND", "message": "x"}]}, status=404)
    _check("GET", "/api/v2.0/users/current", {"comment": ""}, content_type="text/plain")
    before = unmodelled["GET /projects/p/metadatas"]
    _check("GET", "/api/v2.0/projects/p/metadatas", {"public": "true"})
    assert unmodelled["GET /projects/p/metadatas"] == before + 1


def test_a_configuration_item_of_the_wrong_type_is_drift() -> None:
    _check("GET", "/api/v2.0/configurations", {"token_expiration": {"value": 30, "editable": True}})
    with pytest.raises(DriftFromHarbor, match="token_expiration"):
        _check("GET", "/api/v2.0/configurations", {"token_expiration": {"value": "30", "editable": True}})
