"""Harbor's /api/v2.0 response definitions, field by field as its swagger gives them.

Required here: what Harbor always writes (see the package docstring); optional (`= None`): omitted
when empty. Names follow the swagger's definitions. Maps with free keys (`metadata` values, resource
lists) are plain dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chalicelib.api.mgmt.wire import DateTime, HarborModel


class UserResp(HarborModel):
    user_id: int | None = None
    username: str | None = None
    email: str | None = None
    realname: str | None = None
    comment: str | None = None
    sysadmin_flag: bool
    admin_role_in_auth: bool
    oidc_user_meta: dict[str, Any] | None = None
    creation_time: DateTime
    update_time: DateTime


class UserSearchRespItem(HarborModel):
    user_id: int | None = None
    username: str | None = None


class Permission(HarborModel):
    resource: str | None = None
    action: str | None = None


class QuotaRefObject(HarborModel):
    """Harbor's `ref` of a project quota: `{id, name, owner_name}` (free keys in the swagger)."""

    id: int | None = None
    name: str | None = None
    owner_name: str | None = None


class Quota(HarborModel):
    id: int | None = None
    ref: QuotaRefObject | None = None
    hard: dict[str, int] | None = Field(...)
    used: dict[str, int] | None = Field(...)
    creation_time: DateTime
    update_time: DateTime


class GeneralInfo(HarborModel):
    pointers = frozenset({"banner_message", "current_time", "registry_url", "external_url", "auth_mode",
                          "primary_auth_mode", "project_creation_restriction", "self_registration", "has_ca_root",
                          "harbor_version", "registry_storage_provider_name", "read_only", "notification_enable",
                          "oidc_provider_name"})  # fmt: skip

    banner_message: str | None = None
    current_time: DateTime | None = None
    registry_url: str | None = None
    external_url: str | None = None
    auth_mode: str | None = None
    primary_auth_mode: bool | None = None
    project_creation_restriction: str | None = None
    self_registration: bool | None = None
    has_ca_root: bool | None = None
    harbor_version: str | None = None
    registry_storage_provider_name: str | None = None
    read_only: bool | None = None
    notification_enable: bool | None = None
    oidc_provider_name: str | None = None


class AuditLog(HarborModel):
    id: int | None = None
    username: str | None = None
    resource: str | None = None
    resource_type: str | None = None
    operation: str | None = None
    op_time: DateTime


class AuditLogExt(HarborModel):
    id: int | None = None
    username: str | None = None
    resource: str | None = None
    resource_type: str | None = None
    operation: str | None = None
    operation_description: str | None = None
    operation_result: bool
    op_time: DateTime


class AuditLogEventType(HarborModel):
    event_type: str | None = None


class CVEAllowlistItem(HarborModel):
    cve_id: str | None = None


class CVEAllowlist(HarborModel):
    id: int | None = None
    project_id: int | None = None
    expires_at: int | None = None
    items: list[CVEAllowlistItem] | None = None
    creation_time: DateTime
    update_time: DateTime


class Project(HarborModel):
    project_id: int | None = None
    owner_id: int | None = None
    name: str | None = None
    registry_id: int | None = None
    creation_time: DateTime
    update_time: DateTime
    deleted: bool | None = None
    owner_name: str | None = None
    togglable: bool | None = None
    current_user_role_id: int | None = None
    current_user_role_ids: list[int] | None = None
    repo_count: int
    metadata: dict[str, str] | None = None
    cve_allowlist: CVEAllowlist | None = None


class ProjectDeletable(HarborModel):
    deletable: bool | None = None
    message: str | None = None


class ProjectSummaryQuota(HarborModel):
    hard: dict[str, int] | None = None
    used: dict[str, int] | None = None


class ProjectSummary(HarborModel):
    repo_count: int
    project_admin_count: int | None = None
    maintainer_count: int | None = None
    developer_count: int | None = None
    guest_count: int | None = None
    limited_guest_count: int | None = None
    quota: ProjectSummaryQuota | None = None
    registry: dict[str, Any] | None = None


