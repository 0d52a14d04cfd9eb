"""/api/v2.0/projects/{project}/immutabletagrules: Harbor's tag immutability rules."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._edge import API, body, created, int_param, listing, ok, serve
from chalicelib.api.mgmt.projects import target
from chalicelib.api.mgmt.wire import shape
from chalicelib.api.mgmt.wire.models import ImmutableRule
from chalicelib.core.bounds import Id
from chalicelib.core.selectors import MAX_PATTERN_LENGTH
from chalicelib.wiring import services

bp = Blueprint(__name__)
_MAX_SELECTORS = 8  # more than one is refused by the service; this only bounds the body


class SelectorReq(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: str = Field(max_length=32)
    decoration: str = Field(max_length=32)
    pattern: str = Field(max_length=MAX_PATTERN_LENGTH)
    extras: str | None = Field(default=None, max_length=1024)


class ImmutableRuleReq(BaseModel):
    """Harbor's `ImmutableRule`; `id` and `project_id` are read-only and may be sent back."""

    model_config = ConfigDict(extra="forbid", strict=True)

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
    return shape(ImmutableRule, {**record, "params": {}})


@bp.route(f"{API}/projects/{{project}}/immutabletagrules", methods=["GET", "POST"], content_types=["*/*"])
def rules(project: str) -> Response:
    return serve(bp, _create if bp.current_request.method == "POST" else _list, project=project)


def _list(request: HttpRequest) -> Response:
    found = target(request)
    listed = services().immutability.rules(request.principal, found)
    records = [r.record() for r in listed]
    return listing(request, f"/projects/{request.params['project']}/immutabletagrules", records,
                   q_fields={"id": int, "priority": int, "disabled": bool}, sort_fields=("id", "priority"),
                   fill=lambda page: [rule_view(r) for r in page])  # fmt: skip


def _create(request: HttpRequest) -> Response:
    req = body(request, ImmutableRuleReq)
    found = target(request)
    rule = services().immutability.create(request.principal, found, req.model_dump())
    return created(f"{API}/projects/{request.params['project']}/immutabletagrules/{rule.rule_id}")


@bp.route(f"{API}/projects/{{project}}/immutabletagrules/{{rule_id}}", methods=["PUT", "DELETE"],
          content_types=["*/*"])  # fmt: skip
def rule(project: str, rule_id: str) -> Response:
    return serve(bp, _update if bp.current_request.method == "PUT" else _delete, project=project, rule_id=rule_id)


def _update(request: HttpRequest) -> Response:
    rule_id = int_param(request.params["rule_id"], "immutable_rule_id")
    req = body(request, ImmutableRuleReq)
    services().immutability.update(request.principal, target(request), rule_id, req.model_dump())
    return ok()


def _delete(request: HttpRequest) -> Response:
    rule_id = int_param(request.params["rule_id"], "immutable_rule_id")
    services().immutability.delete(request.principal, target(request), rule_id)
    return ok()
