"""Scheduled runs on AWS: EventBridge Scheduler invokes `job_schedule` with `{"vendor_type": ...}` at
each cron slot of a job kind's schedule, and with `{"check": "registry_health"}` at the fixed rate
the remote registries' health is refreshed (Harbor: every 5 minutes). Locally,
`chalicelib/local/scheduler.py` calls the same service methods from a thread."""

from __future__ import annotations

from typing import Any

from chalicelib.core.jobs import VendorType
from chalicelib.wiring import services

REGISTRY_HEALTH = "registry_health"


def run_scheduled(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("check") == REGISTRY_HEALTH:
        return {"statuses": services().registries.refresh_health()}
    now = services().clock()
    if event["vendor_type"] == VendorType.RETENTION:  # one schedule per policy, not per kind
        return {"job_ids": [job.job_id for job in services().retention_runs.run_due(now)]}
    if event["vendor_type"] == VendorType.REPLICATION:  # one schedule per policy
        return {"job_ids": [job.job_id for job in services().replication.run_due(now)]}
    job = services().jobs.run_due(str(event["vendor_type"]), now)
    return {"job_id": job.job_id if job else None}