class ProjectMemberEntity(HarborModel):
    id: int | None = None
    project_id: int | None = None
    entity_name: str | None = None
    role_name: str | None = None
    role_id: int | None = None
    entity_id: int | None = None
    entity_type: str | None = None


class Repository(HarborModel):
    id: int | None = None
    project_id: int | None = None
    name: str | None = None
    description: str | None = None
    artifact_count: int
    pull_count: int
    creation_time: DateTime
    update_time: DateTime


class Label(HarborModel):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    color: str | None = None
    scope: str | None = None
    project_id: int | None = None
    creation_time: DateTime
    update_time: DateTime


class Tag(HarborModel):
    pointers = frozenset({"signed"})

    id: int | None = None
    repository_id: int | None = None
    artifact_id: int | None = None
    name: str | None = None
    push_time: DateTime
    pull_time: DateTime
    immutable: bool
    # Not in Harbor's swagger: the registry answers `with_signature=true` with each tag's `signed`
    # (Harbor's flag predates notary's removal and is now ignored there).
    signed: bool | None = None


class Accessory(HarborModel):
    id: int | None = None
    artifact_id: int
    subject_artifact_id: int | None = None
    subject_artifact_digest: str
    subject_artifact_repo: str
    size: int
    digest: str
    type: str
    icon: str
    creation_time: DateTime


class AdditionLink(HarborModel):
    href: str | None = None
    absolute: bool


class Platform(HarborModel):
    architecture: str | None = None
    os: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")
    os_features: list[str] | None = Field(default=None, alias="os.features")
    variant: str | None = None


class Reference(HarborModel):
    parent_id: int | None = None
    child_id: int | None = None
    child_digest: str | None = None
    platform: Platform | None = None
    annotations: dict[str, str] | None = None
    urls: list[str] | None = None


class Artifact(HarborModel):
    id: int | None = None
    type: str | None = None
    media_type: str | None = None
    manifest_media_type: str | None = None
    artifact_type: str | None = None
    project_id: int | None = None
    repository_id: int | None = None
    repository_name: str | None = None
    digest: str | None = None
    size: int | None = None
    icon: str | None = None
    push_time: DateTime
    pull_time: DateTime
    extra_attrs: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    references: list[Reference] | None = None
    tags: list[Tag] | None = None
    addition_links: dict[str, AdditionLink] | None = None
    labels: list[Label] | None = None
    scan_overview: dict[str, Any] | None = None
    sbom_overview: dict[str, Any] | None = None
    accessories: list[Accessory] | None = None
    inherited_accessories: list[Accessory] | None = None


class Access(HarborModel):
    resource: str | None = None
    action: str | None = None
    effect: str | None = None


class RobotPermission(HarborModel):
    kind: str | None = None
    namespace: str | None = None
    access: list[Access] | None = None


class Robot(HarborModel):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    secret: str | None = None
    level: str | None = None
    duration: int | None = None
    editable: bool
    disable: bool
    expires_at: int | None = None
    permissions: list[RobotPermission] | None = None
    creator_type: str | None = None
    creator_ref: int | None = None
    # Not in Harbor's swagger (which has creator_type and creator_ref): the creator's name.
    creator: str | None = None
    creation_time: DateTime
    update_time: DateTime


class RobotCreated(HarborModel):
    id: int | None = None
    name: str | None = None
    secret: str | None = None
    creation_time: DateTime
    expires_at: int | None = None


class RobotSec(HarborModel):
    secret: str | None = None


class Statistic(HarborModel):
    private_project_count: int
    private_repo_count: int
    public_project_count: int
    public_repo_count: int
    total_project_count: int
    total_repo_count: int
    total_storage_consumption: int


class SearchRepository(HarborModel):
    project_id: int | None = None
    project_name: str | None = None
    project_public: bool | None = None
    repository_name: str | None = None
    pull_count: int | None = None
    artifact_count: int | None = None


class Search(HarborModel):
    project: list[Project] | None = None
    repository: list[SearchRepository] | None = None


