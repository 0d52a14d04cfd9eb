"""Domain events on the AWS path: published to EventBridge (moto), then delivered by the consumer
Lambda to the same subscribers the in-process bus would call."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import REGION


def test_events_go_to_eventbridge_and_the_consumer_delivers_them(registry: LiveRegistry) -> None:
    from chalicelib.events import Event
    from chalicelib.jobs.events import event_consumer
    from chalicelib.wiring import services

    sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
    queue = sqs.create_queue(QueueName="registry-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="registry-events", EventPattern=json.dumps({"source": ["oci-registry"]}))
    events.put_targets(Rule="registry-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
    registry.configure(event_bus_name="default")
    received: list[Event] = []
    services().events.subscribe(received.append)

    digest, _ = registry.push_image("library/events", "v1")

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelopes: list[dict[str, Any]] = [json.loads(m["Body"]) for m in messages]
    (pushed,) = [e for e in envelopes if e["detail-type"] == "PUSH_ARTIFACT"]
    assert pushed["source"] == "oci-registry"
    assert pushed["detail"]["digest"] == digest and pushed["detail"]["repository"] == "library/events"
    assert received == []  # on the AWS path nothing is delivered in the API's process
    # moto's copy of the envelope lacks `account` (and `region`), which EventBridge always sends.
    event_consumer({"account": "123456789012", "region": REGION, **pushed}, None)
    assert [(e.type.value, e.digest, e.tag) for e in received] == [("PUSH_ARTIFACT", digest, "v1")]
