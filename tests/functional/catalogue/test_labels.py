"""/api/v2.0/labels and attaching labels to artifacts, over HTTP on moto."""

from __future__ import annotations

import re

import pytest

from tests.functional.catalogue.catalogue_support import (
    Catalogue,
    catalogue_of,
    check_error,
    drain,
    expect_status,
    unique,
)
from tests.functional.helpers import run_together, serialise_aws_calls

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z")
FIELDS = {"id", "name", "description", "color", "scope", "project_id", "creation_time", "update_time"}


@pytest.fixture
def api(registry) -> Catalogue:
    return catalogue_of(registry)


def create_label(api: Catalogue, name: str | None = None, *, project_id: int | None = None, auth=None, **fields):
    body = {"name": name or unique("lbl"), "scope": "p" if project_id else "g", **fields}
    if project_id:
        body["project_id"] = project_id
    kwargs = {"auth": auth} if auth is not None else {}
    response = expect_status(api.post("labels", json_body=body, **kwargs), 201)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def attachments(registry, label_id: int) -> list[str]:
    """Raw rows of the label's partition other than the label itself (its reverse index)."""
    items = registry.dynamodb.query(
        TableName=registry.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"LABEL#{label_id}"}},
        ConsistentRead=True,
    )["Items"]
    return [i["sk"]["S"] for i in items if i["sk"]["S"] != "ENTITY"]


def labels_on(repository: str, digests: list[str]) -> dict[str, list[int]]:
    """What the artifact listing will show: `LabelService.labels_for`, reduced to ids."""
    from chalicelib.wiring import services

    found = services().labels.labels_for(repository, digests)
    return {d: [label["id"] for label in labels] for d, labels in found.items()}


def test_global_label_lifecycle(api):
    name = unique("release")
    response = expect_status(
        api.post("labels", json_body={"name": name, "color": "#00FF00", "description": "ready", "scope": "g"}), 201
    )
    location = response.headers["Location"]
    assert re.fullmatch(r"/api/v2.0/labels/\d+", location)
    label_id = int(location.rsplit("/", 1)[1])
    label = expect_status(api.get(f"labels/{label_id}"), 200).get_json()
    assert set(label) == FIELDS - {"project_id"}  # a global label's 0 is omitted, as Harbor does
    assert label["name"] == name and label["color"] == "#00FF00" and label["description"] == "ready"
    assert label["scope"] == "g" and "project_id" not in label and "deleted" not in label
    assert TIME.fullmatch(label["creation_time"]) and TIME.fullmatch(label["update_time"])
    listed = expect_status(api.get("labels", query={"scope": "g"}), 200)
    assert [item["id"] for item in listed.get_json()] == [label_id] and listed.headers["X-Total-Count"] == "1"
    # PUT takes back what GET gave, with changes; fields left out keep their value.
    expect_status(api.put(f"labels/{label_id}", json_body={**label, "name": f"{name}-2", "color": "#000000"}), 200)
    expect_status(api.put(f"labels/{label_id}", json_body={"description": "changed"}), 200)
    changed = api.get(f"labels/{label_id}").get_json()
    assert (changed["name"], changed["color"], changed["description"]) == (f"{name}-2", "#000000", "changed")
    # The old name is free again, the new one taken.
    create_label(api, name)
    check_error(api.post("labels", json_body={"name": f"{name}-2", "scope": "g"}), (409,))
    expect_status(api.delete(f"labels/{label_id}"), 200)
    check_error(api.get(f"labels/{label_id}"), (404,))
    check_error(api.delete(f"labels/{label_id}"), (404,))
    check_error(api.put(f"labels/{label_id}", json_body={"name": "x"}), (404,))


def test_label_listing_pages_filters_and_sorts(api):
    ids = [create_label(api, f"env-{suffix}") for suffix in ("c", "a", "b")]
    create_label(api, "other")
    page = expect_status(api.get("labels", query={"scope": "g", "name": "env", "page_size": 2}), 200)
    assert page.headers["X-Total-Count"] == "3" and 'rel="next"' in page.headers["Link"]
    assert [label["name"] for label in page.get_json()] == ["env-a", "env-b"]
    by_id = api.get("labels", query={"scope": "g", "sort": "-id", "q": "name=~env"}).get_json()
    assert [label["id"] for label in by_id] == sorted(ids, reverse=True)
    # Without scope, the global labels are listed (Harbor's default).
    assert len(api.get("labels").get_json()) == 4