class ScheduleObj(HarborModel):
    type: str | None = None
    cron: str | None = None
    next_scheduled_time: DateTime


class GCHistory(HarborModel):
    id: int | None = None
    job_name: str | None = None
    job_kind: str | None = None
    job_parameters: str | None = None
    schedule: ScheduleObj | None = None
    job_status: str | None = None
    deleted: bool | None = None
    creation_time: DateTime
    update_time: DateTime


class WebhookTargetObject(HarborModel):
    type: str | None = None
    address: str | None = None
    auth_header: str | None = None
    skip_cert_verify: bool | None = None
    payload_format: str | None = None


class WebhookPolicy(HarborModel):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    project_id: int | None = None
    targets: list[WebhookTargetObject] | None = None
    event_types: list[str] | None = None
    creator: str | None = None
    creation_time: DateTime
    update_time: DateTime
    enabled: bool


class WebhookLastTrigger(HarborModel):
    policy_name: str | None = None
    event_type: str | None = None
    enabled: bool | None = None
    creation_time: DateTime
    last_trigger_time: DateTime


class PayloadFormat(HarborModel):
    notify_type: str | None = None
    formats: list[str] | None = None


class SupportedWebhookEventTypes(HarborModel):
    event_type: list[str] | None = None
    notify_type: list[str] | None = None
    payload_formats: list[PayloadFormat] | None = None


class Metrics(HarborModel):
    task_count: int | None = None
    success_task_count: int | None = None
    error_task_count: int | None = None
    pending_task_count: int | None = None
    running_task_count: int | None = None
    scheduled_task_count: int | None = None
    stopped_task_count: int | None = None


class Execution(HarborModel):
    id: int | None = None
    vendor_type: str | None = None
    vendor_id: int | None = None
    status: str | None = None
    status_message: str | None = None
    metrics: Metrics | None = None
    trigger: str | None = None
    extra_attrs: dict[str, Any] | None = None
    start_time: str | None = None
    end_time: str | None = None


class Task(HarborModel):
    id: int | None = None
    execution_id: int | None = None
    status: str | None = None
    status_message: str | None = None
    run_count: int | None = None
    extra_attrs: dict[str, Any] | None = None
    creation_time: str | None = None
    update_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None


class RetentionSelector(HarborModel):
    kind: str | None = None
    decoration: str | None = None
    pattern: str | None = None
    extras: str | None = None


class RetentionRule(HarborModel):
    id: int | None = None
    priority: int | None = None
    disabled: bool | None = None
    action: str | None = None
    template: str | None = None
    params: dict[str, Any] | None = None
    tag_selectors: list[RetentionSelector] | None = None
    scope_selectors: dict[str, list[RetentionSelector]] | None = None


class RetentionPolicy(HarborModel):
    id: int | None = None
    algorithm: str | None = None
    rules: list[RetentionRule] | None = None
    trigger: dict[str, Any] | None = None
    scope: dict[str, Any] | None = None


class RetentionExecution(HarborModel):
    id: int | None = None
    policy_id: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    status: str | None = None
    trigger: str | None = None
    dry_run: bool | None = None


class RetentionExecutionTask(HarborModel):
    id: int | None = None
    execution_id: int | None = None
    repository: str | None = None
    job_id: str | None = None
    status: str | None = None
    status_code: int
    status_revision: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    total: int
    retained: int


class RetentionRuleParamMetadata(HarborModel):
    type: str | None = None
    unit: str | None = None
    required: bool | None = None


class RetentionRuleMetadata(HarborModel):
    rule_template: str | None = None
    display_text: str | None = None
    action: str | None = None
    params: list[RetentionRuleParamMetadata] | None = None


class RetentionSelectorMetadata(HarborModel):
    display_text: str | None = None
    kind: str | None = None
    decorations: list[str] | None = None


class RetentionMetadata(HarborModel):
    templates: list[RetentionRuleMetadata] | None = None
    scope_selectors: list[RetentionSelectorMetadata] | None = None
    tag_selectors: list[RetentionSelectorMetadata] | None = None


