"""What every state machine's Catch hands its failure Task: the reason to record on the job row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.observability import logger


def reason(event: dict[str, Any]) -> str:
    """`Error: Cause` from the Catch's `$.error` (the cause cut to what a job row keeps)."""
    error = event.get("error") or {}
    return f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:1500]}"


def record(kind: str, event: dict[str, Any], fail: Callable[[int, str], None]) -> dict[str, Any]:
    """The failure Task of a job kind: log the reason and hand it to the service's `fail` (which
    leaves a stopped job Stopped)."""
    why = reason(event)
    logger.error(f"{kind} job failed", job_id=event.get("job_id"), reason=why)
    fail(int(event["job_id"]), why)
    return {"job_id": event["job_id"]}
