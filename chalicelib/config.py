"""The one settings object: every `REGISTRY_*` environment variable is read here and nowhere else."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
S3_MIN_PART_BYTES = 5 * MIB


class Settings(BaseSettings):
    """Registry configuration.

    Defaults suit the embedded local runner; the AWS stages in `.chalice/config.json` override
    what differs there (the request-body cap above all).
    """

    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    # Where the data lives.
    table_name: str = "registry"
    bucket_name: str = "registry-blobs"
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("REGISTRY_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    # Set only when talking to an AWS emulator over HTTP.
    aws_endpoint_url: str | None = None
    # S3 endpoint that presigned download URLs point at, when clients reach an S3 emulator under another
    # address than the app does; unset on AWS (the local runner serves blob downloads itself).
    presign_endpoint_url: str | None = None

    # Upload data plane (docs/architecture.md).
    max_body_bytes: int = Field(default=0, ge=0, description="0 disables the request-body cap")
    part_size_bytes: int = Field(default=8 * MIB, ge=S3_MIN_PART_BYTES)
    upload_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    upload_lease_seconds: int = Field(default=60, ge=1)
    auto_mount: bool = Field(default=False, description="mount a known blob when POST has mount= but no from=")
    # The streaming upload relay (`chalicelib/relay`): the public base URL (scheme://host[:port]) the
    # upload POST puts in `Location`; unset, uploads stay on this app (with its body cap).
    relay_url: str | None = None
    # Where the relay listens: `python -m chalicelib.relay`, or beside `make serve` (port unset: the
    # registry port + 1; 0: any free port).
    relay_host: str = "127.0.0.1"
    relay_port: int | None = Field(default=None, ge=0, le=65535)
    # The HMAC key the app and the relay share for upload capabilities: the key itself (local), or a
    # Secrets Manager ARN / SSM SecureString name holding it (AWS).
    relay_key: SecretStr | None = None
    relay_key_parameter: str | None = None
    # `make serve` runs the relay beside the app; false models the $0-idle AWS deployment, whose
    # uploads all go through the app (and its body cap).
    local_relay: bool = True

    # The local server refuses a longer body on every route but blob uploads before reading it
    # (local/bodygate.py); at least `manifest_max_bytes` is always let through.
    request_body_max_bytes: int = Field(default=16 * MIB, ge=1024)

    # Manifests.
    manifest_max_bytes: int = Field(default=4 * MIB, ge=1024)
    inline_manifest_max_bytes: int = Field(default=300_000, ge=0, le=350_000)
    # Room in a manifest's DynamoDB row for the digests it references (~540 digests); a longer list
    # is read from the manifest body when needed. Keeps rows under DynamoDB's 400 KB item limit.
    manifest_row_refs_max_bytes: int = Field(default=40_000, ge=0, le=40_000)

    # Downloads.
    presign_ttl_seconds: int = Field(default=1200, ge=60, le=7 * 24 * 3600)

    # Pagination of tags, catalog and referrers.
    page_max_entries: int = Field(default=1000, ge=1)
    # Pull counts and pull times are kept in memory and written at most once per repository (and per
    # artifact and tag) per this many seconds.
    pull_count_flush_seconds: int = Field(default=60, ge=0, le=3600)

    # Identity and tokens (Harbor's database auth mode).
    admin_password: SecretStr | None = None
    # On AWS: an SSM SecureString name or a Secrets Manager ARN holding the admin password.
    admin_password_parameter: str | None = None
    # The RS256 key that signs registry tokens: a PEM file (local) or an SSM/Secrets Manager name (AWS).
    token_key_file: Path | None = None
    token_key_parameter: str | None = None
    token_service: str = "harbor-registry"  # noqa: S105 (a name, not a secret)
    token_issuer: str = "harbor-token-issuer"  # noqa: S105
    # Public base URL (scheme://host) for the token realm; derived from the request when unset.
    external_url: str | None = None
    v2_basic_auth: bool = Field(default=True, description="accept Basic credentials directly on /v2")
    credential_cache_seconds: int = Field(default=60, ge=0)
    # Failed sign-ins: past this many in the window, an account name (a source address) gets 429
    # until the window ends; in-process counts (services/signin_throttle.py says why). 0: no limit.
    signin_failures_per_account: int = Field(default=10, ge=0)
    signin_failures_per_source: int = Field(default=100, ge=0)
    signin_failure_window_seconds: int = Field(default=300, ge=1, le=86_400)
    # Defaults of Harbor's /configurations keys until an administrator changes them.
    project_creation_restriction: Literal["everyone", "adminonly"] = "everyone"
    robot_name_prefix: str = "robot$"
    token_expiration_minutes: int = Field(default=30, ge=1, le=24 * 60)
    robot_token_duration_days: int = Field(default=30, ge=-1)
    storage_per_project: int = Field(default=-1, ge=-1)

    # Tag immutability: how long a process trusts its cached copy of a project's rules.
    immutable_rules_cache_seconds: int = Field(default=10, ge=0, le=3600)
    # Audit log: entries expire (DynamoDB TTL) this many days after the operation.
    audit_retention_days: int = Field(default=90, ge=1, le=3650)
    # Background jobs (docs/architecture.md). GC treats a blob untouched for this long as a candidate
    # (Harbor's window: it covers the gap between a layer upload and the manifest that uses it).
    # 0 is for tests: the mark then re-reads who counts each blob touched in the run's first second.
    gc_time_window_hours: float = Field(default=2.0, ge=0, le=24 * 365)
    # The Step Functions state machine that runs GC (set by the stack on AWS, by the runner locally).
    gc_state_machine_arn: str | None = None
    # The state machine that runs tag retention executions (as for GC).
    retention_state_machine_arn: str | None = None
    # The state machine that runs scan executions (vulnerability scans and SBOM generation).
    scan_state_machine_arn: str | None = None
    # Scan all (`services/scan_all.py`): its state machine; how many artifacts one step looks at;
    # how many scans it started may run at once; the pause between steps.
    scan_all_state_machine_arn: str | None = None
    scan_all_batch: int = Field(default=50, ge=1, le=500)
    scan_all_max_active: int = Field(default=50, ge=1, le=1000)
    scan_all_wait_seconds: int = Field(default=10, ge=0, le=3600)
    # Scan data export (`services/scan_export.py`): its state machine; artifacts one step exports.
    scan_export_state_machine_arn: str | None = None
    scan_export_batch: int = Field(default=200, ge=1, le=2000)
    # How many repositories one retention execution processes at a time (its Map's MaxConcurrency).
    retention_workers: int = Field(default=4, ge=1, le=40)
    # Replication: its state machine, how many artifacts one execution copies at a time (its Map's
    # MaxConcurrency), and how long one Lambda Task copies before it hands the rest to the next
    # (well under Lambda's 15 minutes: the Task finishes the blob it is on after the budget).
    replication_state_machine_arn: str | None = None
    replication_workers: int = Field(default=4, ge=1, le=40)
    replication_task_budget_seconds: float = Field(default=600.0, gt=0, le=840)
    # Domain events go to this EventBridge bus (on AWS); unset: the in-process bus delivers them.
    event_bus_name: str | None = None
    # How often the local scheduler thread looks for due schedules.
    scheduler_interval_seconds: float = Field(default=5.0, gt=0)
    # Networks that outbound calls (webhooks, ...) may reach although not public (adapters/egress.py).
    egress_allow_networks: str = Field(default="", description="comma-separated CIDRs")
    # Webhooks: attempts per target, the first backoff (doubled after each failure), the HTTP
    # timeout, how long a process trusts its copy of a project's policies, delivery threads.
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_policy_cache_seconds: int = Field(default=10, ge=0, le=3600)
    webhook_workers: int = Field(default=4, ge=1, le=32)
    # QUOTA_WARNING fires when a push takes a project's storage to this share of its limit
    # (Harbor's `ResourcesWarningPercent`, 85 by default).
    quota_warning_percent: int = Field(default=85, ge=1, le=100)
    # The state machine that delivers webhooks durably, one attempt per Task (set by the stack on
    # AWS, by the runner locally); unset: delivery in-process (a thread pool locally, the event
    # consumer's own invocation on AWS). `threads` keeps local delivery in-process even when the
    # runner provides the machine (lower latency, but a restart loses what is in flight).
    webhook_state_machine_arn: str | None = None
    webhook_delivery: Literal["stepfunctions", "threads"] = "stepfunctions"
    # Scanner registrations. Adapters often sit on private networks (Trivy beside the registry):
    # networks scanner adapters may be reached on, on top of `egress_allow_networks`.
    scanner_allow_networks: str = Field(default="", description="comma-separated CIDRs")
    # How long a process trusts an adapter's metadata, or its failure to answer (Harbor: 30 s).
    scanner_metadata_cache_seconds: int = Field(default=30, ge=0, le=3600)
    # Credentials the registry presents to others (a scanner's API key, a remote registry's
    # password) are Secrets Manager secrets named under this prefix (the stack's IAM policy is
    # scoped to it) ...
    secrets_prefix: str = "registry/"
    # ... or, when this key file is set (the embedded runner sets one under the data dir), rows of
    # the table encrypted with its key (AES-256-GCM; the file holds the key, base64).
    local_secret_key_file: Path | None = None
    # Remote registries (replication, proxy cache): the HTTP timeout of their calls, and how often
    # their health is checked (Harbor: every 5 minutes). Their secrets are kept as above.
    remote_registry_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    remote_registry_health_seconds: int = Field(default=300, ge=5, le=86400)
    # Per registry type, endpoints that type otherwise fixes, as JSON: `{"docker-hub": {"hub_url": ...,
    # "registry_url": ...}, "aws-ecr": {"ecr_endpoint_url": ...}}` (mirrors, VPC endpoints, test doubles).
    remote_registry_overrides: str = ""

    # The embedded runner (`make serve`).
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    data_dir: Path = Path(".registry-data")
    # Every DynamoDB write is journaled (fsync'ed) before it is acknowledged; every this many
    # seconds the runner checks whether the journal has outgrown the last snapshot (and
    # `journal_compact_bytes`) and, if so, folds it into a new snapshot (`local/persistence.py`).
    snapshot_interval_seconds: int = Field(default=30, ge=1)
    journal_compact_bytes: int = Field(default=16 * 1024**2, ge=1024)
    # UNSAFE, for benchmarks only: no journal and no fsync of blob files; state is saved only at
    # a clean stop, so a crash loses every write since the last one.
    unsafe_no_journal: bool = False
    server_threads: int = Field(default=16, ge=1)
    # Set by the embedded runner: blob bytes as files under this directory instead of S3
    # (`stores/files.py` says why). Unset on AWS and in the functional tests.
    local_object_dir: Path | None = None
    # The embedded runner answers a blob GET with the bytes (one request per blob); true keeps the
    # 307 to the download URL that AWS answers with (two requests), to exercise clients' redirects.
    local_blob_redirect: bool = False
    # The built-in scanner adapter (`chalicelib/scanner_adapter`): the runner starts it on a
    # loopback port and registers it as the default scanner (`osv-lite`). Unset: the registry's
    # port + 2 (a stable address, so a restart rewrites nothing), or any free one if that is taken.
    local_scanner: bool = True
    local_scanner_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator(
        "aws_endpoint_url",
        "presign_endpoint_url",
        "admin_password_parameter",
        "token_key_parameter",
        "external_url",
        "gc_state_machine_arn",
        "retention_state_machine_arn",
        "scan_state_machine_arn",
        "scan_all_state_machine_arn",
        "scan_export_state_machine_arn",
        "replication_state_machine_arn",
        "event_bus_name",
        "webhook_state_machine_arn",
        "relay_url",
        "relay_key_parameter",
    )
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("remote_registry_overrides")
    @classmethod
    def _overrides(cls, value: str) -> str:
        if value.strip():
            parsed = json.loads(value)
            if not isinstance(parsed, dict) or not all(
                isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in parsed.values()
            ):
                raise ValueError("must be a JSON object of registry type -> {setting: string}")
        return value

    @property
    def remote_overrides(self) -> dict[str, dict[str, str]]:
        return json.loads(self.remote_registry_overrides) if self.remote_registry_overrides.strip() else {}

    @field_validator("egress_allow_networks", "scanner_allow_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for network in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return value

    @property
    def body_cap_enabled(self) -> bool:
        return self.max_body_bytes > 0

    @property
    def relay_enabled(self) -> bool:
        return self.relay_url is not None

    @property
    def relay_listen_port(self) -> int:
        """The relay's port: REGISTRY_RELAY_PORT, else the registry's port + 1 (0: any free port)."""
        return self.port + 1 if self.relay_port is None else self.relay_port


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; tests clear the cache after changing the environment."""
    return Settings()
