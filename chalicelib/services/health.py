"""Component health in Harbor's shape: each backing service probed with its cheapest read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.observability import logger


class HealthService:
    def __init__(self, probes: dict[str, Callable[[], None]]) -> None:
        self._probes = probes

    def components(self) -> list[dict[str, Any]]:
        results = []
        for name, probe in self._probes.items():
            try:
                probe()
            except Exception as exc:  # any failure means the component is not usable
                logger.warning("health probe failed", extra={"component": name, "error": type(exc).__name__})
                results.append({"name": name, "status": "unhealthy", "error": type(exc).__name__})
            else:
                results.append({"name": name, "status": "healthy"})
        return results