# Harbor's swagger defines ImmutableSelector and ImmutableRule with exactly the retention fields.
ImmutableSelector = RetentionSelector
ImmutableRule = RetentionRule


class ComponentHealthStatus(HarborModel):
    name: str | None = None
    status: str | None = None
    error: str | None = None


class OverallHealthStatus(HarborModel):
    status: str | None = None
    components: list[ComponentHealthStatus] | None = None


class Icon(HarborModel):
    content_type: str | None = Field(default=None, alias="content-type")
    content: str | None = None


class StringConfigItem(HarborModel):
    value: str
    editable: bool


class BoolConfigItem(HarborModel):
    value: bool
    editable: bool


class IntegerConfigItem(HarborModel):
    value: int
    editable: bool


class ConfigurationsResponse(HarborModel):
    """The keys of Harbor's ConfigurationsResponse the registry has (each a pointer: absent when
    unset; Harbor's LDAP, OIDC, UAA, email and scanner keys do not exist here)."""

    auth_mode: StringConfigItem | None = None
    self_registration: BoolConfigItem | None = None
    read_only: BoolConfigItem | None = None
    project_creation_restriction: StringConfigItem | None = None
    robot_name_prefix: StringConfigItem | None = None
    token_expiration: IntegerConfigItem | None = None
    robot_token_duration: IntegerConfigItem | None = None
    storage_per_project: IntegerConfigItem | None = None
    banner_message: StringConfigItem | None = None


# Scanner registrations (/scanners, /projects/{p}/scanner).
class ScannerRegistration(HarborModel):
    uuid: str | None = None
    name: str | None = None
    description: str
    url: str | None = None
    disabled: bool
    is_default: bool
    auth: str
    access_credential: str
    skip_certVerify: bool  # Harbor's spelling
    use_internal_addr: bool
    create_time: DateTime
    update_time: DateTime
    adapter: str | None = None
    vendor: str | None = None
    version: str | None = None
    health: str | None = None
    capabilities: dict[str, Any] | None = None


class Scanner(HarborModel):
    name: str | None = None
    vendor: str | None = None
    version: str | None = None


class ScannerCapability(HarborModel):
    type: str
    consumes_mime_types: list[str] | None = None
    produces_mime_types: list[str] | None = None


class ScannerAdapterMetadata(HarborModel):
    scanner: Scanner | None = None
    capabilities: list[ScannerCapability] | None = None
    properties: dict[str, str] | None = None


# Scan all (branch scangate).


class Stats(HarborModel):
    total: int | None = None
    completed: int | None = None
    metrics: dict[str, int] | None = None
    ongoing: bool | None = None
    trigger: str | None = None


class Schedule(HarborModel):
    """Harbor answers `{}` when there is no schedule, so every field is optional."""

    id: int | None = None
    status: str | None = None
    creation_time: DateTime | None = None
    update_time: DateTime | None = None
    schedule: ScheduleObj | None = None
    parameters: dict[str, Any] | None = None


# Security hub.


class DangerousCVE(HarborModel):
    cve_id: str | None = None
    severity: str | None = None
    cvss_score_v3: float | None = None
    desc: str | None = None
    package: str | None = None
    version: str | None = None


class DangerousArtifact(HarborModel):
    project_id: int | None = None
    repository_name: str | None = None
    digest: str | None = None
    critical_cnt: int
    high_cnt: int
    medium_cnt: int


class SecuritySummary(HarborModel):
    critical_cnt: int
    high_cnt: int | None = None
    medium_cnt: int
    low_cnt: int
    none_cnt: int | None = None
    unknown_cnt: int | None = None
    total_vuls: int
    scanned_cnt: int
    total_artifact: int
    fixable_cnt: int
    dangerous_cves: list[DangerousCVE] | None = None
    dangerous_artifacts: list[DangerousArtifact] | None = None


class VulnerabilityItem(HarborModel):
    project_id: int | None = None
    repository_name: str | None = None
    digest: str | None = None
    tags: list[str] | None = None
    cve_id: str | None = None
    severity: str | None = None
    status: str | None = None
    cvss_v3_score: float | None = None
    package: str | None = None
    version: str | None = None
    fixed_version: str | None = None
    desc: str | None = None
    links: list[str] | None = None


