"""Webhook storage: a project's policies (one item, `PROJECT#<name>` / `WEBHOOKS`) and the last
trigger time per policy and event type. The POST to a target is `adapters/egress.py`'s.

Executions and tasks are the executions service's rows (`stores/jobs.py`); keys in `keys.py`. The
policies are a versioned project document: writers put back with a condition on the version they
read, so two concurrent creates cannot both take the same name.
"""

from __future__ import annotations

from chalicelib.stores import keys
from chalicelib.stores.project_documents import ProjectDocumentStore
from chalicelib.stores.tables import WebhookLastTriggerRow, WebhookPoliciesRow


class WebhookStore(ProjectDocumentStore):
    """The policies document (`stores/project_documents.py`) plus the last trigger times."""

    def __init__(self) -> None:
        super().__init__(WebhookPoliciesRow, keys.WEBHOOKS_SK, "policies", "webhook policies", "webhook")

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
