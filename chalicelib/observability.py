"""Powertools instances: JSON logs, EMF metrics and X-Ray traces, configured by POWERTOOLS_* variables.

The logger and the metrics are created at import; none of them calls AWS at import time. The
Tracer is created on the first traced call: it imports the X-Ray SDK and patches botocore (and
requests), about half of the handler's import time, which a request that is not traced (the
management API, the token endpoint, job handlers) never needs. Locally the runner disables
tracing and metrics output (there is no X-Ray daemon or CloudWatch agent), logs stay on.

Metrics go through `count` and `flush` rather than the Metrics object directly: Powertools 3
still prints a batch when 100 values pile up even with POWERTOOLS_METRICS_DISABLED, and warns on
every empty flush. `count` records nothing when metrics are disabled, and `flush` writes only
when there is something to write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service="registry")
metrics = Metrics(namespace="Registry", service="registry")
F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _tracer() -> Tracer:
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 (imports X-Ray and patches botocore)

    return Tracer(service="registry")


def prepare_tracer() -> None:
    """Create the Tracer now: a long-running server (the local runner) pays for the X-Ray import
    at start rather than in its first traced request (~0.5 s of the first push after a start)."""
    _tracer()


def traced(capture_response: bool = True) -> Callable[[F], F]:
    """`Tracer.capture_method`, with the Tracer created on the first call of a traced function."""

    def decorate(function: F) -> F:
        @functools.cache
        def captured() -> Callable[..., Any]:
            return _tracer().capture_method(capture_response=capture_response)(function)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            return captured()(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def count(name: str, value: float = 1, unit: str = "Count") -> None:
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=unit, value=value)


def flush() -> None:
    """One EMF line for the request's metrics, if it recorded any."""
    if metrics.metric_set:
        metrics.flush_metrics(raise_on_empty_metrics=False)
