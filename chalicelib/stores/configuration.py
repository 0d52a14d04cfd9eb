"""The system configuration row (Harbor's `/configurations` values changed from their defaults)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core.clock import Clock, system_clock
from chalicelib.stores import keys
from chalicelib.stores.tables import ConfigRow


class ConfigurationStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def load(self) -> dict[str, Any]:
        try:
            values: dict[str, Any] = json.loads(ConfigRow.get(keys.CONFIG_PK, keys.CONFIG_PK).values)
        except ConfigRow.DoesNotExist:
            return {}
        return values

    def save(self, values: dict[str, Any]) -> None:
        ConfigRow(keys.CONFIG_PK, keys.CONFIG_PK, values=json.dumps(values), updated_at=int(self._clock())).save()
