"""The scan data export state machine's Task handlers (`infra/statemachines/scan_export.asl.json`):
thin, one service call each. A step run twice writes the same part again (same rows, same key)."""

from __future__ import annotations

from typing import Any

from chalicelib.jobs import failures
from chalicelib.wiring import services


def begin(event: dict[str, Any]) -> dict[str, Any]:
    return services().scan_export.begin(int(event["job_id"]))


def step(event: dict[str, Any]) -> dict[str, Any]:
    """Export the next batch of artifacts as one part; `done` ends the loop."""
    return services().scan_export.step(int(event["job_id"]), event.get("cursor"), int(event.get("parts") or 0))


def finish(event: dict[str, Any]) -> dict[str, Any]:
    return services().scan_export.finish(int(event["job_id"]), int(event.get("parts") or 0))


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The Catch: record why the execution failed (a stopped one stays Stopped)."""
    return failures.record("scan data export", event, services().scan_export.fail)
