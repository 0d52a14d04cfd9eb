"""Helpers of the catalogue suites (repositories, labels, search).

They run on the shared per-test `registry` fixture (a fresh moto table and bucket per test, admin
from tests/functional/conftest.py) and drive it with the identity suite's Harbor client, whose
default credentials are mapped to this fixture's administrator.
"""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

from tests.functional.conftest import ADMIN
from tests.functional.identity.identity_support import ADMIN as IDENTITY_ADMIN
from tests.functional.identity.identity_support import PASSWORD, Auth, Harbor, envelope, expect_status, unique

ROLES = {"admin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limited": 5}


class Catalogue(Harbor):
    """The Harbor client, logged in as this fixture's administrator by default."""

    def clone(self) -> Catalogue:
        return Catalogue(type(self.http)(self.http.application))

    def request(self, method: str, path: str, *, auth: Auth = ADMIN, **kwargs: Any) -> TestResponse:
        return super().request(method, path, auth=ADMIN if auth == IDENTITY_ADMIN else auth, **kwargs)

    def member(self, project: str, role: str) -> tuple[str, str]:
        """A new user holding `role` in `project`; returns its Basic credentials."""
        user, _ = self.create_user()
        self.add_member(project, user, ROLES[role])
        return user, PASSWORD

    def outsider(self) -> tuple[str, str]:
        user, _ = self.create_user()
        return user, PASSWORD

    def repositories(self, project: str, auth: Auth = ADMIN, **query: Any) -> TestResponse:
        return self.get(f"projects/{project}/repositories", auth=auth, query=query or None)


def catalogue_of(registry: Any) -> Catalogue:
    return Catalogue(registry.http)


def drain() -> None:
    """Wait until the event worker delivered everything published so far."""
    from chalicelib.wiring import services

    assert services().events.drain(10)


def check_error(response: TestResponse, statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    """A 4xx in `statuses` with Harbor's error envelope."""
    assert response.status_code in statuses, (response.status_code, response.get_data()[:400])
    return envelope(response)


__all__ = ["ADMIN", "PASSWORD", "Catalogue", "catalogue_of", "check_error", "drain", "expect_status", "unique"]