def test_project_labels_follow_roles(api):
    project, project_id = api.create_project()
    _other, other_id = api.create_project()
    maintainer = api.member(project, "maintainer")
    developer = api.member(project, "developer")
    guest = api.member(project, "guest")
    stranger = api.outsider()
    body = {"name": "qa", "scope": "p", "project_id": project_id}
    check_error(api.post("labels", json_body=body, auth=developer), (403,))
    check_error(api.post("labels", json_body=body, auth=guest), (403,))
    check_error(api.post("labels", json_body=body, auth=stranger), (404,))
    check_error(api.post("labels", json_body=body, auth=None), (401,))
    label_id = create_label(api, "qa", project_id=project_id, auth=maintainer)
    # Names are unique per scope: the same name is fine globally and in another project.
    check_error(api.post("labels", json_body=body, auth=maintainer), (409,))
    create_label(api, "qa")
    create_label(api, "qa", project_id=other_id)
    listed = expect_status(api.get("labels", query={"scope": "p", "project_id": project_id}, auth=guest), 200)
    assert [label["id"] for label in listed.get_json()] == [label_id]
    assert api.get(f"labels/{label_id}", auth=guest).get_json()["project_id"] == project_id
    check_error(api.get("labels", query={"scope": "p", "project_id": project_id}, auth=stranger), (404,))
    check_error(api.get(f"labels/{label_id}", auth=stranger), (404,))
    check_error(api.put(f"labels/{label_id}", json_body={"name": "qa2"}, auth=developer), (403,))
    expect_status(api.put(f"labels/{label_id}", json_body={"name": "qa2"}, auth=maintainer), 200)
    check_error(api.delete(f"labels/{label_id}", auth=guest), (403,))
    expect_status(api.delete(f"labels/{label_id}", auth=maintainer), 200)
    assert api.get("labels", query={"scope": "p", "project_id": project_id}).get_json() == []


def test_only_administrators_manage_global_labels(api):
    project, _ = api.create_project()
    owner = api.member(project, "admin")
    check_error(api.post("labels", json_body={"name": "g1", "scope": "g"}, auth=owner), (403,))
    check_error(api.post("labels", json_body={"name": "g1", "scope": "g"}, auth=None), (401,))
    label_id = create_label(api, "g1")
    check_error(api.put(f"labels/{label_id}", json_body={"name": "g2"}, auth=owner), (403,))
    check_error(api.delete(f"labels/{label_id}", auth=owner), (403,))
    # Anyone may read global labels (Harbor does not check), so they can be picked for artifacts.
    assert api.get(f"labels/{label_id}", auth=owner).get_json()["name"] == "g1"
    assert [label["id"] for label in api.get("labels", auth=None).get_json()] == [label_id]


def test_attach_and_detach(api):
    project, project_id = api.create_project()
    repo = f"{project}/app"
    digest, _ = api.push_image(repo, "v1")
    other_digest, _ = api.push_image(repo, "v2")
    developer = api.member(project, "developer")
    guest = api.member(project, "guest")
    global_id = create_label(api)
    project_label = create_label(api, project_id=project_id)
    base = f"projects/{project}/repositories/app/artifacts"
    expect_status(api.post(f"{base}/v1/labels", json_body={"id": global_id}, auth=developer), 200)
    expect_status(api.post(f"{base}/{digest}/labels", json_body={"id": project_label}, auth=developer), 200)
    check_error(api.post(f"{base}/v1/labels", json_body={"id": global_id}, auth=developer), (409,))
    check_error(api.post(f"{base}/v2/labels", json_body={"id": global_id}, auth=guest), (403,))
    assert labels_on(repo, [digest, other_digest]) == {digest: sorted([global_id, project_label]), other_digest: []}
    from chalicelib.wiring import services

    full = services().labels.labels_for(repo, [digest])
    assert {label["id"] for label in full[digest]} == {global_id, project_label}
    assert all(set(label) == {*FIELDS} for label in full[digest])
    check_error(api.delete(f"{base}/v1/labels/{global_id}", auth=guest), (403,))
    expect_status(api.delete(f"{base}/v1/labels/{global_id}", auth=developer), 200)
    check_error(api.delete(f"{base}/v1/labels/{global_id}", auth=developer), (404,))
    assert labels_on(repo, [digest]) == {digest: [project_label]}


