"""/api/v2.0/projects/{project}/immutabletagrules: Harbor's tag immutability rules."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import int_param
from chalicelib.api.mgmt._route import Created, Page, Routes
from chalicelib.api.mgmt.wire import shape
from chalicelib.core.bounds import Id
from chalicelib.core.identity import Project
from chalicelib.core.selectors import MAX_PATTERN_LENGTH
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_MAX_SELECTORS = 8  # more than one is refused by the service; this only bounds the body


class SelectorReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    kind: str = Field(max_length=32)
    decoration: str = Field(max_length=32)
    pattern: str = Field(max_length=MAX_PATTERN_LENGTH)
    extras: str | None = Field(default=None, max_length=1024)


class ImmutableRuleReq(BaseModel):
    """Harbor's `ImmutableRule`; `id` and `project_id` are read-only and may be sent back."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    id: Id | None = None
    project_id: Id | None = None
    priority: int | None = Field(default=None, ge=0, le=1_000_000)
    disabled: bool | None = None
    action: str | None = Field(default=None, max_length=64)
    template: str | None = Field(default=None, max_length=64)
    params: dict[str, Any] | None = None
    tag_selectors: list[SelectorReq] = Field(default_factory=list, max_length=_MAX_SELECTORS)
    scope_selectors: dict[str, list[SelectorReq]] = Field(default_factory=dict, max_length=_MAX_SELECTORS)


def rule_view(record: dict[str, Any]) -> dict[str, Any]:
    """Harbor's ImmutableRule (no project id; empty fields left out)."""
    from chalicelib.api.mgmt.wire.models import ImmutableRule  # noqa: PLC0415 (response models load on first use)

    return shape(ImmutableRule, {**record, "params": {}})


_RULES = "/projects/{project}/immutabletagrules"


@routes.get(_RULES)
def list_rules(request: HttpRequest, project: Project) -> Page:
    records = [r.record() for r in services().immutability.rules(project)]
    return Page(records, q_fields={"id": int, "priority": int, "disabled": bool}, sort_fields=("id", "priority"),
                fill=lambda page: [rule_view(r) for r in page])  # fmt: skip


@routes.post(_RULES, body=ImmutableRuleReq)
def create_rule(request: HttpRequest, body: ImmutableRuleReq, project: Project) -> Created:
    rule = services().immutability.create(project, body.model_dump())
    return Created(f"/projects/{request.params['project']}/immutabletagrules/{rule.rule_id}")


@routes.put(f"{_RULES}/{{rule_id}}", body=ImmutableRuleReq)
def update_rule(request: HttpRequest, body: ImmutableRuleReq, project: Project) -> None:
    rule_id = int_param(request.params["rule_id"], "immutable_rule_id")
    services().immutability.update(project, rule_id, body.model_dump())


@routes.delete(f"{_RULES}/{{rule_id}}")
def delete_rule(request: HttpRequest, project: Project) -> None:
    services().immutability.delete(project, int_param(request.params["rule_id"], "immutable_rule_id"))
