"""Bootstrap and system endpoints: admin, `library`, ping, systeminfo, statistics, health."""

from __future__ import annotations

from tests.functional.identity.identity_support import (
    ADMIN,
    PASSWORD,
    expect_error,
    expect_status,
)


def test_admin_logs_in_on_v2_and_api(harbor):
    expect_status(harbor.get("/v2/", auth=ADMIN), 200)
    me = expect_status(harbor.get("users/current"), 200).get_json()
    assert me["username"] == "admin"
    assert me["sysadmin_flag"] is True
    assert isinstance(me["user_id"], int)


def test_wrong_admin_password_is_401_everywhere(harbor):
    bad = ("admin", "not-the-password")
    response = harbor.get("/v2/", auth=bad)
    expect_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
    expect_error(harbor.get("users/current", auth=bad), 401, "UNAUTHORIZED")
    expect_error(harbor.token_response(["repository:library/x:pull"], auth=bad), 401, "UNAUTHORIZED")


def test_library_exists_and_is_public(harbor):
    expect_status(harbor.head("projects", query={"project_name": "library"}), 200)
    project = expect_status(harbor.get("projects/library"), 200).get_json()
    assert project["name"] == "library"
    assert project["metadata"]["public"] == "true"
    assert project["owner_name"] == "admin"
    # Anonymous callers can read a public project.
    anonymous = expect_status(harbor.get("projects/library", auth=None), 200).get_json()
    assert anonymous["project_id"] == project["project_id"]
    listed = expect_status(harbor.get("projects", auth=None), 200).get_json()
    assert "library" in [p["name"] for p in listed]


def test_ping(harbor):
    for auth in (None, ADMIN):
        response = expect_status(harbor.get("ping", auth=auth), 200)
        assert response.get_data() == b"Pong"


def test_systeminfo_anonymous_and_logged_in(harbor):
    anonymous = expect_status(harbor.get("systeminfo", auth=None), 200).get_json()
    assert anonymous["auth_mode"] == "db_auth"
    assert "banner_message" in anonymous  # Harbor's login page shows it
    assert "external_url" not in anonymous and "registry_url" not in anonymous and "harbor_version" not in anonymous
    logged_in = expect_status(harbor.get("systeminfo"), 200).get_json()
    for key in (
        "auth_mode",
        "harbor_version",
        "project_creation_restriction",
        "self_registration",
        "read_only",
        "external_url",
        "registry_url",
        "registry_storage_provider_name",
    ):
        assert key in logged_in, key
    assert logged_in["project_creation_restriction"] in ("everyone", "adminonly")
    assert logged_in["external_url"].startswith("http")
    assert "://" not in logged_in["registry_url"]


def test_statistics(harbor):
    expect_error(harbor.get("statistics", auth=None), 401, "UNAUTHORIZED")
    private, _ = harbor.create_project(public=False)
    harbor.push_image(f"{private}/app")
    stats = expect_status(harbor.get("statistics"), 200).get_json()
    for key in (
        "private_project_count",
        "private_repo_count",
        "public_project_count",
        "public_repo_count",
        "total_project_count",
        "total_repo_count",
        "total_storage_consumption",
    ):
        assert isinstance(stats[key], int), key
    assert stats["total_project_count"] == stats["private_project_count"] + stats["public_project_count"]
    assert stats["total_repo_count"] == stats["private_repo_count"] + stats["public_repo_count"]
    assert stats["private_project_count"] >= 1 and stats["public_project_count"] >= 1  # ours and library
    assert stats["private_repo_count"] >= 1
    assert stats["total_storage_consumption"] > 0

    # A normal user sees only what they can see (library), and a storage figure of 0 (Harbor's model
    # always writes the field; only administrators get the sum).
    user, _ = harbor.create_user()
    mine = expect_status(harbor.get("statistics", auth=(user, PASSWORD)), 200).get_json()
    assert mine["private_project_count"] == 0
    assert mine["public_project_count"] >= 1
    assert mine["total_storage_consumption"] == 0


def test_health(harbor):
    body = expect_status(harbor.get("health", auth=None), 200).get_json()
    assert body["status"] == "healthy"
    assert body["components"], body
    for component in body["components"]:
        assert set(component) >= {"name", "status"}
        assert component["status"] == "healthy"
