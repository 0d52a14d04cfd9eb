"""Harbor's /system/gc API: shapes, the schedule, and bad input (always Harbor's envelope with a
4xx, never a 500, and nothing half-written)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.functional.jobs.conftest import API, GcRegistry

PASSWORD = "Jobs-Tests-1"


def _errors(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert isinstance(body["errors"], list) and body["errors"][0]["message"], body
    return str(body["errors"][0]["code"])


def _user(gc: GcRegistry, name: str) -> tuple[str, str]:
    response = gc.post(f"{API}/users", json={"username": name, "password": PASSWORD, "email": f"{name}@example.com",
                                              "realname": name})  # fmt: skip
    assert response.status_code == 201, response.get_data()
    return name, PASSWORD


def test_history_item_log_and_schedule_have_harbors_shapes(gc: GcRegistry) -> None:
    job = gc.run_gc(dry_run=True, workers=2)
    assert set(job) >= {"id", "job_name", "job_kind", "job_parameters", "schedule", "job_status",
                        "creation_time", "update_time"}  # fmt: skip
    assert "deleted" not in job  # false: omitted, as Harbor does
    parameters = json.loads(job["job_parameters"])
    assert parameters["dry_run"] is True and parameters["workers"] == 2
    assert {"freed_space", "purged_blobs", "purged_manifests"} <= set(parameters)
    listed = gc.get(f"{API}/system/gc")
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    assert listed.get_json()[0]["id"] == job["id"]
    log = gc.get(f"{API}/system/gc/{job['id']}/log")
    assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain")
    assert "job ended: Success" in log.get_data(as_text=True)

    assert gc.get(f"{API}/system/gc/schedule").get_data() == b""  # no schedule: Harbor sends no body
    body = {"schedule": {"type": "Custom", "cron": "0 30 2 * * *"}, "parameters": {"delete_untagged": False}}
    assert gc.post(f"{API}/system/gc/schedule", json=body).status_code == 201
    schedule = gc.get(f"{API}/system/gc/schedule").get_json()
    assert schedule["schedule"]["type"] == "Custom" and schedule["schedule"]["cron"] == "0 30 2 * * *"
    assert schedule["schedule"]["next_scheduled_time"].endswith("T02:30:00.000Z")
    assert json.loads(schedule["job_parameters"]) == {"delete_untagged": False, "dry_run": False, "workers": 1}
    daily = {"schedule": {"type": "Daily"}, "parameters": {}}
    assert gc.put(f"{API}/system/gc/schedule", json=daily).status_code == 200
    assert gc.get(f"{API}/system/gc/schedule").get_json()["schedule"]["cron"] == "0 0 0 * * *"
    assert gc.put(f"{API}/system/gc/schedule", json={"schedule": {"type": "None"}}).status_code == 200
    assert gc.get(f"{API}/system/gc/schedule").get_data() == b""  # no schedule: Harbor sends no body


def test_history_pages_sorts_and_filters(gc: GcRegistry) -> None:
    ids = [gc.run_gc(dry_run=True)["id"] for _ in range(3)]
    page = gc.get(f"{API}/system/gc", query_string={"page": "1", "page_size": "2", "sort": "id"})
    assert [j["id"] for j in page.get_json()] == ids[:2]
    assert page.headers["X-Total-Count"] == "3" and 'rel="next"' in page.headers["Link"]
    filtered = gc.get(f"{API}/system/gc", query_string={"q": f"id={ids[1]}"})
    assert [j["id"] for j in filtered.get_json()] == [ids[1]]


def test_a_scheduled_run_starts_once_per_cron_slot(gc: GcRegistry) -> None:
    from chalicelib.local.scheduler import Scheduler
    from chalicelib.wiring import services

    every_second = {"schedule": {"type": "Custom", "cron": "* * * * * *"}, "parameters": {"dry_run": True}}
    assert gc.put(f"{API}/system/gc/schedule", json=every_second).status_code == 200
    scheduler = Scheduler(lambda: services().jobs, interval=3600)
    now = time.time() + 2
    scheduler.tick(now)
    scheduler.tick(now)  # the same slot again: no second run
    history = gc.get(f"{API}/system/gc").get_json()
    assert len(history) == 1 and history[0]["job_kind"] == "SCHEDULE"
    assert history[0]["schedule"]["type"] == "Custom"
    assert gc.wait_gc(history[0]["id"])["job_status"] == "Success"
    scheduler.tick(now + 5)
    assert len(gc.get(f"{API}/system/gc").get_json()) == 2
    gc.wait_gc(gc.get(f"{API}/system/gc").get_json()[0]["id"])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({"schedule": {"type": "Sometimes"}}).encode(),
        json.dumps({"schedule": {"type": "Custom", "cron": "0 0 * * *"}}).encode(),  # five fields
        json.dumps({"schedule": {"type": "Custom", "cron": "0 0 25 * * *"}}).encode(),
        json.dumps({"schedule": {"type": "Custom", "cron": "x" * 5000}}).encode(),
        json.dumps({"schedule": {"type": "Manual"}, "parameters": {"workers": 0}}).encode(),
        json.dumps({"schedule": {"type": "Manual"}, "parameters": {"workers": 11}}).encode(),
        json.dumps({"schedule": {"type": "Manual"}, "parameters": {"workers": "4"}}).encode(),
        json.dumps({"schedule": {"type": "Manual"}, "parameters": {"dry_run": "yes"}}).encode(),
        json.dumps({"schedule": {"type": "Manual"}, "parameters": {"shred": True}}).encode(),
        json.dumps({"schedule": {"type": "Daily"}, "unknown": 1}).encode(),
        json.dumps({"parameters": {}}).encode(),
    ],
)
def test_bad_schedule_bodies_are_400_and_change_nothing(gc: GcRegistry, body: bytes) -> None:
    daily = {"schedule": {"type": "Daily"}, "parameters": {"workers": 3}}
    assert gc.put(f"{API}/system/gc/schedule", json=daily).status_code == 200
    before = gc.get(f"{API}/system/gc/schedule").get_json()
    for method in ("POST", "PUT"):
        response = gc.request(method, f"{API}/system/gc/schedule", data=body,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        assert _errors(response, 400) == "BAD_REQUEST"
    assert gc.get(f"{API}/system/gc/schedule").get_json() == before
    assert gc.get(f"{API}/system/gc").get_json() == []


@pytest.mark.parametrize("gc_id", ["abc", "-1", "1.5", "9" * 40, "0x10"])
def test_bad_ids_are_400(gc: GcRegistry, gc_id: str) -> None:
    assert _errors(gc.get(f"{API}/system/gc/{gc_id}"), 400) == "BAD_REQUEST"
    assert _errors(gc.put(f"{API}/system/gc/{gc_id}"), 400) == "BAD_REQUEST"
    assert _errors(gc.get(f"{API}/system/gc/{gc_id}/log"), 400) == "BAD_REQUEST"


def test_unknown_ids_are_404(gc: GcRegistry) -> None:
    assert _errors(gc.get(f"{API}/system/gc/4242"), 404) == "NOT_FOUND"
    assert _errors(gc.put(f"{API}/system/gc/4242"), 404) == "NOT_FOUND"
    assert _errors(gc.get(f"{API}/system/gc/4242/log"), 404) == "NOT_FOUND"


@pytest.mark.parametrize(
    "query",
    [{"page_size": "100000"}, {"page_size": "0"}, {"page": "-2"}, {"page": "x"}, {"q": "id=~("},
     {"q": "nosuch=1"}, {"sort": "password"}, {"q": "id=" + "9" * 5000}],
)  # fmt: skip
def test_bad_list_queries_are_400(gc: GcRegistry, query: dict[str, str]) -> None:
    response = gc.get(f"{API}/system/gc", query_string=query)
    assert 400 <= response.status_code < 500, response.get_data()
    _errors(response, response.status_code)


def test_credentials_and_roles(gc: GcRegistry) -> None:
    user = _user(gc, "gcdev")
    paths = [("GET", f"{API}/system/gc"), ("GET", f"{API}/system/gc/1"), ("PUT", f"{API}/system/gc/1"),
             ("GET", f"{API}/system/gc/1/log"), ("GET", f"{API}/system/gc/schedule")]  # fmt: skip
    manual = json.dumps({"schedule": {"type": "Manual"}, "parameters": {}}).encode()
    for method, path in [*paths, ("POST", f"{API}/system/gc/schedule"), ("PUT", f"{API}/system/gc/schedule")]:
        send = {"data": manual, "headers": {"Content-Type": "application/json"}}
        assert _errors(gc.request(method, path, auth=None, **send), 401) == "UNAUTHORIZED"
        assert _errors(gc.request(method, path, auth=("admin", "wrong-password"), **send), 401) == "UNAUTHORIZED"
        assert _errors(gc.request(method, path, auth=user, **send), 403) == "FORBIDDEN"
    assert gc.get(f"{API}/system/gc").get_json() == []
    assert gc.get(f"{API}/system/gc/schedule").get_data() == b""  # no schedule: Harbor sends no body


def test_post_on_an_execution_is_refused(gc: GcRegistry) -> None:
    assert _errors(gc.post(f"{API}/system/gc/1", json={}), 400) == "BAD_REQUEST"


def test_stopping_a_finished_run_changes_nothing(gc: GcRegistry) -> None:
    job = gc.run_gc(dry_run=True)
    assert gc.put(f"{API}/system/gc/{job['id']}").status_code == 200
    assert gc.gc_job(job["id"])["job_status"] == "Success"
