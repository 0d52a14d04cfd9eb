"""Powertools instances: JSON logs, EMF metrics and X-Ray traces, configured by POWERTOOLS_* variables.

Created once at import; none of them calls AWS at import time. Locally the runner disables tracing
and metrics output (there is no X-Ray daemon or CloudWatch agent), logs stay on.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="registry")
metrics = Metrics(namespace="Registry", service="registry")
tracer = Tracer(service="registry")
