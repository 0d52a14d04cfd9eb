"""Who may call each /api/v2.0 route: one table of (resource, action) per route and method.

Harbor's handlers start with `RequireProjectAccess(project, action, resource)` or
`RequireSystemAccess(action, resource)`; this table says the same for every route here, and the
route decorator (`_route.py`) checks the entry before the handler runs, so services trust the
principal they are given. A route that is not in the table cannot be registered.

Scopes:
- `PROJECT`: the permission in the route's project (the `{project}` path segment, or what the route's
  locator finds: a retention policy's project, a quota's project);
- `SYSTEM`: a system permission (a system administrator, or a robot granted it);
- `PROJECT_OR_SYSTEM`: the route's locator finds a project or says "system" (project or system
  robots and labels);
- `PROJECT_OR_PUBLIC`: the permission in the project the route's locator finds, if any; otherwise
  anyone (global labels are readable by all, as in Harbor);
- `PROJECT_OR_SIGNED_IN`: the permission in the project a list is filtered to, if it names one;
  otherwise any signed-in caller, and the list shows what the caller may see;
- `SIGNED_IN`: any authenticated caller;
- `PUBLIC`: anyone. Lists under `PUBLIC` or `SIGNED_IN` show only what the caller may see; that
  filter is the service's visibility rule, not a refusal.

`also` is a second permission, checked in a second project the route finds (a copy needs to create
artifacts in the target and to pull in the source project).

`own=True` lets the caller act on its own account (the `{user_id}` or `{robot_id}` segment names
it) without the permission: a user reads and edits itself, a robot refreshes its own secret.

Paths are relative to `/api/v2.0`, with the route's own `{param}` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chalicelib.auth.rbac import Action, Permission, Resource


class Scope(Enum):
    PUBLIC = "public"
    SIGNED_IN = "signed-in"
    SYSTEM = "system"
    PROJECT = "project"
    PROJECT_OR_SYSTEM = "project-or-system"
    PROJECT_OR_SIGNED_IN = "project-or-signed-in"
    PROJECT_OR_PUBLIC = "project-or-public"


@dataclass(frozen=True, slots=True)
class Rule:
    scope: Scope
    permission: Permission | None = None
    own: bool = False
    # A second permission, in the project the route's `also_in` locator finds (a copy's source).
    also: Permission | None = None


PUBLIC = Rule(Scope.PUBLIC)
SIGNED_IN = Rule(Scope.SIGNED_IN)


def project(resource: Resource, action: Action) -> Rule:
    return Rule(Scope.PROJECT, Permission(resource, action))


def system(resource: Resource, action: Action, *, own: bool = False) -> Rule:
    return Rule(Scope.SYSTEM, Permission(resource, action), own)


def project_or_system(resource: Resource, action: Action, *, own: bool = False) -> Rule:
    return Rule(Scope.PROJECT_OR_SYSTEM, Permission(resource, action), own)


def project_or_public(resource: Resource, action: Action) -> Rule:
    return Rule(Scope.PROJECT_OR_PUBLIC, Permission(resource, action))


def project_or_signed_in(resource: Resource, action: Action) -> Rule:
    return Rule(Scope.PROJECT_OR_SIGNED_IN, Permission(resource, action))


R, A = Resource, Action
_P = "/projects/{project}"
_REPO = f"{_P}/repositories/{{repository}}"
_ART = f"{_REPO}/artifacts/{{reference}}"
_HOOK = f"{_P}/webhook"
_RET = "/retentions/{policy_id}"

RULES: dict[tuple[str, str], Rule] = {
    # system information, health, icons and search: open as in Harbor (search shows what the caller sees)
    ("GET", "/ping"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/systeminfo"): PUBLIC,
    ("GET", "/icons/{digest}"): PUBLIC,
    ("GET", "/search"): PUBLIC,
    ("GET", "/statistics"): SIGNED_IN,
    ("GET", "/configurations"): system(R.CONFIGURATION, A.READ),
    ("PUT", "/configurations"): system(R.CONFIGURATION, A.UPDATE),
    # users
    ("GET", "/users"): system(R.USER, A.LIST),
    ("POST", "/users"): system(R.USER, A.CREATE),
    ("GET", "/users/current"): SIGNED_IN,
    ("GET", "/users/current/permissions"): SIGNED_IN,
    ("GET", "/users/search"): SIGNED_IN,
    ("GET", "/users/{user_id}"): system(R.USER, A.READ, own=True),
    ("PUT", "/users/{user_id}"): system(R.USER, A.UPDATE, own=True),
    ("DELETE", "/users/{user_id}"): system(R.USER, A.DELETE),
    ("PUT", "/users/{user_id}/password"): system(R.USER, A.UPDATE, own=True),
    ("PUT", "/users/{user_id}/sysadmin"): system(R.USER, A.UPDATE),
    # projects
    ("GET", "/projects"): PUBLIC,
    ("HEAD", "/projects"): SIGNED_IN,
    ("POST", "/projects"): SIGNED_IN,  # who may create is a setting (project_creation_restriction)
    ("GET", _P): project(R.PROJECT, A.READ),
    ("HEAD", _P): project(R.PROJECT, A.READ),
    ("PUT", _P): project(R.PROJECT, A.UPDATE),
    ("DELETE", _P): project(R.PROJECT, A.DELETE),
    ("GET", f"{_P}/_deletable"): project(R.PROJECT, A.DELETE),
    ("GET", f"{_P}/summary"): project(R.PROJECT, A.READ),
    ("GET", f"{_P}/metadatas"): project(R.METADATA, A.READ),
    ("POST", f"{_P}/metadatas"): project(R.METADATA, A.UPDATE),
    ("GET", f"{_P}/metadatas/{{meta_name}}"): project(R.METADATA, A.READ),
    ("PUT", f"{_P}/metadatas/{{meta_name}}"): project(R.METADATA, A.UPDATE),
    ("DELETE", f"{_P}/metadatas/{{meta_name}}"): project(R.METADATA, A.DELETE),
    # members
    ("GET", f"{_P}/members"): project(R.MEMBER, A.LIST),
    ("POST", f"{_P}/members"): project(R.MEMBER, A.CREATE),
    ("GET", f"{_P}/members/{{member_id}}"): project(R.MEMBER, A.READ),
    ("PUT", f"{_P}/members/{{member_id}}"): project(R.MEMBER, A.UPDATE),
    ("DELETE", f"{_P}/members/{{member_id}}"): project(R.MEMBER, A.DELETE),
    # robots: a project robot is managed in its project, a system robot by the system permission
    ("GET", "/robots"): project_or_system(R.ROBOT, A.LIST),
    ("POST", "/robots"): project_or_system(R.ROBOT, A.CREATE),
    ("GET", "/robots/{robot_id}"): project_or_system(R.ROBOT, A.READ),
    ("PUT", "/robots/{robot_id}"): project_or_system(R.ROBOT, A.UPDATE),
    ("PATCH", "/robots/{robot_id}"): project_or_system(R.ROBOT, A.UPDATE, own=True),
    ("DELETE", "/robots/{robot_id}"): project_or_system(R.ROBOT, A.DELETE),
    # quotas: the list shows the quotas of the projects the caller may read
    ("GET", "/quotas"): project_or_signed_in(R.QUOTA, A.READ),
    ("GET", "/quotas/{quota_id}"): project(R.QUOTA, A.READ),
    ("PUT", "/quotas/{quota_id}"): system(R.QUOTA, A.UPDATE),
    # immutable tag rules
    ("GET", f"{_P}/immutabletagrules"): project(R.IMMUTABLE_TAG, A.LIST),
    ("POST", f"{_P}/immutabletagrules"): project(R.IMMUTABLE_TAG, A.CREATE),
    ("PUT", f"{_P}/immutabletagrules/{{rule_id}}"): project(R.IMMUTABLE_TAG, A.UPDATE),
    ("DELETE", f"{_P}/immutabletagrules/{{rule_id}}"): project(R.IMMUTABLE_TAG, A.DELETE),
    # audit logs
    ("GET", "/audit-logs"): SIGNED_IN,  # a system reader sees all, others the projects they may read
    ("GET", "/auditlog-exts"): SIGNED_IN,
    ("GET", "/auditlog-exts/events"): system(R.AUDIT_LOG, A.LIST),
    ("GET", f"{_P}/logs"): project(R.LOG, A.LIST),
    ("GET", f"{_P}/auditlog-exts"): project(R.LOG, A.LIST),
    # repositories
    ("GET", "/repositories"): PUBLIC,
    ("GET", f"{_P}/repositories"): project(R.REPOSITORY, A.LIST),
    ("GET", _REPO): project(R.REPOSITORY, A.LIST),  # Harbor asks `list` for one repository too
    ("PUT", _REPO): project(R.REPOSITORY, A.UPDATE),
    ("DELETE", _REPO): project(R.REPOSITORY, A.DELETE),
    # artifacts, tags, accessories, additions
    ("GET", f"{_REPO}/artifacts"): project(R.ARTIFACT, A.LIST),
    ("POST", f"{_REPO}/artifacts"): Rule(
        Scope.PROJECT, Permission(R.ARTIFACT, A.CREATE), also=Permission(R.REPOSITORY, A.PULL)
    ),  # pull in the source project
    ("GET", _ART): project(R.ARTIFACT, A.READ),
    ("DELETE", _ART): project(R.ARTIFACT, A.DELETE),
    ("GET", f"{_ART}/tags"): project(R.TAG, A.LIST),
    ("POST", f"{_ART}/tags"): project(R.TAG, A.CREATE),
    ("DELETE", f"{_ART}/tags/{{tag_name}}"): project(R.TAG, A.DELETE),
    ("GET", f"{_ART}/accessories"): project(R.ACCESSORY, A.LIST),
    ("GET", f"{_ART}/additions/{{addition}}"): project(R.ARTIFACT_ADDITION, A.READ),
    ("GET", f"{_P}/artifacts"): project(R.ARTIFACT, A.LIST),
    # labels: a project label in its project, a global label by the system permission
    ("GET", "/labels"): project_or_public(R.LABEL, A.LIST),
    ("POST", "/labels"): project_or_system(R.LABEL, A.CREATE),
    ("GET", "/labels/{label_id}"): project_or_public(R.LABEL, A.READ),
    ("PUT", "/labels/{label_id}"): project_or_system(R.LABEL, A.UPDATE),
    ("DELETE", "/labels/{label_id}"): project_or_system(R.LABEL, A.DELETE),
    ("POST", f"{_ART}/labels"): project(R.ARTIFACT_LABEL, A.CREATE),
    ("DELETE", f"{_ART}/labels/{{label_id}}"): project(R.ARTIFACT_LABEL, A.DELETE),
    # garbage collection
    # scan all (Harbor's system `scan-all` resource)
    ("GET", "/system/scanAll/schedule"): system(R.SCAN_ALL, A.READ),
    ("POST", "/system/scanAll/schedule"): system(R.SCAN_ALL, A.CREATE),
    ("PUT", "/system/scanAll/schedule"): system(R.SCAN_ALL, A.UPDATE),
    ("POST", "/system/scanAll/stop"): system(R.SCAN_ALL, A.STOP),
    ("GET", "/security/summary"): system(R.SECURITY_HUB, A.READ),
    ("GET", "/security/vul"): system(R.SECURITY_HUB, A.LIST),
    # Scan data export: the service checks the project's `export-cve` (create / read) and that an
    # execution is the caller's own, as Harbor's handler does after RequireAuthenticated.
    ("POST", "/export/cve"): SIGNED_IN,
    ("GET", "/export/cve/execution/{execution_id}"): SIGNED_IN,
    ("GET", "/export/cve/executions"): SIGNED_IN,
    ("GET", "/export/cve/download/{execution_id}"): SIGNED_IN,
    ("GET", "/scans/all/metrics"): system(R.SCAN_ALL, A.READ),
    ("GET", "/scans/schedule/metrics"): system(R.SCAN_ALL, A.READ),
    # CVE allowlists (system list; a project's own list travels with the project)
    ("GET", "/system/CVEAllowlist"): SIGNED_IN,
    ("PUT", "/system/CVEAllowlist"): system(R.CONFIGURATION, A.UPDATE),
    ("GET", "/system/gc"): system(R.GARBAGE_COLLECTION, A.LIST),
    ("GET", "/system/gc/{gc_id}"): system(R.GARBAGE_COLLECTION, A.READ),
    ("POST", "/system/gc/{gc_id}"): system(R.GARBAGE_COLLECTION, A.CREATE),
    ("PUT", "/system/gc/{gc_id}"): system(R.GARBAGE_COLLECTION, A.UPDATE),
    ("GET", "/system/gc/{gc_id}/log"): system(R.GARBAGE_COLLECTION, A.READ),
    # webhooks
    ("GET", f"{_HOOK}/policies"): project(R.NOTIFICATION_POLICY, A.LIST),
    ("POST", f"{_HOOK}/policies"): project(R.NOTIFICATION_POLICY, A.CREATE),
    ("GET", f"{_HOOK}/policies/{{policy_id}}"): project(R.NOTIFICATION_POLICY, A.READ),
    ("PUT", f"{_HOOK}/policies/{{policy_id}}"): project(R.NOTIFICATION_POLICY, A.UPDATE),
    ("DELETE", f"{_HOOK}/policies/{{policy_id}}"): project(R.NOTIFICATION_POLICY, A.DELETE),
    ("GET", f"{_HOOK}/policies/{{policy_id}}/executions"): project(R.NOTIFICATION_POLICY, A.LIST),
    ("GET", f"{_HOOK}/policies/{{policy_id}}/executions/{{execution_id}}/tasks"): project(
        R.NOTIFICATION_POLICY, A.LIST
    ),
    ("GET", f"{_HOOK}/policies/{{policy_id}}/executions/{{execution_id}}/tasks/{{task_id}}/log"): project(
        R.NOTIFICATION_POLICY, A.READ
    ),
    ("GET", f"{_HOOK}/lasttrigger"): project(R.NOTIFICATION_POLICY, A.READ),
    ("GET", f"{_HOOK}/events"): project(R.NOTIFICATION_POLICY, A.READ),
    # tag retention: a policy belongs to the project in its scope
    ("GET", "/retentions/metadatas"): SIGNED_IN,
    ("POST", "/retentions"): project(R.TAG_RETENTION, A.CREATE),
    ("GET", _RET): project(R.TAG_RETENTION, A.READ),
    ("PUT", _RET): project(R.TAG_RETENTION, A.UPDATE),
    ("DELETE", _RET): project(R.TAG_RETENTION, A.DELETE),
    ("GET", f"{_RET}/executions"): project(R.TAG_RETENTION, A.LIST),
    ("POST", f"{_RET}/executions"): project(R.TAG_RETENTION, A.UPDATE),  # Harbor asks `update` to run one
    ("PATCH", f"{_RET}/executions/{{execution_id}}"): project(R.TAG_RETENTION, A.UPDATE),
    ("GET", f"{_RET}/executions/{{execution_id}}/tasks"): project(R.TAG_RETENTION, A.LIST),
    ("GET", f"{_RET}/executions/{{execution_id}}/tasks/{{task_id}}"): project(R.TAG_RETENTION, A.READ),
    # scanner registrations: the system `scanner` resource; a project's scanner: reading it needs
    # project `scanner` read, choosing it (and listing the candidates) project `scanner` create
    ("GET", "/scanners"): system(R.SCANNER, A.LIST),
    ("POST", "/scanners"): system(R.SCANNER, A.CREATE),
    ("POST", "/scanners/ping"): system(R.SCANNER, A.READ),
    ("GET", "/scanners/{registration_id}"): system(R.SCANNER, A.READ),
    ("PUT", "/scanners/{registration_id}"): system(R.SCANNER, A.UPDATE),
    ("PATCH", "/scanners/{registration_id}"): system(R.SCANNER, A.UPDATE),
    ("DELETE", "/scanners/{registration_id}"): system(R.SCANNER, A.DELETE),
    ("GET", "/scanners/{registration_id}/metadata"): system(R.SCANNER, A.READ),
    ("GET", f"{_P}/scanner"): project(R.SCANNER, A.READ),
    ("PUT", f"{_P}/scanner"): project(R.SCANNER, A.CREATE),
    ("GET", f"{_P}/scanner/candidates"): project(R.SCANNER, A.CREATE),
    # scans of one artifact (Harbor asks the scan resource's create/stop/read)
    ("POST", f"{_ART}/scan"): project(R.SCAN, A.CREATE),
    ("POST", f"{_ART}/scan/stop"): project(R.SCAN, A.STOP),
    ("GET", f"{_ART}/scan/{{report_id}}/log"): project(R.SCAN, A.READ),
    # registries (remote endpoints) and the adapter catalogue: system permissions, as Harbor's handler
    ("GET", "/registries"): system(R.REGISTRY, A.LIST),
    ("POST", "/registries"): system(R.REGISTRY, A.CREATE),
    ("POST", "/registries/ping"): system(R.REGISTRY, A.READ),
    ("GET", "/registries/{id}"): system(R.REGISTRY, A.READ),
    ("PUT", "/registries/{id}"): system(R.REGISTRY, A.UPDATE),
    ("DELETE", "/registries/{id}"): system(R.REGISTRY, A.DELETE),
    ("GET", "/registries/{id}/info"): system(R.REGISTRY, A.READ),
    ("GET", "/replication/adapters"): system(R.REPLICATION_ADAPTER, A.LIST),
    ("GET", "/replication/adapterinfos"): system(R.REPLICATION_ADAPTER, A.LIST),
    # replication: system-level resources, as in Harbor (`replication-policy` for policies,
    # `replication` for executions; stopping one asks `create`, as Harbor's handler does)
    ("GET", "/replication/policies"): system(R.REPLICATION_POLICY, A.LIST),
    ("POST", "/replication/policies"): system(R.REPLICATION_POLICY, A.CREATE),
    ("GET", "/replication/policies/{id}"): system(R.REPLICATION_POLICY, A.READ),
    ("PUT", "/replication/policies/{id}"): system(R.REPLICATION_POLICY, A.UPDATE),
    ("DELETE", "/replication/policies/{id}"): system(R.REPLICATION_POLICY, A.DELETE),
    ("GET", "/replication/executions"): system(R.REPLICATION, A.LIST),
    ("POST", "/replication/executions"): system(R.REPLICATION, A.CREATE),
    ("GET", "/replication/executions/{id}"): system(R.REPLICATION, A.READ),
    ("PUT", "/replication/executions/{id}"): system(R.REPLICATION, A.CREATE),
    ("GET", "/replication/executions/{id}/tasks"): system(R.REPLICATION, A.LIST),
    ("GET", "/replication/executions/{id}/tasks/{task_id}/log"): system(R.REPLICATION, A.READ),
}
