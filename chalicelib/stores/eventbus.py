"""The AWS side of domain events: publish to EventBridge (the consumer is `chalicelib/jobs/events.py`).

Events go to the account's default bus with source `SOURCE` and the event type as detail-type;
the detail is `Event.to_dict()`. The default bus because Chalice's `on_cw_event` subscribes there,
and one rule (created by `chalice package`) routes every registry event to the consumer Lambda.
`PutEvents` is synchronous on the request path (~10 ms on AWS): a Lambda may be frozen as soon as
it answers, so an event handed to a background thread could be lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.events import Event

SOURCE = "oci-registry"


@dataclass
class EventBridgePublisher:
    client_factory: Callable[[], Any]
    bus_name: str = "default"
    _client: Any = None

    def publish(self, event: Event) -> None:
        if self._client is None:
            self._client = self.client_factory()
        entry = {"Source": SOURCE, "DetailType": event.type.value, "Detail": json.dumps(event.to_dict()),
                 "EventBusName": self.bus_name}  # fmt: skip
        result = self._client.put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the event: {result['Entries'][0].get('ErrorMessage')}")
