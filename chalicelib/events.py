"""Domain events: what happened, published only after the write that made it happen succeeded.

Services publish; consumers (audit log, pull-time recorder, webhooks, job triggers) subscribe. The
request path never waits for a consumer: locally the in-process bus hands events to one worker
thread; on AWS the publisher sends them to an EventBridge bus and the consumers run in their own
Lambda invocations (docs/architecture.md).

The operator (who caused the event) is taken from a context variable that the HTTP edge sets once
per request, so services need not thread the caller through every call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.core.clock import Clock, system_clock
from chalicelib.observability import logger


class EventType(StrEnum):
    """Harbor's event types (webhook `event_type` values), plus the non-artifact ones the audit
    log records."""

    PUSH_ARTIFACT = "PUSH_ARTIFACT"
    PULL_ARTIFACT = "PULL_ARTIFACT"
    DELETE_ARTIFACT = "DELETE_ARTIFACT"
    CREATE_TAG = "CREATE_TAG"
    DELETE_TAG = "DELETE_TAG"
    QUOTA_EXCEED = "QUOTA_EXCEED"
    QUOTA_WARNING = "QUOTA_WARNING"
    TAG_RETENTION = "TAG_RETENTION"
    # Harbor's scan notifications (services/scans.py) and replication's.
    SCANNING_FAILED = "SCANNING_FAILED"
    SCANNING_STOPPED = "SCANNING_STOPPED"
    SCANNING_COMPLETED = "SCANNING_COMPLETED"
    REPLICATION = "REPLICATION"
    CREATE_PROJECT = "CREATE_PROJECT"
    DELETE_PROJECT = "DELETE_PROJECT"
    CREATE_ROBOT = "CREATE_ROBOT"
    DELETE_ROBOT = "DELETE_ROBOT"
    # Scan actions, for the audit log (no webhook policy names them).
    SCAN_ARTIFACT = "SCAN_ARTIFACT"
    STOP_SCAN_ARTIFACT = "STOP_SCAN_ARTIFACT"
    # Scanner registrations (audit log only; Harbor sends no webhook for them).
    CREATE_SCANNER = "CREATE_SCANNER"
    UPDATE_SCANNER = "UPDATE_SCANNER"
    DELETE_SCANNER = "DELETE_SCANNER"
    # Registry endpoints: audited (Harbor does not audit them); no webhook names them.
    CREATE_REGISTRY = "CREATE_REGISTRY"
    UPDATE_REGISTRY = "UPDATE_REGISTRY"
    DELETE_REGISTRY = "DELETE_REGISTRY"


_operator: ContextVar[str] = ContextVar("registry_operator", default="anonymous")


def set_operator(name: str | None) -> None:
    """Called by the edge once the caller is known (and reset at the start of every request)."""
    _operator.set(name or "anonymous")


def current_operator() -> str:
    return _operator.get()


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    operator: str
    occurred_at: float
    project: str | None = None
    repository: str | None = None
    digest: str | None = None
    tag: str | None = None
    media_type: str | None = None
    size: int | None = None
    # For events about things other than artifacts: "project", "robot", ... and its name.
    resource_type: str | None = None
    resource: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def now(cls, event_type: EventType, clock: Clock = system_clock, **fields: Any) -> Event:
        """The event as it happens now (by `clock`), caused by the current operator."""
        return cls(type=event_type, operator=current_operator(), occurred_at=clock(), **fields)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["type"] = self.type.value
        out["detail"] = dict(self.detail)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        values = dict(data)
        values["type"] = EventType(values["type"])
        return cls(**values)


Subscriber = Callable[[Event], None]
# Gets every delivered event too, but several at a time when several were waiting (the audit
# writer turns them into one BatchWriteItem).
BatchSubscriber = Callable[[Sequence[Event]], None]
# The most events the local worker hands over at once (BatchWriteItem takes 25 items).
BATCH_MAX = 25


class Publisher(Protocol):
    """Where published events go: the in-process bus, or a remote bus (stores/eventbus.py)."""

    def publish(self, event: Event) -> None: ...


class EventBus:
    """Fan-out to subscribers. `deliver` runs them in the caller's thread (the AWS consumer Lambda
    uses that); `publish` goes through the configured publisher, which is the asynchronous local
    worker unless wiring installed a remote one."""

    def __init__(self, publisher: Publisher | None = None, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._subscribers: list[Subscriber] = []
        self._batch_subscribers: list[BatchSubscriber] = []
        self._publisher: Publisher = publisher or _LocalWorker(self.deliver_many)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def subscribe_batch(self, subscriber: BatchSubscriber) -> None:
        self._batch_subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        """Never raises: losing an event must not fail a write that already succeeded."""
        try:
            self._publisher.publish(event)
        except Exception:
            logger.exception("event not published", extra={"event_type": event.type.value})

    def emit(self, event_type: EventType, **fields: Any) -> None:
        """Publish an event that happens now (by the bus's clock); never raises, like `publish`."""
        self.publish(Event.now(event_type, self._clock, **fields))

    def deliver(self, event: Event) -> None:
        self.deliver_many([event])

    def deliver_many(self, events: Sequence[Event]) -> None:
        for event in events:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    logger.exception("event subscriber failed", extra={"event_type": event.type.value})
        for batch_subscriber in list(self._batch_subscribers):
            try:
                batch_subscriber(events)
            except Exception:
                logger.exception("event subscriber failed", extra={"events": len(events)})

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every event published so far was delivered (tests, shutdown)."""
        drain = getattr(self._publisher, "drain", None)
        return bool(drain(timeout)) if drain is not None else True


class _LocalWorker:
    """One daemon thread delivering events in publish order, started on first use."""

    def __init__(self, deliver: BatchSubscriber) -> None:
        self._deliver = deliver
        self._queue: queue.Queue[Event] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def publish(self, event: Event) -> None:
        self._ensure_thread()
        self._queue.put(event)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="registry-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:  # whatever else is already waiting goes along
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._deliver(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
