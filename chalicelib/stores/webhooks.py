"""Webhook storage: a project's policies (one item, `PROJECT#<name>` / `WEBHOOKS`) and the last
trigger time per policy and event type. The POST to a target is `adapters/egress.py`'s.

Executions and tasks are the executions service's rows (`stores/jobs.py`); keys in `keys.py`. The store keeps policies
as opaque JSON records and a `version`; writers put back with a condition on the version they
read, so two concurrent creates cannot both take the same name.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.tables import WebhookLastTriggerRow, WebhookPoliciesRow, next_id


class WebhookStore:
    def load(self, project: str) -> tuple[list[dict[str, Any]], int]:
        """The project's policy records and the version they were read at (0: never written)."""
        try:
            row = WebhookPoliciesRow.get(keys.project_pk(project), keys.WEBHOOKS_SK, consistent_read=True)
        except WebhookPoliciesRow.DoesNotExist:
            return [], 0
        records: list[dict[str, Any]] = json.loads(row.policies or "[]")
        return records, int(row.version)

    def save(self, project: str, records: list[dict[str, Any]], read_version: int) -> None:
        """Replace the policies if nobody changed them since `read_version`; Conflict otherwise."""
        row = WebhookPoliciesRow(
            keys.project_pk(project), keys.WEBHOOKS_SK, policies=json.dumps(records), version=read_version + 1
        )
        condition = (
            WebhookPoliciesRow.pk.does_not_exist() if read_version == 0 else WebhookPoliciesRow.version == read_version
        )
        try:
            row.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"the webhook policies of project {project} changed concurrently") from None
            raise

    def new_id(self) -> int:
        return next_id("webhook")

    def triggered(self, project: str, policy_id: int, event_type: str, when: int) -> None:
        WebhookLastTriggerRow(keys.project_pk(project), keys.webhook_last_sk(policy_id, event_type),
                              last_trigger=when).save()  # fmt: skip

    def last_triggers(self, project: str) -> dict[tuple[int, str], int]:
        """(policy id, event type) -> last trigger time: one Query on the project's partition."""
        rows = WebhookLastTriggerRow.query(
            keys.project_pk(project), WebhookLastTriggerRow.sk.startswith(keys.WEBHOOK_LAST_PREFIX)
        )
        out: dict[tuple[int, str], int] = {}
        for row in rows:
            policy_id, _, event_type = row.sk.removeprefix(keys.WEBHOOK_LAST_PREFIX).partition("#")
            out[(int(policy_id), event_type)] = int(row.last_trigger)
        return out
