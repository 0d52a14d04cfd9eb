"""The registry with its job engine: moto's Step Functions executes `infra/statemachines/*.asl.json`
and dispatches each Lambda Task to the registry's handler, as `make serve` does.

`gc` is the `registry` fixture plus the GC state machine, with a zero GC window (so what a test
pushed a moment ago is already old enough to collect) unless the test configures another.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import REGION

API = "/api/v2.0"
FINAL = {"Success", "Error", "Stopped"}


class GcRegistry(LiveRegistry):
    """Helpers for GC over HTTP (Harbor's /system/gc API)."""

    def start_gc(self, **parameters: Any) -> int:
        body = {"schedule": {"type": "Manual"}, "parameters": parameters}
        response = self.post(f"{API}/system/gc/schedule", json=body)
        assert response.status_code == 201, (response.status_code, response.get_data()[:500])
        return int(response.headers["Location"].rsplit("/", 1)[-1])

    def gc_job(self, job_id: int) -> dict[str, Any]:
        response = self.get(f"{API}/system/gc/{job_id}")
        assert response.status_code == 200, response.get_data()[:500]
        return dict(response.get_json())

    def wait_gc(self, job_id: int, timeout: float = 120) -> dict[str, Any]:
        """The job's record once it has ended and its execution has stopped running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.gc_job(job_id)
            if job["job_status"] in FINAL:
                wait_for_executions(deadline - time.monotonic())
                return job
            time.sleep(0.02)
        raise AssertionError(f"GC job {job_id} did not finish: {self.gc_job(job_id)}")

    def run_gc(self, **parameters: Any) -> dict[str, Any]:
        """Run GC to the end; returns the history record with `job_parameters` decoded as `result`."""
        import json

        job = self.wait_gc(self.start_gc(**parameters))
        assert job["job_status"] == "Success", (job, self.gc_log(job["id"]))
        job["result"] = json.loads(job["job_parameters"])
        return job

    def gc_log(self, job_id: int) -> str:
        return self.get(f"{API}/system/gc/{job_id}/log").get_data(as_text=True)


def wait_for_executions(timeout: float) -> None:
    """No state machine execution is left running (none may outlive its test's moto world)."""
    client = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + max(timeout, 1)
    for machine in client.list_state_machines()["stateMachines"]:
        while client.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")["executions"]:
            assert time.monotonic() < deadline, "a state machine execution is still running"
            time.sleep(0.02)


@pytest.fixture
def gc(registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcRegistry]:
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.local import moto_patches, stepfunctions

    # GC Tasks run on moto's execution threads beside the test's requests; DynamoDB answers each
    # call atomically, moto only with the runner's lock (a Scan would otherwise see a table change).
    for name, method in moto_patches.atomic_calls().items():
        monkeypatch.setattr(DynamoDBBackend, name, method)

    stepfunctions.install()  # undone with the test's mock (moto restores its config)
    arns = stepfunctions.create_state_machines(boto3.client("stepfunctions", region_name=REGION), REGION)
    registry.__class__ = GcRegistry
    registry.configure(gc_state_machine_arn=arns["GARBAGE_COLLECTION"], gc_time_window_hours=0)
    assert isinstance(registry, GcRegistry)
    try:
        yield registry
    finally:
        from chalicelib.wiring import services

        services().gc.pause = lambda phase, job_id: None
        wait_for_executions(60)
