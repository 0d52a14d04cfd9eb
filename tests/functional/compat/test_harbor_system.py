"""Harbor's own clients against the registry (issue 16, items 9-12): the banner message, the
extended audit log, the GC job log's wording and the vulnerabilities addition of an unscanned image."""

from __future__ import annotations

import json

from tests.functional.catalogue.rules_support import (
    api,
    create_project,
    create_user,
    expect,
    harbor_error,
    member,
    small_image,
)
from tests.functional.helpers import OCI_MANIFEST

BANNER = json.dumps({"closable": True, "message": "maintenance at noon", "type": "warning",
                     "fromDate": "06/19/2026", "toDate": "06/21/2026"})  # fmt: skip


# 9. Banner message.


def test_banner_message_is_stored_and_shown_by_systeminfo(registry):
    before = expect(api(registry, "GET", "/systeminfo", auth=None), 200).get_json()
    assert before["banner_message"] == ""
    expect(api(registry, "PUT", "/configurations", json={"banner_message": BANNER}), 200)
    configured = expect(api(registry, "GET", "/configurations"), 200).get_json()
    assert configured["banner_message"] == {"value": BANNER, "editable": True}
    for auth in (None, create_user(registry), "default"):  # the login page shows it too
        info = expect(api(registry, "GET", "/systeminfo", auth=auth), 200).get_json()
        assert info["banner_message"] == BANNER
    expect(api(registry, "PUT", "/configurations", json={"banner_message": ""}), 200)
    assert expect(api(registry, "GET", "/systeminfo"), 200).get_json()["banner_message"] == ""


def test_banner_message_must_be_a_bounded_string(registry):
    for value in (5, {"message": "x"}, "x" * 5000):
        harbor_error(api(registry, "PUT", "/configurations", json={"banner_message": value}), 400, "BAD_REQUEST")
    assert expect(api(registry, "GET", "/systeminfo"), 200).get_json()["banner_message"] == ""


def test_systeminfo_gives_anonymous_callers_only_the_login_fields(registry):
    anonymous = expect(api(registry, "GET", "/systeminfo", auth=None), 200).get_json()
    assert set(anonymous) == {"auth_mode", "primary_auth_mode", "self_registration", "banner_message",
                              "oidc_provider_name"}  # fmt: skip
    logged_in = expect(api(registry, "GET", "/systeminfo"), 200).get_json()
    assert {"harbor_version", "external_url", "registry_url", "current_time", "read_only"} <= set(logged_in)


# 10. Extended audit log (Harbor 2.13+).


def _drain() -> None:
    from chalicelib.wiring import services

    assert services().events.drain(), "events were not delivered in time"


def test_extended_audit_log_lists_the_audited_operations(registry):
    project, _ = create_project(registry)
    repo = f"{project}/app"
    digest = registry.push_manifest(repo, "v1", small_image(registry, repo, "ext"), OCI_MANIFEST)
    expect(registry.get(f"/v2/{repo}/manifests/{digest}"), 200)
    _drain()
    response = expect(api(registry, "GET", f"/projects/{project}/auditlog-exts", query_string={"page_size": "2"}), 200)
    assert response.headers["X-Total-Count"] == "3" and 'rel="next"' in response.headers["Link"]
    assert f"/api/v2.0/projects/{project}/auditlog-exts?" in response.headers["Link"]
    pulled, pushed = response.get_json()
    assert pulled["operation"] == "pull" and pulled["operation_description"] == f"pull artifact: {repo}@{digest}"
    assert pushed == {
        "id": pushed["id"], "username": "admin", "resource": f"{repo}:v1", "resource_type": "artifact",
        "operation": "create", "operation_description": f"push artifact: {repo}@{digest}",
        "operation_result": True, "op_time": pushed["op_time"],
    }  # fmt: skip
    path = f"/projects/{project}/auditlog-exts"
    created = expect(api(registry, "GET", path, query_string={"page": "2", "page_size": "2"}), 200)
    assert [e["operation_description"] for e in created.get_json()] == [f"create project: {project}"]
    everything = expect(api(registry, "GET", "/auditlog-exts", query_string={
        "q": f"resource=~{project},operation=create", "page_size": "100"}), 200).get_json()  # fmt: skip
    assert {e["resource_type"] for e in everything} == {"project", "artifact"}
    oldest_first = expect(api(registry, "GET", path, query_string={"sort": "op_time"}), 200)
    assert oldest_first.get_json()[0]["resource_type"] == "project"


