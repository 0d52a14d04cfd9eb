"""The audit log over HTTP on moto: /v2 pushes, pulls and deletes and project and robot changes
through the API become entries, read back through /audit-logs and /projects/{p}/logs with Harbor's
paging, `q` filters, sorting and permissions."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.events import Event, EventType
from tests.functional.catalogue.rules_support import (
    api,
    create_project,
    expect,
    harbor_error,
    member,
    small_image,
)
from tests.functional.helpers import OCI_MANIFEST, Registry, digest_of


def drain() -> None:
    from chalicelib.wiring import services

    assert services().events.drain(), "events were not delivered in time"


def logs(registry: Registry, path: str, auth: Any = "default", **query: str) -> tuple[list[dict[str, Any]], Any]:
    response = expect(api(registry, "GET", path, auth=auth, query_string=query), 200)
    return response.get_json(), response.headers


def project_logs(registry: Registry, project: str, **query: str) -> list[dict[str, Any]]:
    return logs(registry, f"/projects/{project}/logs", **query)[0]


def test_v2_and_api_operations_are_audited(registry):
    name, _ = create_project(registry)
    repo = f"{name}/app"
    image = small_image(registry, repo, "audited")
    digest = registry.push_manifest(repo, "v1", image, OCI_MANIFEST)
    expect(registry.get(f"/v2/{repo}/manifests/v1"), 200)
    expect(registry.get(f"/v2/{repo}/manifests/{digest}"), 200)
    expect(registry.head(f"/v2/{repo}/manifests/v1"), 200)  # a HEAD is not a pull
    expect(registry.delete(f"/v2/{repo}/manifests/v1"), 202)
    expect(registry.delete(f"/v2/{repo}/manifests/{digest}"), 202)
    robot = {"name": "ci", "level": "project", "duration": -1,
             "permissions": [{"kind": "project", "namespace": name,
                              "access": [{"resource": "repository", "action": "pull"}]}]}  # fmt: skip
    robot_id = expect(api(registry, "POST", "/robots", json=robot), 201).get_json()["id"]
    expect(api(registry, "DELETE", f"/robots/{robot_id}"), 200)
    drain()
    entries = project_logs(registry, name, page_size="100")
    seen = [(e["operation"], e["resource_type"], e["resource"]) for e in reversed(entries)]
    assert seen == [
        ("create", "project", name),
        ("create", "artifact", f"{repo}:v1"),
        ("pull", "artifact", f"{repo}:v1"),
        ("pull", "artifact", f"{repo}@{digest}"),
        ("delete", "tag", f"{repo}:v1"),
        ("delete", "artifact", f"{repo}@{digest}"),
        ("create", "robot", f"robot${name}+ci"),
        ("delete", "robot", f"robot${name}+ci"),
    ]
    assert {e["username"] for e in entries} == {"admin"}
    assert len({e["id"] for e in entries}) == len(entries)
    for entry in entries:
        assert set(entry) == {"id", "username", "resource", "resource_type", "operation", "op_time"}
        assert datetime.strptime(entry["op_time"], "%Y-%m-%dT%H:%M:%S.%f%z").tzinfo is not None
    # Newest first, and the administrator sees them in the global list too.
    assert [e["op_time"] for e in entries] == sorted((e["op_time"] for e in entries), reverse=True)
    everything, _ = logs(registry, "/audit-logs", q=f"resource=~{name}", page_size="100")
    assert [e["id"] for e in everything] == [e["id"] for e in entries]


def test_project_deletion_is_audited_globally_and_entries_expire(registry):
    from chalicelib.wiring import services

    name, _ = create_project(registry)
    expect(api(registry, "DELETE", f"/projects/{name}"), 200)
    drain()
    found, _ = logs(registry, "/audit-logs", q=f"resource={name}")
    assert [(e["operation"], e["resource_type"]) for e in found] == [("delete", "project"), ("create", "project")]
    # Every row carries a TTL `retention_days` after the operation.
    items = registry.dynamodb.query(  # type: ignore[attr-defined]
        TableName=registry.table,  # type: ignore[attr-defined]
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{name}"}},
    )["Items"]
    assert len(items) == 2
    retention = services().settings.audit_retention_days * 86_400
    for item in items:
        assert int(item["expires_at"]["N"]) - int(item["op_time"]["N"]) // 1000 == retention


def _seed(registry: Registry, project: str, events: list[tuple[EventType, str, float]]) -> None:
    """Record events directly (as the subscriber the AWS consumer delivers to does), with chosen
    times, once the events the test caused itself (creating its project) are written."""
    from chalicelib.wiring import services

    assert services().events.drain()

    services().audit.record_many([
        Event(type=t, operator=user, occurred_at=at, project=project, repository=f"{project}/app", tag="v1",
              digest="sha256:" + "0" * 64)
        for t, user, at in events
    ])  # fmt: skip


def test_filters_paging_and_sorting(registry):
    name, _ = create_project(registry)
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    _seed(registry, name, [(EventType.PUSH_ARTIFACT, "alice", base + i * 3600) for i in range(5)])
    _seed(registry, name, [(EventType.PULL_ARTIFACT, "bob", base + 5 * 3600 + i) for i in range(7)])
    path = f"/projects/{name}/logs"
    page1, headers = logs(registry, path, page="1", page_size="5", q="operation=pull")
    assert headers["X-Total-Count"] == "7" and 'rel="next"' in headers["Link"]
    assert "q=operation%3Dpull" in headers["Link"]
    page2, headers = logs(registry, path, page="2", page_size="5", q="operation=pull")
    assert len(page1) == 5 and len(page2) == 2 and 'rel="prev"' in headers["Link"]
    assert len({e["id"] for e in page1 + page2}) == 7
    assert logs(registry, path, page="3", page_size="5", q="operation=pull")[0] == []
    assert {e["username"] for e in project_logs(registry, name, q="username=alice", page_size="100")} == {"alice"}
    assert len(project_logs(registry, name, q="username=~ali", page_size="100")) == 5
    assert len(project_logs(registry, name, q="operation={pull create}", page_size="100")) == 13  # + project
    assert len(project_logs(registry, name, q="resource_type=artifact,username=bob", page_size="100")) == 7
    window = "[2026-01-01 01:00:00~2026-01-01 03:00:00]"
    assert [e["op_time"][11:19] for e in project_logs(registry, name, q=f"op_time={window}")] == [
        "03:00:00", "02:00:00", "01:00:00"
    ]  # fmt: skip
    assert len(project_logs(registry, name, q="op_time=[~2026-01-01 00:30:00]")) == 1
    assert len(project_logs(registry, name, q='op_time="2026-01-01 04:00:00"')) == 1
    oldest = project_logs(registry, name, sort="op_time", page_size="2")
    assert [e["op_time"][11:19] for e in oldest] == ["00:00:00", "01:00:00"]


@pytest.mark.parametrize(
    "query",
    [
        {"q": "nope=1"},
        {"q": "op_time=~2026"},
        {"q": "op_time={2026-01-01 2026-01-02}"},
        {"q": "operation=(pull create)"},
        {"q": "operation=[1~2]"},
        {"q": "username=alice,username=bob"},
        {"q": "op_time=[yesterday~today]"},
        {"q": "operation={pull"},
        {"page_size": "1000"},
        {"page_size": "0"},
        {"page": "-1"},
        {"page": "x"},
        {"sort": "username"},
    ],
)
def test_bad_queries_are_400(registry, query):
    name, _ = create_project(registry)
    harbor_error(api(registry, "GET", f"/projects/{name}/logs", query_string=query), 400)
    harbor_error(api(registry, "GET", "/audit-logs", query_string=query), 400)


def test_permissions(registry):
    mine, _ = create_project(registry)
    other, _ = create_project(registry)
    guest = member(registry, mine, "guest")
    limited = member(registry, mine, "limited")
    drain()
    # Anonymous and wrong credentials: 401 on both lists.
    for auth in (None, ("admin", "not-the-password")):
        harbor_error(api(registry, "GET", "/audit-logs", auth=auth), 401, "UNAUTHORIZED")
        harbor_error(api(registry, "GET", f"/projects/{mine}/logs", auth=auth), 401, "UNAUTHORIZED")
    # A guest reads its project's log, and in /audit-logs sees only projects it may list logs of.
    assert [e["resource"] for e in logs(registry, f"/projects/{mine}/logs", auth=guest)[0]] == [mine]
    visible, headers = logs(registry, "/audit-logs", auth=guest, page_size="100")
    assert {e["resource"] for e in visible} == {mine} and headers["X-Total-Count"] == "1"
    harbor_error(api(registry, "GET", f"/projects/{other}/logs", auth=guest), 404)
    # A limited guest has no `log` permission (Harbor's matrix).
    harbor_error(api(registry, "GET", f"/projects/{mine}/logs", auth=limited), 403, "FORBIDDEN")
    assert logs(registry, "/audit-logs", auth=limited)[0] == []
    harbor_error(api(registry, "GET", "/projects/no-such-project/logs"), 404)


def test_a_burst_of_events_is_written_in_batches(registry, monkeypatch):
    """Events queued together reach the writer together: one id reservation and BatchWriteItem
    calls for the lot, not one write per event; the request path never waits for it."""
    from chalicelib.stores.audit import AuditStore

    name, _ = create_project(registry)
    drain()
    batches: list[int] = []
    original = AuditStore.write

    def counting(self: AuditStore, entries: Any, expires_at: Any) -> None:
        batches.append(len(entries))
        time.sleep(0.05)  # a slow table: later events pile up meanwhile
        original(self, entries, expires_at)

    monkeypatch.setattr(AuditStore, "write", counting)
    repo = f"{name}/burst"
    digest = registry.push_manifest(repo, "v1", small_image(registry, repo, "burst"), OCI_MANIFEST)
    for _ in range(20):
        expect(registry.get(f"/v2/{repo}/manifests/{digest}"), 200)
    drain()
    assert sum(batches) == 21
    assert len(batches) < 21 and max(batches) > 1, batches
    assert len(project_logs(registry, name, q="operation=pull", page_size="100")) == 20
    assert digest == digest_of(registry.get(f"/v2/{repo}/manifests/v1").get_data())


def test_robots_see_everything_only_with_the_system_audit_log_permission(registry):
    name, _ = create_project(registry)

    def system_robot(access: list[dict[str, str]]) -> tuple[str, str]:
        body = {"name": f"audit{len(access)}-{name[-8:]}", "level": "system", "duration": -1,
                "permissions": [{"kind": "system", "namespace": "/", "access": access}]}  # fmt: skip
        created = expect(api(registry, "POST", "/robots", json=body), 201).get_json()
        return created["name"], created["secret"]

    reader = system_robot([{"resource": "audit-log", "action": "list"}])
    other = system_robot([{"resource": "project", "action": "list"}, {"resource": "user", "action": "list"}])
    drain()
    # System robots are audited in the global partition only (they belong to no project).
    created = logs(registry, "/audit-logs", q="resource_type=robot,operation=create", page_size="100")[0]
    assert {reader[0], other[0]} <= {e["resource"] for e in created}
    assert all(e["resource_type"] == "project" for e in project_logs(registry, name))
    everything, headers = logs(registry, "/audit-logs", auth=reader, q=f"resource={name}")
    assert [e["operation"] for e in everything] == ["create"] and headers["X-Total-Count"] == "1"
    assert logs(registry, "/audit-logs", auth=other)[0] == []


def test_the_operator_is_the_caller(registry):
    name, _ = create_project(registry)
    developer = member(registry, name, "developer")
    as_developer = Registry(registry.http, developer)
    repo = f"{name}/mine"
    as_developer.push_manifest(repo, "v1", small_image(as_developer, repo, "dev"), OCI_MANIFEST)
    drain()
    [entry] = project_logs(registry, name, q="resource_type=artifact")
    assert (entry["username"], entry["operation"], entry["resource"]) == (developer[0], "create", f"{repo}:v1")
