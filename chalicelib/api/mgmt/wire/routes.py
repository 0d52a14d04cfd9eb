"""Which Harbor model each /api/v2.0 JSON response follows (the swagger's 200/201 schema per route).

Paths are the swagger's, after `/api/v2.0`, with `{...}` for one path segment. `model_for` finds the
model of a concrete request; the functional suite validates every JSON response it sees with it.
Routes that answer JSON and are not listed here are the known gaps, named in the README's Harbor
differences section and at the end of every functional run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.api.mgmt.wire import HarborModel
from chalicelib.api.mgmt.wire import models as m

_REPO = "/projects/{project}/repositories/{repository}"
_ART = f"{_REPO}/artifacts/{{reference}}"
_HOOK = "/projects/{project}/webhook"
_RET = "/retentions/{policy}/executions/{execution}"


@dataclass(frozen=True, slots=True)
class ResponseModel:
    model: type[HarborModel]
    many: bool = False
    # A JSON object whose values are each one model (`additionalProperties`), such as adapterinfos.
    values: bool = False


_ONE = ResponseModel


def _many(model: type[HarborModel]) -> ResponseModel:
    return ResponseModel(model, many=True)


RESPONSES: dict[tuple[str, str], ResponseModel] = {
    ("GET", "/users"): _many(m.UserResp),
    ("GET", "/users/current"): _ONE(m.UserResp),
    ("GET", "/users/{user}"): _ONE(m.UserResp),
    ("GET", "/users/search"): _many(m.UserSearchRespItem),
    ("GET", "/users/current/permissions"): _many(m.Permission),
    ("GET", "/quotas"): _many(m.Quota),
    ("GET", "/quotas/{quota}"): _ONE(m.Quota),
    ("GET", "/systeminfo"): _ONE(m.GeneralInfo),
    ("GET", "/configurations"): _ONE(m.ConfigurationsResponse),
    ("GET", "/statistics"): _ONE(m.Statistic),
    ("GET", "/health"): _ONE(m.OverallHealthStatus),
    ("GET", "/search"): _ONE(m.Search),
    ("GET", "/audit-logs"): _many(m.AuditLog),
    ("GET", "/auditlog-exts"): _many(m.AuditLogExt),
    ("GET", "/auditlog-exts/events"): _many(m.AuditLogEventType),
    ("GET", "/projects"): _many(m.Project),
    ("GET", "/projects/{project}"): _ONE(m.Project),
    ("GET", "/projects/{project}/_deletable"): _ONE(m.ProjectDeletable),
    ("GET", "/projects/{project}/summary"): _ONE(m.ProjectSummary),
    ("GET", "/projects/{project}/logs"): _many(m.AuditLog),
    ("GET", "/projects/{project}/auditlog-exts"): _many(m.AuditLogExt),
    ("GET", "/projects/{project}/members"): _many(m.ProjectMemberEntity),
    ("GET", "/projects/{project}/members/{member}"): _ONE(m.ProjectMemberEntity),
    ("GET", "/projects/{project}/artifacts"): _many(m.Artifact),
    ("GET", "/projects/{project}/immutabletagrules"): _many(m.ImmutableRule),
    ("GET", "/projects/{project}/repositories"): _many(m.Repository),
    ("GET", "/repositories"): _many(m.Repository),
    ("GET", _REPO): _ONE(m.Repository),
    ("GET", f"{_REPO}/artifacts"): _many(m.Artifact),
    ("GET", _ART): _ONE(m.Artifact),
    ("GET", f"{_ART}/tags"): _many(m.Tag),
    ("GET", f"{_ART}/accessories"): _many(m.Accessory),
    ("GET", "/labels"): _many(m.Label),
    ("GET", "/labels/{label}"): _ONE(m.Label),
    ("GET", "/robots"): _many(m.Robot),
    ("GET", "/robots/{robot}"): _ONE(m.Robot),
    ("POST", "/robots"): _ONE(m.RobotCreated),
    ("PATCH", "/robots/{robot}"): _ONE(m.RobotSec),
    ("GET", "/system/CVEAllowlist"): _ONE(m.CVEAllowlist),
    ("GET", "/system/scanAll/schedule"): _ONE(m.Schedule),
    ("GET", "/scans/all/metrics"): _ONE(m.Stats),
    ("GET", "/scans/schedule/metrics"): _ONE(m.Stats),
    ("GET", "/security/summary"): _ONE(m.SecuritySummary),
    ("GET", "/security/vul"): _many(m.VulnerabilityItem),
    ("POST", "/export/cve"): _ONE(m.ScanDataExportJob),
    ("GET", "/export/cve/execution/{execution_id}"): _ONE(m.ScanDataExportExecution),
    ("GET", "/export/cve/executions"): _ONE(m.ScanDataExportExecutionList),
    ("GET", "/system/gc"): _many(m.GCHistory),
    ("GET", "/system/gc/schedule"): _ONE(m.GCHistory),
    ("GET", "/system/gc/{gc}"): _ONE(m.GCHistory),
    ("GET", f"{_HOOK}/policies"): _many(m.WebhookPolicy),
    ("GET", f"{_HOOK}/policies/{{policy}}"): _ONE(m.WebhookPolicy),
    ("GET", f"{_HOOK}/policies/{{policy}}/executions"): _many(m.Execution),
    ("GET", f"{_HOOK}/policies/{{policy}}/executions/{{execution}}/tasks"): _many(m.Task),
    ("GET", f"{_HOOK}/lasttrigger"): _many(m.WebhookLastTrigger),
    ("GET", f"{_HOOK}/events"): _ONE(m.SupportedWebhookEventTypes),
    ("GET", "/retentions/metadatas"): _ONE(m.RetentionMetadata),
    ("GET", "/retentions/{policy}"): _ONE(m.RetentionPolicy),
    ("GET", "/retentions/{policy}/executions"): _many(m.RetentionExecution),
    ("GET", f"{_RET}/tasks"): _many(m.RetentionExecutionTask),
    ("GET", "/icons/{digest}"): _ONE(m.Icon),
    # scanner registrations
    ("GET", "/scanners"): _many(m.ScannerRegistration),
    ("GET", "/scanners/{registration}"): _ONE(m.ScannerRegistration),
    ("DELETE", "/scanners/{registration}"): _ONE(m.ScannerRegistration),
    ("GET", "/scanners/{registration}/metadata"): _ONE(m.ScannerAdapterMetadata),
    ("GET", "/projects/{project}/scanner"): _ONE(m.ScannerRegistration),
    ("GET", "/projects/{project}/scanner/candidates"): _many(m.ScannerRegistration),
    # replication
    ("GET", "/replication/policies"): _many(m.ReplicationPolicy),
    ("GET", "/replication/policies/{id}"): _ONE(m.ReplicationPolicy),
    ("GET", "/replication/executions"): _many(m.ReplicationExecution),
    ("GET", "/replication/executions/{id}"): _ONE(m.ReplicationExecution),
    ("GET", "/replication/executions/{id}/tasks"): _many(m.ReplicationTask),
    # registries
    ("GET", "/registries"): _many(m.Registry),
    ("GET", "/registries/{id}"): _ONE(m.Registry),
    ("GET", "/registries/{id}/info"): _ONE(m.RegistryInfo),
    ("GET", "/replication/adapterinfos"): ResponseModel(m.RegistryProviderInfo, values=True),
}
"""(method, swagger path) -> the model of its JSON answer."""

_SEGMENT = re.compile(r"\{[^/}]+\}")
_COMPILED = [
    (method, re.compile("^" + _SEGMENT.sub("[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"),
     path, answer)
    for (method, path), answer in RESPONSES.items()
]  # fmt: skip


def model_for(method: str, path: str) -> tuple[str, ResponseModel] | None:
    """The swagger path and model for a request path under /api/v2.0 (`/projects/x`), if any.

    Literal paths win over templated ones (`/system/gc/schedule` before `/system/gc/{gc}`)."""
    best: tuple[str, ResponseModel] | None = None
    for verb, pattern, template, answer in _COMPILED:
        if verb == method and pattern.match(path) and (best is None or template.count("{") < best[0].count("{")):
            best = (template, answer)
    return best
