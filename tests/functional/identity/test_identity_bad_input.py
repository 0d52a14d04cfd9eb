"""Bad input on every identity endpoint: always a 4xx with the error envelope, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.identity.identity_support import (
    PASSWORD,
    envelope,
    unique,
)

LONG = "a" * 300
MALFORMED = b'{"unterminated": '


@pytest.fixture(scope="module")
def ids(harbor) -> dict[str, Any]:
    project, project_id = harbor.create_project()
    user, user_id = harbor.create_user()
    member_id = harbor.add_member(project, user, 2)
    robot = harbor.project_robot(project, [{"resource": "repository", "action": "pull"}])
    quota = harbor.get("quotas", query={"reference": "project", "reference_id": project_id}).get_json()[0]
    return {
        "project": project,
        "project_id": project_id,
        "user": user,
        "user_id": user_id,
        "member_id": member_id,
        "robot_id": robot["id"],
        "quota_id": quota["id"],
    }


def _check(response: Any, allowed: tuple[int, ...] = (400,)) -> None:
    assert response.status_code in allowed, (response.status_code, response.get_data()[:400])
    envelope(response)


# (method, path template, body) where body is bytes (sent raw) or an object (sent as JSON).
BODIES: list[tuple[str, str, Any]] = [
    # users
    ("POST", "users", MALFORMED),
    ("POST", "users", b"[]"),
    ("POST", "users", b"\xff\xfe"),
    ("POST", "users", {"username": "x1", "password": "Aa1aaaaaaa", "unknown": 1}),
    ("POST", "users", {"username": 123, "password": "Aa1aaaaaaa"}),
    ("POST", "users", {"username": "ok-name", "password": ["Aa1aaaaaaa"]}),
    ("POST", "users", {"username": LONG, "password": "Aa1aaaaaaa"}),
    ("POST", "users", {"username": "", "password": "Aa1aaaaaaa"}),
    ("POST", "users", {"password": "Aa1aaaaaaa"}),
    ("POST", "users", {"username": "ok-name", "password": "Aa1aaaaaaa", "email": "e" * 300}),
    ("PUT", "users/{user_id}", MALFORMED),
    ("PUT", "users/{user_id}", {"email": 5}),
    ("PUT", "users/{user_id}", {"nickname": "x"}),
    ("PUT", "users/{user_id}/password", MALFORMED),
    ("PUT", "users/{user_id}/password", {"new_password": 12345678}),
    ("PUT", "users/{user_id}/password", {"new_password": "Aa1aaaaaaa", "extra": True}),
    ("PUT", "users/{user_id}/password", {}),
    ("PUT", "users/{user_id}/sysadmin", MALFORMED),
    ("PUT", "users/{user_id}/sysadmin", {"sysadmin_flag": "definitely"}),
    ("PUT", "users/{user_id}/sysadmin", {"sysadmin_flag": [True]}),
    ("PUT", "users/{user_id}/sysadmin", {}),
    # projects
    ("POST", "projects", MALFORMED),
    ("POST", "projects", b'"just a string"'),
    ("POST", "projects", {"project_name": "okname", "unknown": 1}),
    ("POST", "projects", {"project_name": 42}),
    ("POST", "projects", {"project_name": LONG}),
    ("POST", "projects", {"project_name": "okname2", "storage_limit": "abc"}),
    ("POST", "projects", {"project_name": "okname3", "storage_limit": -7}),
    ("POST", "projects", {"project_name": "okname4", "metadata": ["public"]}),
    ("POST", "projects", {"project_name": "okname5", "metadata": {"public": {"nested": 1}}}),
    ("POST", "projects", {"project_name": "okname6", "cve_allowlist": {"items": "CVE-1"}}),
    ("POST", "projects", {"project_name": "okname7", "public": "sometimes"}),
    ("POST", "projects", {}),
    ("PUT", "projects/{project_id}", MALFORMED),
    ("PUT", "projects/{project_id}", {"metadata": "public"}),
    ("PUT", "projects/{project_id}", {"unknown": 1}),
    ("PUT", "projects/{project_id}", {"storage_limit": "lots"}),
    ("POST", "projects/{project}/metadatas", MALFORMED),
    ("POST", "projects/{project}/metadatas", {}),
    ("POST", "projects/{project}/metadatas", b"[1, 2]"),
    ("POST", "projects/{project}/metadatas", {"not_a_key": "true"}),
    ("PUT", "projects/{project}/metadatas/public", MALFORMED),
    ("PUT", "projects/{project}/metadatas/public", {"public": 7}),
    # members
    ("POST", "projects/{project}/members", MALFORMED),
    ("POST", "projects/{project}/members", {"role_id": "abc", "member_user": {"username": "admin"}}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_user": {"username": "admin", "x": 1}}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_user": "admin"}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_user": {"username": "admin"}, "extra": 1}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_user": {"username": LONG}}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_user": {"user_id": "me"}}),
    ("POST", "projects/{project}/members", {"role_id": 2, "member_group": {"group_name": "g"}}),
    ("PUT", "projects/{project}/members/{member_id}", MALFORMED),
    ("PUT", "projects/{project}/members/{member_id}", {"role_id": "abc"}),
    ("PUT", "projects/{project}/members/{member_id}", {"role_id": 2, "x": 1}),
    ("PUT", "projects/{project}/members/{member_id}", {}),
    # robots
    ("POST", "robots", MALFORMED),
    ("POST", "robots", b"[]"),
    ("POST", "robots", {"name": "bot", "level": "project", "unknown": 1}),
    (
        "POST",
        "robots",
        {
            "name": LONG,
            "level": "project",
            "duration": -1,
            "permissions": [
                {"kind": "project", "namespace": "{project}", "access": [{"resource": "repository", "action": "pull"}]}
            ],
        },
    ),
    ("POST", "robots", {"name": 5, "level": "project"}),
    (
        "POST",
        "robots",
        {
            "name": "bot2",
            "level": "project",
            "duration": "forever",
            "permissions": [
                {"kind": "project", "namespace": "{project}", "access": [{"resource": "repository", "action": "pull"}]}
            ],
        },
    ),
    ("POST", "robots", {"name": "bot3", "level": "project", "duration": -1, "permissions": "all"}),
    ("POST", "robots", {"name": "bot4", "level": "project", "duration": -1, "permissions": [["x"]]}),
    (
        "POST",
        "robots",
        {
            "name": "bot5",
            "level": "project",
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": "{project}", "access": "pull"}],
        },
    ),
    (
        "POST",
        "robots",
        {
            "name": "bot6",
            "level": "project",
            "duration": -1,
            "description": 7,
            "permissions": [
                {"kind": "project", "namespace": "{project}", "access": [{"resource": "repository", "action": "pull"}]}
            ],
        },
    ),
    (
        "POST",
        "robots",
        {
            "name": "bot7",
            "level": "project",
            "duration": -1,
            "description": "d" * 2000,
            "permissions": [
                {"kind": "project", "namespace": "{project}", "access": [{"resource": "repository", "action": "pull"}]}
            ],
        },
    ),
    (
        "POST",
        "robots",
        {
            "name": "bot8",
            "level": "project",
            "duration": -1,
            "permissions": [
                {"kind": "project", "namespace": "{project}", "access": [{"resource": 1, "action": ["pull"]}]}
            ],
        },
    ),
    ("PUT", "robots/{robot_id}", MALFORMED),
    ("PUT", "robots/{robot_id}", {"unknown": 1}),
    ("PUT", "robots/{robot_id}", {"description": 5}),
    ("PUT", "robots/{robot_id}", {"permissions": {"kind": "project"}}),
    ("PUT", "robots/{robot_id}", {"disable": "no"}),
    ("PATCH", "robots/{robot_id}", MALFORMED),
    ("PATCH", "robots/{robot_id}", {"secret": 12345678}),
    ("PATCH", "robots/{robot_id}", {"other": "x"}),
    # quotas
    ("PUT", "quotas/{quota_id}", MALFORMED),
    ("PUT", "quotas/{quota_id}", {"hard": {"storage": "abc"}}),
    ("PUT", "quotas/{quota_id}", {"hard": {"storage": 10}, "extra": 1}),
    # configurations
    ("PUT", "configurations", MALFORMED),
    ("PUT", "configurations", b"[]"),
    ("PUT", "configurations", {"no_such_setting": 1}),
    ("PUT", "configurations", {"token_expiration": "abc"}),
    ("PUT", "configurations", {"token_expiration": 0}),
    ("PUT", "configurations", {"project_creation_restriction": "nobody"}),
    ("PUT", "configurations", {"robot_name_prefix": "bad prefix"}),
    ("PUT", "configurations", {"auth_mode": "ldap_auth"}),  # read-only here
    ("PUT", "configurations", {"storage_per_project": "huge"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), BODIES, ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(BODIES)]
)
def test_bad_bodies_are_400(harbor, ids, method, path, body):
    url = path.format(**ids)
    if isinstance(body, bytes):
        response = harbor.request(method, url, data=body, content_type="application/json")
    else:
        import json

        text = json.dumps(body).replace("{project}", ids["project"])
        response = harbor.request(method, url, data=text, content_type="application/json")
    _check(response)


LISTS = ["users", "projects", "robots", "quotas", "projects/{project}/members", "users/search?username=a"]
BAD_PAGES = [
    {"page": "0"},
    {"page": "-1"},
    {"page": "abc"},
    {"page_size": "0"},
    {"page_size": "1000"},
    {"page_size": "abc"},
    {"page": "1.5"},
    {"page_size": "-10"},
    {"page_size": "1e2"},
]
# Every bad value on one list, the three classic ones on every other list.
PAGE_CASES = [("users", q) for q in BAD_PAGES] + [
    (path, q) for path in LISTS[1:] for q in ({"page": "0"}, {"page_size": "1000"}, {"page": "abc"})
]


@pytest.mark.parametrize(
    ("path", "query"), PAGE_CASES, ids=[f"{p}?{','.join(f'{k}={v}' for k, v in q.items())}" for p, q in PAGE_CASES]
)
def test_bad_pagination_is_400(harbor, ids, path, query):
    url = path.format(**ids)
    extra = {}
    if "?" in url:
        url, _, rest = url.partition("?")
        extra = dict([rest.split("=")])
    _check(harbor.get(url, query={**extra, **query}))


BAD_QS = [
    "foo=bar",
    "username",
    "=x",
    "username=~",
    "project_id=[1~",
    "name={a b",
    'name="unterminated',
    "user_id=abc",
    "name=[a~b]",
    "a=1,a=2",
    "x" * 2000,
]
Q_CASES = [("users", q) for q in BAD_QS] + [
    (path, q) for path in ("projects", "robots") for q in ("foo=bar", "name={a b", "x" * 2000)
]


@pytest.mark.parametrize(("path", "q"), Q_CASES, ids=[f"{p}?q={q[:20]}" for p, q in Q_CASES])
def test_bad_q_is_400(harbor, path, q):
    _check(harbor.get(path, query={"q": q}))


@pytest.mark.parametrize("path", LISTS[:4])
def test_a_page_past_the_end_is_empty_not_an_error(harbor, path):
    response = harbor.get(path, query={"page": "99999999999999999999999"})
    assert response.status_code in (200, 400), response.get_data()[:300]
    if response.status_code == 200:
        assert response.get_json() == []
    else:
        envelope(response)


@pytest.mark.parametrize("path", ["users", "projects", "robots"])
@pytest.mark.parametrize("sort", ["nosuchfield", "name,name", "-password_hash"])
def test_bad_sort_is_400(harbor, path, sort):
    _check(harbor.get(path, query={"sort": sort}))


@pytest.mark.parametrize(
    "path",
    [
        "users/abc",
        "users/-1",
        "users/1.5",
        "users/99999999999999999999999",
        "robots/abc",
        "robots/-3",
        "quotas/abc",
        "quotas/0x10",
        "projects/{project}/members/abc",
        "projects/{project}/members/-1",
        "users/abc/password",
        "users/abc/sysadmin",
    ],
)
def test_bad_ids_in_paths_are_400(harbor, ids, path):
    method = "PUT" if path.endswith(("password", "sysadmin")) else "GET"
    body = {"new_password": "Aa1aaaaaaa"} if path.endswith("password") else {"sysadmin_flag": True}
    response = harbor.request(method, path.format(**ids), json_body=body if method == "PUT" else None)
    _check(response, (400, 404))


@pytest.mark.parametrize(
    "path",
    [
        f"projects/{LONG}",
        f"projects/{LONG}/summary",
        f"projects/{LONG}/members",
        "projects/%00",
        f"projects/{unique('absent')}/metadatas/public",
    ],
    ids=["long", "long-summary", "long-members", "nul", "absent-metadata"],  # one id in every xdist worker
)
def test_oversized_or_odd_project_paths_are_4xx(harbor, path):
    _check(harbor.get(path), (400, 404))


def test_bad_quota_and_project_list_params(harbor):
    _check(harbor.get("quotas", query={"reference": "user"}))
    _check(harbor.get("quotas", query={"reference_id": "abc"}))
    _check(harbor.get("projects", query={"public": "maybe"}))
    assert harbor.head("projects").status_code == 400  # HEAD needs ?project_name=
    _check(harbor.get("users/search"))


def test_bad_input_as_a_normal_user_is_still_a_4xx(harbor, ids):
    auth = (ids["user"], PASSWORD)
    _check(harbor.post("projects", auth=auth, data=MALFORMED, content_type="application/json"))
    _check(harbor.post("robots", auth=auth, data=MALFORMED, content_type="application/json"), (400, 403))
    _check(harbor.get("users", auth=auth, query={"page": "0"}), (400, 403))


def test_token_service_bad_input(harbor):
    _check(
        harbor.get(
            "/service/token",
            auth=("admin", "Harbor12345"),
            query=[("scope", f"repository:r{i}/x:pull") for i in range(50)],
        )
    )
    for form in (
        {},
        {"grant_type": "password"},
        {"client_id": "c", "grant_type": "implicit"},
        {"client_id": "c", "grant_type": ""},
    ):
        _check(harbor.oauth(form))
    # Huge and odd scopes do not break it.
    response = harbor.token_response(["repository:" + "a" * 5000 + ":pull", "repository:a/b:" + "x," * 500])
    assert response.status_code in (200, 400), response.get_data()[:300]
