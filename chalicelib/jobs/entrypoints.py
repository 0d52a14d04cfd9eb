"""The Lambda entry points of background work, in one table.

Each row is one Lambda function: its name (Chalice's `lambda_function` name; CloudFormation's
logical id is the name in CamelCase), the handler it runs, the state machine whose Task states
invoke it (None: EventBridge Scheduler invokes it), the deployment profile it runs with (its role
and environment, spelled in `infra/entrypoints.py`) and its timeout. Everything else is derived:

- `app.py` registers one `lambda_function` per row;
- the local runner dispatches moto's Lambda Task invocations by name (`HANDLERS`);
- `infra/entrypoints.py` writes each function's properties, each state machine's
  `DefinitionSubstitutions` and the invoke grant of its role into the template `chalice package`
  merges (`infra/package.sh`).

A new job kind adds its rows here and its `infra/statemachines/<machine>.asl.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.jobs import gc, replication, retention, scan_all, scan_export, scans, schedules, webhooks

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Profile = Literal["jobs", "webhook"]
# A Task that scans or sweeps works in budgeted calls but may take minutes; Lambda's maximum.
LONG = 900


@dataclass(frozen=True)
class EntryPoint:
    name: str
    handler: Handler
    machine: str | None
    profile: Profile
    timeout: int

    @property
    def logical_id(self) -> str:
        """`gc_begin` -> `GcBegin`: the resource `chalice package` generates for the function."""
        return "".join(part.capitalize() for part in self.name.split("_"))


ENTRY_POINTS = (
    EntryPoint("gc_begin", gc.begin, "gc", "jobs", LONG),
    EntryPoint("gc_untagged", gc.untagged, "gc", "jobs", LONG),
    EntryPoint("gc_mark", gc.mark, "gc", "jobs", LONG),
    EntryPoint("gc_sweep", gc.sweep, "gc", "jobs", LONG),
    EntryPoint("gc_finish", gc.finish, "gc", "jobs", LONG),
    EntryPoint("gc_fail", gc.fail, "gc", "jobs", LONG),
    EntryPoint("job_schedule", schedules.run_scheduled, None, "jobs", LONG),
    EntryPoint("retention_begin", retention.begin, "retention", "jobs", LONG),
    EntryPoint("retention_task", retention.task, "retention", "jobs", LONG),
    EntryPoint("retention_task_failed", retention.task_failed, "retention", "jobs", LONG),
    EntryPoint("retention_finish", retention.finish, "retention", "jobs", LONG),
    EntryPoint("retention_fail", retention.fail, "retention", "jobs", LONG),
    # One POST: a connect and a read timeout of at most 60 s each, with room to record the outcome.
    EntryPoint("webhook_attempt", webhooks.attempt, "webhook", "webhook", 150),
    EntryPoint("webhook_finish", webhooks.finish, "webhook", "webhook", 60),
    EntryPoint("webhook_fail", webhooks.fail, "webhook", "webhook", 60),
    # Scans: each call is a few adapter requests of at most 5 s each, and a report to store.
    EntryPoint("scan_prepare", scans.prepare, "scan", "jobs", 120),
    EntryPoint("scan_submit", scans.submit, "scan", "jobs", 120),
    EntryPoint("scan_poll", scans.poll, "scan", "jobs", 300),
    EntryPoint("scan_task_failed", scans.task_failed, "scan", "jobs", 120),
    EntryPoint("scan_finish", scans.finish, "scan", "jobs", 120),
    EntryPoint("scan_fail", scans.fail, "scan", "jobs", 120),
    # Scan all: each step starts at most a batch of scans (one DynamoDB transaction and one
    # StartExecution per scan), well inside the timeout.
    EntryPoint("scan_all_begin", scan_all.begin, "scan_all", "jobs", 60),
    EntryPoint("scan_all_step", scan_all.step, "scan_all", "jobs", 300),
    EntryPoint("scan_all_finish", scan_all.finish, "scan_all", "jobs", 60),
    EntryPoint("scan_all_fail", scan_all.fail, "scan_all", "jobs", 60),
    # Scan data export: each step reads at most a batch of artifacts' reports and writes one part;
    # the finish joins the parts (their size bounds its time).
    EntryPoint("scan_export_begin", scan_export.begin, "scan_export", "jobs", 60),
    EntryPoint("scan_export_step", scan_export.step, "scan_export", "jobs", 300),
    EntryPoint("scan_export_finish", scan_export.finish, "scan_export", "jobs", 300),
    EntryPoint("scan_export_fail", scan_export.fail, "scan_export", "jobs", 60),
    # Replication: a Task copies until its budget (REGISTRY_REPLICATION_TASK_BUDGET_SECONDS) is spent.
    EntryPoint("replication_begin", replication.begin, "replication", "jobs", LONG),
    EntryPoint("replication_task", replication.task, "replication", "jobs", LONG),
    EntryPoint("replication_task_failed", replication.task_failed, "replication", "jobs", LONG),
    EntryPoint("replication_finish", replication.finish, "replication", "jobs", LONG),
    EntryPoint("replication_fail", replication.fail, "replication", "jobs", LONG),
)

# Function name -> handler (the local runner's dispatch; tests may replace an entry).
HANDLERS: dict[str, Handler] = {entry.name: entry.handler for entry in ENTRY_POINTS}
