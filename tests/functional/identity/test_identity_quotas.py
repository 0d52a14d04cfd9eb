"""Per-project storage quotas: the API, Harbor's accounting rules, and concurrent pushes."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest

from tests.functional.helpers import run_together
from tests.functional.identity.identity_support import (
    PASSWORD,
    digest_of,
    expect_error,
    expect_status,
)

THREADS = 8


def quota_of(harbor, project_id: int) -> dict[str, Any]:
    response = expect_status(harbor.get("quotas", query={"reference": "project", "reference_id": project_id}), 200)
    quotas = response.get_json()
    assert len(quotas) == 1, quotas
    return quotas[0]


def used(harbor, project_id: int) -> int:
    return int(quota_of(harbor, project_id)["used"]["storage"])


def push_exact(harbor, repo: str, config: bytes, layer: bytes, manifest: bytes, tag: str = "v1") -> str:
    harbor.push_blob(repo, config)
    harbor.push_blob(repo, layer)
    return str(expect_status(harbor.put_manifest(repo, tag, manifest), 201).headers["Docker-Content-Digest"])


def test_quota_shapes(harbor):
    name, project_id = harbor.create_project(storage_limit=123_456)
    quota = quota_of(harbor, project_id)
    assert quota["ref"] == {"id": project_id, "name": name, "owner_name": "admin"}
    assert quota["hard"] == {"storage": 123_456}
    assert quota["used"] == {"storage": 0}
    assert isinstance(quota["id"], int)
    for key in ("creation_time", "update_time"):
        assert key in quota
    single = expect_status(harbor.get(f"quotas/{quota['id']}"), 200).get_json()
    assert single == quota
    everything = expect_status(harbor.get("quotas", query={"page_size": 100}), 200)
    assert quota["id"] in [q["id"] for q in everything.get_json()]
    assert int(everything.headers["X-Total-Count"]) >= 2  # ours and library
    summary = expect_status(harbor.get(f"projects/{project_id}/summary"), 200).get_json()
    assert summary["quota"] == {"hard": {"storage": 123_456}, "used": {"storage": 0}}
    # Unlimited by default.
    _, unlimited_id = harbor.create_project()
    assert quota_of(harbor, unlimited_id)["hard"] == {"storage": -1}


def test_quota_visibility(harbor):
    name, project_id = harbor.create_project(storage_limit=10_000)
    quota_id = quota_of(harbor, project_id)["id"]
    limited, stranger = harbor.create_user()[0], harbor.create_user()[0]
    harbor.add_member(name, limited, 5)
    expect_status(harbor.get(f"quotas/{quota_id}", auth=(limited, PASSWORD)), 200)
    expect_error(harbor.get(f"quotas/{quota_id}", auth=(stranger, PASSWORD)), 404, "NOT_FOUND")
    expect_error(harbor.get(f"quotas/{quota_id}", auth=None), 401, "UNAUTHORIZED")
    listed = expect_status(harbor.get("quotas", auth=(stranger, PASSWORD), query={"page_size": 100}), 200).get_json()
    assert quota_id not in [q["id"] for q in listed]
    expect_error(harbor.get("quotas/987654321"), 404, "NOT_FOUND")


def test_update_quota(harbor):
    name, project_id = harbor.create_project(storage_limit=10_000)
    quota_id = quota_of(harbor, project_id)["id"]
    expect_status(harbor.put(f"quotas/{quota_id}", json_body={"hard": {"storage": 20_000}}), 200)
    assert quota_of(harbor, project_id)["hard"] == {"storage": 20_000}
    expect_status(harbor.put(f"quotas/{quota_id}", json_body={"hard": {"storage": -1}}), 200)
    assert quota_of(harbor, project_id)["hard"] == {"storage": -1}

    owner = harbor.create_user()[0]
    harbor.add_member(name, owner, 1)
    body = {"hard": {"storage": 1}}
    expect_error(harbor.put(f"quotas/{quota_id}", auth=(owner, PASSWORD), json_body=body), 403, "FORBIDDEN")
    expect_error(harbor.put(f"quotas/{quota_id}", auth=None, json_body=body), 401, "UNAUTHORIZED")
    # The project admin cannot raise it through the project either.
    expect_error(
        harbor.put(f"projects/{project_id}", auth=(owner, PASSWORD), json_body={"storage_limit": 5}), 403, "FORBIDDEN"
    )
    for bad in (
        {"hard": {"storage": -5}},
        {"hard": {"storage": "abc"}},
        {"hard": {"storage": None}},
        {"hard": {"storage": 1.5}},
        {"hard": {}},
        {},
        {"hard": {"storage": 10, "count": 3}},
        {"hard": {"storage": 10}, "used": {"storage": 0}},
        {"hard": "big"},
    ):
        expect_error(harbor.put(f"quotas/{quota_id}", json_body=bad), 400, "BAD_REQUEST")
    expect_error(harbor.put("quotas/987654321", json_body={"hard": {"storage": 10}}), 404, "NOT_FOUND")
    assert quota_of(harbor, project_id)["hard"] == {"storage": -1}


def test_push_over_the_limit_is_denied_with_harbors_message(harbor):
    name, project_id = harbor.create_project(storage_limit=1000)
    repo = f"{name}/app"
    expect_status(harbor.upload_blob(repo, os.urandom(600)), 201)
    assert used(harbor, project_id) == 600
    response = harbor.upload_blob(repo, os.urandom(600))
    entry = expect_error(response, 403, "DENIED")
    assert "exceed the configured upper limit of 1000" in entry["message"], entry
    assert re.search(r"adding 600\b", entry["message"]), entry
    assert used(harbor, project_id) == 600
    # What still fits is accepted; the exact limit is reachable.
    expect_status(harbor.upload_blob(repo, os.urandom(400)), 201)
    assert used(harbor, project_id) == 1000
    expect_error(harbor.upload_blob(repo, b"x"), 403, "DENIED")
    # Raising the limit lets the push through.
    quota_id = quota_of(harbor, project_id)["id"]
    expect_status(harbor.put(f"quotas/{quota_id}", json_body={"hard": {"storage": 2000}}), 200)
    expect_status(harbor.upload_blob(repo, os.urandom(600)), 201)
    assert used(harbor, project_id) == 1600


def test_manifest_push_over_the_limit_is_denied(harbor):
    config, layer, manifest = harbor.image()
    limit = len(config) + len(layer) + len(manifest) - 1
    name, project_id = harbor.create_project(storage_limit=limit)
    repo = f"{name}/app"
    harbor.push_blob(repo, config)
    harbor.push_blob(repo, layer)
    entry = expect_error(harbor.put_manifest(repo, "v1", manifest), 403, "DENIED")
    assert f"exceed the configured upper limit of {limit}" in entry["message"]
    assert used(harbor, project_id) == len(config) + len(layer)
    expect_error(harbor.pull(repo, "v1"), 404, "MANIFEST_UNKNOWN")


def test_a_blob_shared_by_two_repositories_counts_once(harbor):
    name, project_id = harbor.create_project(storage_limit=10_000)
    data = os.urandom(3000)
    harbor.push_blob(f"{name}/one", data)
    harbor.push_blob(f"{name}/two", data)
    harbor.push_blob(f"{name}/one", data)  # again, same repository
    assert used(harbor, project_id) == 3000
    # Images sharing a layer: the layer counts once.
    config_a, layer, manifest_a = harbor.image(layer=data)
    config_b, _, manifest_b = harbor.image(layer=data)
    push_exact(harbor, f"{name}/one", config_a, layer, manifest_a)
    push_exact(harbor, f"{name}/two", config_b, layer, manifest_b)
    assert used(harbor, project_id) == 3000 + len(config_a) + len(manifest_a) + len(config_b) + len(manifest_b)


def test_a_blob_shared_by_two_projects_counts_in_both(harbor):
    data = os.urandom(2000)
    first, first_id = harbor.create_project(storage_limit=10_000)
    second, second_id = harbor.create_project(storage_limit=10_000)
    harbor.push_blob(f"{first}/app", data)
    harbor.push_blob(f"{second}/app", data)
    assert used(harbor, first_id) == used(harbor, second_id) == 2000


def test_manifest_delete_releases_what_nothing_else_references(harbor):
    name, project_id = harbor.create_project(storage_limit=1_000_000)
    shared = os.urandom(5000)
    config_a, _, manifest_a = harbor.image(layer=shared)
    config_b, _, manifest_b = harbor.image(layer=shared)
    digest_a = push_exact(harbor, f"{name}/a", config_a, shared, manifest_a)
    digest_b = push_exact(harbor, f"{name}/b", config_b, shared, manifest_b)
    total = len(shared) + len(config_a) + len(manifest_a) + len(config_b) + len(manifest_b)
    assert used(harbor, project_id) == total

    # A deleted by digest: its config and manifest go, the shared layer stays (B uses it).
    expect_status(harbor.delete(f"/v2/{name}/a/manifests/{digest_a}"), 202)
    assert used(harbor, project_id) == total - len(config_a) - len(manifest_a)
    # B deleted: everything is released.
    expect_status(harbor.delete(f"/v2/{name}/b/manifests/{digest_b}"), 202)
    assert used(harbor, project_id) == 0
    summary = expect_status(harbor.get(f"projects/{project_id}/summary"), 200).get_json()
    assert summary["quota"]["used"]["storage"] == 0


def test_same_manifest_in_two_repositories_is_released_with_the_last_one(harbor):
    name, project_id = harbor.create_project(storage_limit=1_000_000)
    config, layer, manifest = harbor.image()
    digest = push_exact(harbor, f"{name}/a", config, layer, manifest)
    size = len(config) + len(layer) + len(manifest)
    assert used(harbor, project_id) == size
    push_exact(harbor, f"{name}/b", config, layer, manifest)
    assert used(harbor, project_id) == size
    expect_status(harbor.delete(f"/v2/{name}/a/manifests/{digest}"), 202)
    assert used(harbor, project_id) == size
    expect_status(harbor.delete(f"/v2/{name}/b/manifests/{digest}"), 202)
    assert used(harbor, project_id) == 0


def test_untagging_does_not_release(harbor):
    name, project_id = harbor.create_project(storage_limit=1_000_000)
    digest, sizes = harbor.push_image(f"{name}/app", "v1")
    before = used(harbor, project_id)
    assert before == sum(sizes.values())
    expect_status(harbor.delete(f"/v2/{name}/app/manifests/v1"), 202)
    assert used(harbor, project_id) == before
    expect_status(harbor.pull(f"{name}/app", digest), 200)


def test_release_makes_room_for_new_pushes(harbor):
    config, layer, manifest = harbor.image()
    size = len(config) + len(layer) + len(manifest)
    name, project_id = harbor.create_project(storage_limit=size + 10)
    digest = push_exact(harbor, f"{name}/app", config, layer, manifest)
    expect_error(harbor.upload_blob(f"{name}/app", os.urandom(size)), 403, "DENIED")
    expect_status(harbor.delete(f"/v2/{name}/app/manifests/{digest}"), 202)
    assert used(harbor, project_id) == 0
    expect_status(harbor.upload_blob(f"{name}/app", os.urandom(size)), 201)


def test_a_recreated_project_starts_with_a_clean_quota(harbor):
    """Deleting a project drops its blob associations (Harbor cleans project_blob and the quota), so a
    project re-created under the same name is charged for every blob pushed into it."""
    name, project_id = harbor.create_project(storage_limit=10_000)
    orphan = os.urandom(3000)
    expect_status(harbor.upload_blob(f"{name}/app", orphan), 201)  # never referenced by a manifest
    assert used(harbor, project_id) == 3000
    assert expect_status(harbor.get(f"projects/{project_id}/_deletable"), 200).get_json()["deletable"] is True
    expect_status(harbor.delete(f"projects/{project_id}"), 200)

    _, new_id = harbor.create_project(name, storage_limit=10_000)
    assert used(harbor, new_id) == 0
    expect_status(harbor.upload_blob(f"{name}/app", orphan), 201)
    assert used(harbor, new_id) == 3000
    expect_error(harbor.upload_blob(f"{name}/app", os.urandom(8000)), 403, "DENIED")


# ------------------------------------------------------------------------------------- races


class UsageWatcher:
    """Polls /quotas from its own client while a race runs; remembers the highest usage seen."""

    def __init__(self, harbor, project_id: int) -> None:
        self._client = harbor.clone()
        self._project_id = project_id
        self._stop = threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(used(self._client, self._project_id))
            self._stop.wait(0.003)  # let the pushers at the (unfair) moto lock between polls

    def __enter__(self) -> UsageWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_race_distinct_blobs_never_exceed_the_limit(harbor, atomic_aws_calls, attempt):
    sizes = [700 + 97 * i for i in range(THREADS)]
    blobs = [os.urandom(size) for size in sizes]
    limit = sum(sizes) // 2
    name, project_id = harbor.create_project(storage_limit=limit)

    def push(index: int, client) -> int:
        response = client.upload_blob(f"{name}/r{index % 3}", blobs[index])
        if response.status_code != 201:
            expect_error(response, 403, "DENIED")
        return response.status_code

    with UsageWatcher(harbor, project_id) as watcher:
        statuses = run_together(harbor, THREADS, push)
    assert set(statuses) <= {201, 403}, statuses
    accepted = [sizes[i] for i, status in enumerate(statuses) if status == 201]
    refused = [sizes[i] for i, status in enumerate(statuses) if status == 403]
    final = used(harbor, project_id)
    assert accepted, statuses
    assert final == sum(accepted) <= limit, (final, accepted, limit)
    assert watcher.samples and max(watcher.samples) <= limit, watcher.samples
    # Usage only grew during the race, so every refused blob was too big for the room left at the end.
    assert all(size > limit - final for size in refused), (refused, limit, final)
    for i, status in enumerate(statuses):
        expected = 200 if status == 201 else 404
        assert harbor.head(f"/v2/{name}/r{i % 3}/blobs/{digest_of(blobs[i])}").status_code == expected


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_race_same_blob_counts_once(harbor, atomic_aws_calls, attempt):
    data = os.urandom(4000)
    name, project_id = harbor.create_project(storage_limit=6000)  # room for one copy, not two

    def push(index: int, client) -> int:
        return client.upload_blob(f"{name}/r{index % 2}", data).status_code

    with UsageWatcher(harbor, project_id) as watcher:
        statuses = run_together(harbor, THREADS, push)
    assert statuses == [201] * THREADS, statuses
    assert used(harbor, project_id) == 4000
    assert watcher.samples and max(watcher.samples) <= 4000, watcher.samples


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_race_manifest_delete_and_push_sharing_a_layer_keep_usage_exact(harbor, atomic_aws_calls, attempt):
    """A manifest delete racing a push of another image that uses the same layer.

    Four projects race in parallel (8 threads). In each, the only image using layer L is deleted
    while a new image is pushed: its layer upload finds L still counted (so it is not charged
    again) and its manifest then references L. Whatever the interleaving, L is referenced at the
    end, so usage must be the new image's config + layer + manifest. The pushes start with small
    staggered delays so that each project's race lands at a different point of the delete.
    """
    pairs = THREADS // 2
    worlds = []
    for _ in range(pairs):
        name, project_id = harbor.create_project(storage_limit=10_000_000)
        shared = os.urandom(3000)
        old_config, _, old_manifest = harbor.image(layer=shared)
        old_digest = push_exact(harbor, f"{name}/old", old_config, shared, old_manifest)
        new_config, _, new_manifest = harbor.image(layer=shared)
        harbor.push_blob(f"{name}/new", new_config)
        expected = len(new_config) + len(shared) + len(new_manifest)
        worlds.append((name, project_id, old_digest, shared, new_manifest, expected))

    def work(index: int, client) -> int:
        name, _, old_digest, shared, new_manifest, _ = worlds[index // 2]
        if index % 2:
            return client.delete(f"/v2/{name}/old/manifests/{old_digest}").status_code
        time.sleep(0.004 * (index // 2) + 0.002 * attempt)
        client.push_blob(f"{name}/new", shared)
        return client.put_manifest(f"{name}/new", "v1", new_manifest).status_code

    statuses = run_together(harbor, THREADS, work)
    assert sorted(statuses) == [201] * pairs + [202] * pairs, statuses
    usage = {name: (used(harbor, project_id), expected) for name, project_id, _, _, _, expected in worlds}
    wrong = {name: f"used {actual}, expected {expected}" for name, (actual, expected) in usage.items()
             if actual != expected}  # fmt: skip
    assert not wrong, f"shared layer is 3000 bytes: {wrong}"
