"""The consumer of domain events on AWS: EventBridge invokes it with each event the registry
published (`stores/eventbus.py`), and it hands the event to the same subscribers the local
in-process bus would (`EventBus.deliver`)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, CloudWatchEvent

from chalicelib.events import Event
from chalicelib.stores.eventbus import SOURCE
from chalicelib.wiring import services

bp = Blueprint(__name__)


def consume(detail: dict[str, Any]) -> None:
    services().events.deliver(Event.from_dict(detail))


@bp.on_cw_event({"source": [SOURCE]}, name="event_consumer")
def event_consumer(event: CloudWatchEvent) -> None:
    consume(event.detail)
