"""Powertools instances: JSON logs, EMF metrics and X-Ray traces, configured by POWERTOOLS_* variables.

Created once at import; none of them calls AWS at import time. Locally the runner disables tracing
and metrics output (there is no X-Ray daemon or CloudWatch agent), logs stay on.

Metrics go through `count` and `flush` rather than the Metrics object directly: Powertools 3
still prints a batch when 100 values pile up even with POWERTOOLS_METRICS_DISABLED, and warns on
every empty flush. `count` records nothing when metrics are disabled, and `flush` writes only
when there is something to write.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = Logger(service="registry")
metrics = Metrics(namespace="Registry", service="registry")
tracer = Tracer(service="registry")


def count(name: str, value: float = 1, unit: str = "Count") -> None:
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=unit, value=value)


def flush() -> None:
    """One EMF line for the request's metrics, if it recorded any."""
    if metrics.metric_set:
        metrics.flush_metrics(raise_on_empty_metrics=False)
