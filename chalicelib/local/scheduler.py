"""The local stand-in for EventBridge Scheduler: a thread that starts scheduled jobs when due.

Every `interval` seconds it asks the job service to run each kind whose cron slot has passed
(`JobService.run_due`, the same call the `job_schedule` Lambda makes on AWS). The slot is claimed
with a conditional write, so a run is started once per slot even if two processes share a table;
slots missed while the process was down are not replayed, only the latest one runs (Harbor's
behaviour after a jobservice outage).

It also refreshes the health status of the remote registries every `registry_health_seconds`
(the `RegistryHealthTick` schedule on AWS), in a thread of its own, so a registry that takes its
timeout to answer never delays a job's start; a check still running when the next is due is not
doubled.

At start it also reconciles jobs a previous process left active: their moto executions died with
that process, so they are marked Error (a GC run's leftovers are resumed by the next run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chalicelib.core.jobs import VendorType
from chalicelib.observability import logger
from chalicelib.services.jobs import JobService


class Scheduler:
    def __init__(self, jobs: Callable[[], JobService], interval: float,
                 retention: Callable[[float], object] | None = None,
                 registry_health: Callable[[], object] | None = None,
                 registry_health_seconds: float = 300.0, *,
                 replication: Callable[[float], object] | None = None) -> None:  # fmt: skip
        self._jobs = jobs
        self._retention = retention  # tag retention: one schedule per policy (RetentionService.run_due)
        self._replication = replication  # replication: one schedule per policy (ReplicationService.run_due)
        self._registry_health = registry_health  # RegistryService.refresh_health
        self._registry_health_seconds = registry_health_seconds
        self._health_due = 0.0
        self._health_thread: threading.Thread | None = None
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        recovered = self._jobs().recover([str(v) for v in VendorType])
        if recovered:
            logger.warning("jobs interrupted by the last shutdown were marked Error", count=recovered)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self, now: float) -> None:
        self._check_registries(now)
        if self._retention is not None:
            try:
                self._retention(now)
            except Exception:
                logger.exception("scheduled retention failed to start")
        if self._replication is not None:
            try:
                self._replication(now)
            except Exception:
                logger.exception("scheduled replication failed to start")
        for vendor_type in VendorType:
            try:
                job = self._jobs().run_due(str(vendor_type), now)
            except Exception:  # one failing kind must not stop the scheduler
                logger.exception("scheduled job failed to start", vendor_type=str(vendor_type))
                continue
            if job is not None:
                logger.info("scheduled job started", vendor_type=str(vendor_type), job_id=job.job_id)

    def _check_registries(self, now: float) -> None:
        check = self._registry_health
        if check is None or now < self._health_due:
            return
        if self._health_thread is not None and self._health_thread.is_alive():
            return
        self._health_due = now + self._registry_health_seconds

        def run() -> None:
            try:
                check()
            except Exception:
                logger.exception("registry health check failed")

        self._health_thread = threading.Thread(target=run, name="registry-health", daemon=True)
        self._health_thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick(self._jobs().now())