def test_project_label_stays_in_its_project(api):
    _, first_id = api.create_project()
    second, _ = api.create_project()
    api.push_image(f"{second}/app", "v1")
    foreign = create_label(api, project_id=first_id)
    path = f"projects/{second}/repositories/app/artifacts/v1/labels"
    check_error(api.post(path, json_body={"id": foreign}), (400,))
    check_error(api.post(path, json_body={"id": 999_999}), (404,))
    check_error(api.post(f"projects/{second}/repositories/app/artifacts/nope/labels", json_body={"id": foreign}),
                (404,))  # fmt: skip
    check_error(api.post(f"projects/{second}/repositories/ghost/artifacts/v1/labels", json_body={"id": foreign}),
                (404,))  # fmt: skip
    missing = "sha256:" + "0" * 64
    check_error(api.post(f"projects/{second}/repositories/app/artifacts/{missing}/labels", json_body={"id": foreign}),
                (400, 404))  # fmt: skip


def test_deleting_a_label_detaches_it_everywhere(api, registry):
    project, _ = api.create_project()
    digests = {}
    for name in ("one", "two"):
        digests[name], _ = api.push_image(f"{project}/{name}", "v1")
    label_id = create_label(api)
    for name in ("one", "two"):
        path = f"projects/{project}/repositories/{name}/artifacts/v1/labels"
        expect_status(api.post(path, json_body={"id": label_id}), 200)
    assert len(attachments(registry, label_id)) == 2
    expect_status(api.delete(f"labels/{label_id}"), 200)
    assert attachments(registry, label_id) == []
    for name in ("one", "two"):
        assert labels_on(f"{project}/{name}", [digests[name]]) == {digests[name]: []}
    check_error(api.post(f"projects/{project}/repositories/one/artifacts/v1/labels", json_body={"id": label_id}),
                (404,))  # fmt: skip


def test_deleting_an_artifact_drops_its_labels(api, registry):
    project, _ = api.create_project()
    repo = f"{project}/app"
    digest, _ = api.push_image(repo, "v1")
    label_id = create_label(api)
    expect_status(api.post(f"projects/{project}/repositories/app/artifacts/v1/labels", json_body={"id": label_id}), 200)
    expect_status(api.delete(f"/v2/{repo}/manifests/{digest}"), 202)
    drain()
    assert attachments(registry, label_id) == []
    assert labels_on(repo, [digest]) == {digest: []}
    assert api.get(f"labels/{label_id}").status_code == 200  # the label itself stays


def test_deleting_a_repository_drops_its_labels(api, registry):
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")
    label_id = create_label(api)
    expect_status(api.post(f"projects/{project}/repositories/app/artifacts/v1/labels", json_body={"id": label_id}), 200)
    expect_status(api.delete(f"projects/{project}/repositories/app"), 200)
    drain()
    assert attachments(registry, label_id) == []


def test_deleted_project_takes_its_labels(api, registry):
    """Contract with the project service: DELETE_PROJECT carries `detail["project_id"]`."""
    from chalicelib.events import Event, EventType
    from chalicelib.wiring import services

    project, project_id = api.create_project()
    kept = create_label(api)
    doomed = [create_label(api, project_id=project_id) for _ in range(2)]
    expect_status(api.delete(f"projects/{project}"), 200)
    services().events.publish(Event.now(EventType.DELETE_PROJECT, project=project, detail={"project_id": project_id}))
    drain()
    for label_id in doomed:
        check_error(api.get(f"labels/{label_id}"), (404,))
    rows = registry.dynamodb.query(
        TableName=registry.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"LABELS#p#{project_id}"}},
    )["Items"]
    assert rows == []
    assert api.get(f"labels/{kept}").status_code == 200


def test_two_attaches_of_one_label_race(api, monkeypatch):
    serialise_aws_calls(monkeypatch)
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")
    label_id = create_label(api)
    path = f"projects/{project}/repositories/app/artifacts/v1/labels"

    def attach(_index: int, client: Catalogue) -> int:
        return client.post(path, json_body={"id": label_id}).status_code

    assert sorted(run_together(api, 4, attach)) == [200, 409, 409, 409]


def test_delete_racing_attach_leaves_no_attachment(api, registry, monkeypatch):
    serialise_aws_calls(monkeypatch)
    project, _ = api.create_project()
    repo = f"{project}/app"
    digest, _ = api.push_image(repo, "v1")
    path = f"projects/{project}/repositories/app/artifacts/v1/labels"
    outcomes = set()
    for _round in range(6):
        label_id = create_label(api)

        def race(index: int, client: Catalogue, label_id: int = label_id) -> int:
            if index == 0:
                return client.delete(f"labels/{label_id}").status_code
            return client.post(path, json_body={"id": label_id}).status_code

        results = run_together(api, 2, race)
        assert results[0] == 200 and results[1] in (200, 404), results
        outcomes.add(results[1])
        assert attachments(registry, label_id) == []
        assert labels_on(repo, [digest]) == {digest: []}
    assert outcomes  # every round ended consistent, whichever side won


