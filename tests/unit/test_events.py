"""The event bus: delivery off the caller's thread, in order, and failures that stay contained."""

from __future__ import annotations

import threading

from chalicelib.events import Event, EventBus, EventType, current_operator, set_operator


def test_events_are_delivered_in_order_on_another_thread() -> None:
    bus = EventBus()
    seen: list[tuple[str | None, str]] = []
    caller = threading.get_ident()
    threads: set[int] = set()

    def subscriber(event: Event) -> None:
        threads.add(threading.get_ident())
        seen.append((event.digest, event.type.value))

    bus.subscribe(subscriber)
    for n in range(50):
        bus.publish(Event.now(EventType.PULL_ARTIFACT, digest=f"d{n}"))
    assert bus.drain(5)
    assert seen == [(f"d{n}", "PULL_ARTIFACT") for n in range(50)]
    assert caller not in threads


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    bus.publish(Event.now(EventType.PUSH_ARTIFACT, repository="p/r"))
    bus.publish(Event.now(EventType.DELETE_ARTIFACT, repository="p/r"))
    assert bus.drain(5)
    assert [e.type for e in got] == [EventType.PUSH_ARTIFACT, EventType.DELETE_ARTIFACT]


def test_a_failing_publisher_never_raises_into_the_caller() -> None:
    class Down:
        def publish(self, event: Event) -> None:
            raise ConnectionError("bus unreachable")

    EventBus(Down()).publish(Event.now(EventType.PUSH_ARTIFACT))


def test_operator_comes_from_the_request_context_and_resets() -> None:
    set_operator("alice")
    assert Event.now(EventType.PUSH_ARTIFACT).operator == "alice"
    set_operator(None)
    assert current_operator() == "anonymous"


def test_round_trip_through_a_dict() -> None:
    event = Event.now(EventType.DELETE_TAG, project="p", repository="p/r", tag="v1", detail={"k": 1})
    assert Event.from_dict(event.to_dict()) == event
