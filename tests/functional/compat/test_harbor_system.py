"""Harbor's own clients against the registry (issue 16, items 9-12): the banner message, the
extended audit log, the GC job log's wording and the vulnerabilities addition of an unscanned image."""

from __future__ import annotations

import json

from tests.functional.catalogue.rules_support import api, create_user, expect, harbor_error

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