BAD_LABEL_BODIES = [
    b'{"name": ',
    b"[]",
    b"\xff\xfe",
    b"null",
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 129},
    {"name": 5},
    {"name": "ok", "color": "#" + "0" * 40},
    {"name": "ok", "scope": "x"},
    {"name": "ok", "scope": "p"},
    {"name": "ok", "scope": "p", "project_id": "one"},
    {"name": "ok", "scope": "p", "project_id": -1},
    {"name": "ok", "scope": "p", "project_id": 987654},
    {"name": "ok", "unknown": True},
    {"scope": "g"},
]


@pytest.mark.parametrize("payload", BAD_LABEL_BODIES)
def test_bad_label_bodies_create_nothing(api, payload):
    kwargs = {"data": payload, "content_type": "application/json"} if isinstance(payload, bytes) else {}
    response = api.post("labels", json_body=None if isinstance(payload, bytes) else payload, **kwargs)
    check_error(response, (400, 404))
    assert api.get("labels").get_json() == []


@pytest.mark.parametrize("payload", [b'{"name": ', b"[]", {"name": ""}, {"name": 1}, {"color": "c" * 40}, {"x": 1}])
def test_bad_label_updates_change_nothing(api, payload):
    label_id = create_label(api, "stable", color="#111111")
    kwargs = {"data": payload, "content_type": "application/json"} if isinstance(payload, bytes) else {}
    response = api.put(f"labels/{label_id}", json_body=None if isinstance(payload, bytes) else payload, **kwargs)
    check_error(response)
    label = api.get(f"labels/{label_id}").get_json()
    assert (label["name"], label["color"]) == ("stable", "#111111")


@pytest.mark.parametrize("label_id", ["abc", "-1", "0x1", "99999999999999999999", "1.5"])
def test_bad_label_ids(api, label_id):
    for method in ("GET", "PUT", "DELETE"):
        check_error(api.request(method, f"labels/{label_id}", json_body={"name": "x"}), (400, 404))


@pytest.mark.parametrize(
    "query",
    [
        {"scope": "x"},
        {"scope": "p"},
        {"scope": "p", "project_id": "abc"},
        {"scope": "p", "project_id": "424242"},
        {"page_size": "1000"},
        {"page": "-1"},
        {"q": "color=red"},
        {"sort": "color"},
    ],
)
def test_bad_label_list_queries(api, query):
    check_error(api.get("labels", query=query), (400, 404))


@pytest.mark.parametrize("payload", [b'{"id": ', b"[]", b"{}", {"id": "one"}, {"id": 0}, {"id": -3}, {"id": 2**70}])
def test_bad_attach_bodies(api, payload):
    project, _ = api.create_project()
    repo = f"{project}/app"
    digest, _ = api.push_image(repo, "v1")
    create_label(api)
    path = f"projects/{project}/repositories/app/artifacts/v1/labels"
    kwargs = {"data": payload, "content_type": "application/json"} if isinstance(payload, bytes) else {}
    check_error(api.post(path, json_body=None if isinstance(payload, bytes) else payload, **kwargs))
    assert labels_on(repo, [digest]) == {digest: []}


@pytest.mark.parametrize("reference", ["bad:ref", "sha256:zz", "-tag", "a" * 200])
def test_bad_references_and_names(api, reference):
    project, _ = api.create_project()
    api.push_image(f"{project}/app", "v1")
    label_id = create_label(api)
    base = f"projects/{project}/repositories"
    check_error(api.post(f"{base}/app/artifacts/{reference}/labels", json_body={"id": label_id}), (400, 404))
    check_error(api.delete(f"{base}/app/artifacts/{reference}/labels/{label_id}"), (400, 404))
    check_error(api.post(f"{base}/BAD%252Fname/artifacts/v1/labels", json_body={"id": label_id}), (400, 404))
    check_error(api.delete(f"{base}/app/artifacts/v1/labels/abc"), (400,))
    check_error(api.post(f"{base}/app/artifacts/v1/labels", json_body={"id": label_id}, auth=("admin", "bad")), (401,))
