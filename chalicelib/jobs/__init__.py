"""Step Functions Task handlers, the scheduled entry point and the event consumer.

The Lambda entry points are one table (`entrypoints.ENTRY_POINTS`): `app.py` registers a
`lambda_function` per row, and the local runner dispatches moto's Lambda Task invocations to the
same handlers (`HANDLERS`). The event consumer is a blueprint (`events.bp`, an EventBridge rule).
"""

from __future__ import annotations

from chalicelib.jobs.entrypoints import ENTRY_POINTS, HANDLERS
from chalicelib.jobs.events import bp as events_bp

BLUEPRINTS = (events_bp,)
__all__ = ["BLUEPRINTS", "ENTRY_POINTS", "HANDLERS"]
