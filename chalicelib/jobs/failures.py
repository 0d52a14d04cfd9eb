"""What every state machine's Catch hands its failure Task: the reason to record on the job row."""

from __future__ import annotations

from typing import Any


def reason(event: dict[str, Any]) -> str:
    """`Error: Cause` from the Catch's `$.error` (the cause cut to what a job row keeps)."""
    error = event.get("error") or {}
    return f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:1500]}"