def test_extended_audit_log_permissions(registry):
    project, _ = create_project(registry)
    stranger = create_user(registry)
    _drain()
    harbor_error(api(registry, "GET", f"/projects/{project}/auditlog-exts", auth=None), 401, "UNAUTHORIZED")
    harbor_error(api(registry, "GET", f"/projects/{project}/auditlog-exts", auth=stranger), 404, "NOT_FOUND")
    limited = member(registry, project, "limited")  # Harbor: a limited guest may not list logs
    harbor_error(api(registry, "GET", f"/projects/{project}/auditlog-exts", auth=limited), 403, "FORBIDDEN")
    maintainer = member(registry, project, "maintainer")
    assert expect(api(registry, "GET", f"/projects/{project}/auditlog-exts", auth=maintainer), 200).get_json()
    assert expect(api(registry, "GET", "/auditlog-exts", auth=stranger), 200).get_json() == []
    harbor_error(api(registry, "GET", "/auditlog-exts", auth=None), 401, "UNAUTHORIZED")
    harbor_error(api(registry, "GET", "/auditlog-exts", query_string={"q": "color=red"}), 400, "BAD_REQUEST")


def test_extended_audit_log_event_types(registry):
    types = expect(api(registry, "GET", "/auditlog-exts/events"), 200).get_json()
    assert types[:5] == [{"event_type": t} for t in ("create_artifact", "delete_artifact", "pull_artifact",
                                                     "create_project", "delete_project")]  # fmt: skip
    assert {"event_type": "create_robot"} in types
    harbor_error(api(registry, "GET", "/auditlog-exts/events", auth=create_user(registry)), 403, "FORBIDDEN")
    harbor_error(api(registry, "GET", "/auditlog-exts/events", auth=None), 401, "UNAUTHORIZED")


# 12. The vulnerabilities addition.


def test_vulnerabilities_addition_of_an_unscanned_image_is_an_empty_report(registry):
    project, _ = create_project(registry)
    repo = f"{project}/app"
    digest = registry.push_manifest(repo, "v1", small_image(registry, repo, "vuln"), OCI_MANIFEST)
    base = f"/projects/{project}/repositories/app/artifacts"
    mime_types = (
        "application/vnd.security.vulnerability.report; version=1.1, "
        "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
    )
    accept = {"X-Accept-Vulnerabilities": mime_types}
    for reference in ("v1", digest):
        response = expect(api(registry, "GET", f"{base}/{reference}/additions/vulnerabilities", headers=accept), 200)
        assert response.headers["Content-Type"] == "application/json" and response.get_json() == {}
    harbor_error(api(registry, "GET", f"{base}/v9/additions/vulnerabilities"), 404, "NOT_FOUND")
    harbor_error(api(registry, "GET", f"{base}/v1/additions/vulnerabilities", auth=create_user(registry)), 404,
                 "NOT_FOUND")  # fmt: skip
    assert api(registry, "GET", f"{base}/v1/additions/build_history").status_code == 200


# The unversioned API version probe a Harbor peer sends before replicating.


def test_api_version_names_harbors_v2_api_to_anyone(registry):
    for auth in (None, "default"):
        kwargs = {} if auth == "default" else {"auth": None}
        answer = expect(registry.request("GET", "/api/version", **kwargs), 200)
        assert answer.get_json() == {"version": "v2.0"}
    assert registry.request("POST", "/api/version").status_code == 405