# Scan data export.


class ScanDataExportJob(HarborModel):
    id: int | None = None


class ScanDataExportExecution(HarborModel):
    id: int | None = None
    user_id: int | None = None
    status: str | None = None
    trigger: str | None = None
    start_time: DateTime | None = None
    end_time: DateTime | None = None
    status_text: str
    user_name: str
    file_present: bool


class ScanDataExportExecutionList(HarborModel):
    items: list[ScanDataExportExecution] | None = None


# Registries (`/registries`, `/replication/adapters`, `/replication/adapterinfos`).
class RegistryCredential(HarborModel):
    type: str | None = None
    access_key: str | None = None
    access_secret: str | None = None


class Registry(HarborModel):
    id: int  # x-omitempty: false
    url: str | None = None
    name: str | None = None
    credential: RegistryCredential | None = None
    type: str | None = None
    insecure: bool | None = None
    ca_certificate: str | None = None
    description: str | None = None
    status: str | None = None
    creation_time: DateTime
    update_time: DateTime
    pointers = frozenset({"ca_certificate"})


class FilterStyle(HarborModel):
    type: str | None = None
    style: str | None = None
    values: list[str] | None = None


class RegistryInfo(HarborModel):
    type: str | None = None
    description: str | None = None
    supported_resource_filters: list[FilterStyle] | None = None
    supported_triggers: list[str] | None = None
    supported_copy_by_chunk: bool | None = None
    pointers = frozenset({"supported_copy_by_chunk"})


class RegistryEndpoint(HarborModel):
    key: str | None = None
    value: str | None = None


class RegistryProviderEndpointPattern(HarborModel):
    endpoint_type: str | None = None
    endpoints: list[RegistryEndpoint] | None = None


class RegistryProviderCredentialPattern(HarborModel):
    access_key_type: str | None = None
    access_key_data: str | None = None
    access_secret_type: str | None = None
    access_secret_data: str | None = None


class RegistryProviderInfo(HarborModel):
    endpoint_pattern: RegistryProviderEndpointPattern | None = None
    credential_pattern: RegistryProviderCredentialPattern | None = None


class ReplicationTriggerSettings(HarborModel):
    cron: str | None = None


class ReplicationTrigger(HarborModel):
    type: str | None = None
    trigger_settings: ReplicationTriggerSettings | None = None


class ReplicationFilter(HarborModel):
    type: str | None = None
    value: Any = None
    decoration: str | None = None


class ReplicationPolicy(HarborModel):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    src_registry: Registry | None = None
    dest_registry: Registry | None = None
    dest_namespace: str | None = None
    dest_namespace_replace_count: int | None = None
    trigger: ReplicationTrigger | None = None
    filters: list[ReplicationFilter] | None = None
    replicate_deletion: bool | None = None
    deletion: bool | None = None
    override: bool | None = None
    enabled: bool | None = None
    creation_time: DateTime
    update_time: DateTime
    speed: int | None = None
    copy_by_chunk: bool | None = None
    single_active_replication: bool | None = None
    # x-nullable in the swagger: written even when zero or false.
    pointers = frozenset({"dest_namespace_replace_count", "speed", "copy_by_chunk", "single_active_replication"})


class ReplicationExecution(HarborModel):
    id: int | None = None
    policy_id: int | None = None
    status: str | None = None
    trigger: str | None = None
    start_time: DateTime
    end_time: DateTime
    status_text: str | None = None
    total: int | None = None
    failed: int | None = None
    succeed: int | None = None
    in_progress: int | None = None
    stopped: int | None = None


class ReplicationTask(HarborModel):
    id: int | None = None
    execution_id: int | None = None
    resource_type: str | None = None
    src_resource: str | None = None
    dst_resource: str | None = None
    operation: str | None = None
    job_id: str | None = None
    status: str | None = None
    start_time: DateTime
    end_time: DateTime
