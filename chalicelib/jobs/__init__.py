"""Step Functions Task handlers and scheduled entry points (`@app.lambda_function`s).

`HANDLERS` maps each Lambda function name to its plain Python callable: `app.py` registers the
blueprints, and the local runner dispatches moto's Lambda Task invocations to the same callables.
"""

from __future__ import annotations

from chalicelib.jobs.events import bp as events_bp
from chalicelib.jobs.gc import HANDLERS as GC_HANDLERS
from chalicelib.jobs.gc import bp as gc_bp
from chalicelib.jobs.retention import HANDLERS as RETENTION_HANDLERS
from chalicelib.jobs.retention import bp as retention_bp
from chalicelib.jobs.schedules import HANDLERS as SCHEDULE_HANDLERS
from chalicelib.jobs.schedules import bp as schedules_bp
from chalicelib.jobs.webhooks import HANDLERS as WEBHOOK_HANDLERS
from chalicelib.jobs.webhooks import bp as webhooks_bp

BLUEPRINTS = (gc_bp, schedules_bp, events_bp, retention_bp, webhooks_bp)
HANDLERS = {**GC_HANDLERS, **SCHEDULE_HANDLERS, **RETENTION_HANDLERS, **WEBHOOK_HANDLERS}
