"""Every route is authorised from the one table: no /api/v2.0 route without an entry in
`permissions.RULES` (unless the entry says it is public), no stale entry, and every /v2 route names
a typed permission."""

from __future__ import annotations

import pytest

from app import app
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.permissions import RULES, Scope
from chalicelib.api.oci.routes import ROUTES
from chalicelib.auth.rbac import READ_CATALOG, TOKEN_ACTIONS, Action, Permission, Resource

API = "/api/v2.0"


def _management_routes() -> dict[tuple[str, str], object]:
    return {
        (method, path.removeprefix(API)): entry.view_function
        for path, methods in app.routes.items()
        if path.startswith(f"{API}/")
        for method, entry in methods.items()
    }


def test_every_management_route_is_checked_against_its_table_entry() -> None:
    registered = _management_routes()
    assert len(registered) > 100
    unchecked = sorted(key for key, view in registered.items() if getattr(view, "rule", None) is not RULES.get(key))
    assert not unchecked, f"routes not authorised from permissions.RULES: {unchecked}"


def test_the_table_names_no_route_that_does_not_exist() -> None:
    assert sorted(set(RULES) - set(_management_routes())) == []


def test_open_routes_are_few_and_named() -> None:
    public = sorted(path for (method, path), rule in RULES.items() if rule.scope is Scope.PUBLIC)
    assert public == ["/health", "/icons/{digest}", "/ping", "/projects", "/repositories", "/search", "/systeminfo"]


def test_every_rule_that_checks_a_permission_names_a_typed_one() -> None:
    for rule in RULES.values():
        for permission in (rule.permission, rule.also):
            if permission is not None:
                assert isinstance(permission.resource, Resource) and isinstance(permission.action, Action)


def test_a_route_without_a_table_entry_cannot_be_registered() -> None:
    with pytest.raises(LookupError, match=r"no entry in permissions\.RULES"):
        Routes("unlisted").get("/not-in-the-table")(lambda request: None)


def test_a_project_rule_needs_a_place_to_find_its_project() -> None:
    routes = Routes("unlocated")
    with pytest.raises(LookupError, match=r"needs the \{project\} segment"):
        routes.get("/quotas/{quota_id}")(lambda request: None)


def test_every_registry_route_needs_a_typed_permission() -> None:
    allowed = {READ_CATALOG, *TOKEN_ACTIONS.values()}
    for route in ROUTES:
        for method, (_, needed) in route.handlers.items():
            assert isinstance(needed, Permission) and needed in allowed, (route.pattern.pattern, method)
