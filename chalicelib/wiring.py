"""Composition root: builds clients, stores and services once, lazily (never at import time).

The first build also bootstraps what Harbor has from the start: the `admin` system administrator
and the public `library` project (two GetItems on a warm table).

Every service, store and AWS client library is imported by the function that builds it, not by this
module: each route module imports `services`, and the Lambda handler's import (its cold start) must
not pay for the whole application before the first request needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.core.clock import Clock, system_clock
from chalicelib.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from chalicelib.adapters.egress import EgressClient, EgressPolicy
    from chalicelib.auth.tokens import SigningKey
    from chalicelib.config import Settings
    from chalicelib.core.identity import Principal, Project
    from chalicelib.events import EventBus
    from chalicelib.services.access import AccessService
    from chalicelib.services.allowlists import AllowlistService
    from chalicelib.services.artifacts import ArtifactService
    from chalicelib.services.audit import AuditService
    from chalicelib.services.blobs import BlobService
    from chalicelib.services.configuration import ConfigurationService
    from chalicelib.services.gate import GateService
    from chalicelib.services.gc import GcService
    from chalicelib.services.health import HealthService
    from chalicelib.services.icons import IconService
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.members import MemberService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.proxy_cache import ProxyCacheService
    from chalicelib.services.pulls import PullCoalescer
    from chalicelib.services.quotas import QuotaService
    from chalicelib.services.registries import RegistryService
    from chalicelib.services.replication import ReplicationService
    from chalicelib.services.replication_run import ReplicationRun
    from chalicelib.services.repositories import RepositoryService
    from chalicelib.services.retention import RetentionService
    from chalicelib.services.retention_run import RetentionRun
    from chalicelib.services.robots import RobotService
    from chalicelib.services.scan_all import ScanAllService
    from chalicelib.services.scan_export import ScanExportService
    from chalicelib.services.scanners import ScannerService
    from chalicelib.services.scans import ScanService
    from chalicelib.services.securityhub import SecurityHubService
    from chalicelib.services.uploads import UploadService
    from chalicelib.services.users import UserService
    from chalicelib.services.webhook_delivery import WebhookDelivery
    from chalicelib.services.webhooks import WebhookService
    from chalicelib.stores.eventbus import EventBridgePublisher
    from chalicelib.stores.jobs import StepFunctionsRunner
    from chalicelib.stores.objects import ObjectStore
    from chalicelib.stores.secrets import SecretStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    uploads: UploadService
    manifests: ManifestService
    blobs: BlobService
    repositories: RepositoryService
    health: HealthService
    access: AccessService
    configuration: ConfigurationService
    users: UserService
    projects: ProjectService
    members: MemberService
    robots: RobotService
    quotas: QuotaService
    events: EventBus
    icons: IconService
    immutability: ImmutabilityService
    audit: AuditService
    labels: LabelService
    artifacts: ArtifactService
    jobs: JobService
    gc: GcService
    webhooks: WebhookService
    webhook_delivery: WebhookDelivery
    retention: RetentionService
    retention_runs: RetentionRun
    pulls: PullCoalescer
    scanners: ScannerService
    # Scanning policy (branch scangate): CVE allowlists.
    allowlists: AllowlistService
    gate: GateService
    scan_all: ScanAllService
    scans: ScanService
    securityhub: SecurityHubService
    scan_export: ScanExportService
    registries: RegistryService
    replication: ReplicationService
    replication_runs: ReplicationRun
    proxy: ProxyCacheService
    # The key upload capabilities are signed with, when a relay is configured (`core/capability.py`).
    relay_key: bytes | None = None


def s3_client(settings: Settings, endpoint_url: str | None) -> S3Client:
    return _s3_client(settings.aws_region, endpoint_url, max(10, settings.server_threads * 2))


@lru_cache(maxsize=8)
def _s3_client(region: str, endpoint_url: str | None, pool: int) -> S3Client:
    """One client per (region, endpoint, pool size), kept across rebuilt wirings (see `_aws_client`)."""
    import boto3
    from botocore.config import Config

    # Path-style addressing is what an emulator endpoint (moto) serves; AWS uses virtual hosts.
    addressing = "path" if endpoint_url else "virtual"
    config = Config(
        signature_version="s3v4",
        # Requests carry their own SHA-256 checksum where it matters (and go over TLS on AWS), so
        # SigV4 need not hash every payload a second time.
        s3={"addressing_style": addressing, "payload_signing_enabled": False},  # type: ignore[arg-type]
        max_pool_connections=pool,
        retries={"mode": "standard", "max_attempts": 4},
        # The registry sends its own SHA-256 where it matters; skip botocore's extra CRC pass.
        request_checksum_calculation="when_required",
    )
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


@lru_cache(maxsize=16)
def _aws_client(service: str, region: str, endpoint_url: str | None) -> Any:
    """A boto3 client, built once per (service, region, endpoint) and process.

    botocore clients are thread-safe and cost tens of milliseconds to build; the services are
    rebuilt whenever settings change (tests do it between cases), the clients need not be.
    """
    import boto3

    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def object_store(settings: Settings, clock: Clock = system_clock) -> ObjectStore:
    """S3, or files under `local_object_dir` when the embedded runner asks for them."""
    from chalicelib.stores.files import FileObjectStore
    from chalicelib.stores.objects import S3ObjectStore

    if settings.local_object_dir is not None:
        return FileObjectStore(settings.local_object_dir, sync=not settings.unsafe_no_journal, clock=clock)
    presign = s3_client(settings, settings.presign_endpoint_url) if settings.presign_endpoint_url else None
    return S3ObjectStore(s3_client(settings, settings.aws_endpoint_url), settings.bucket_name, presign)


def _event_publisher(settings: Settings) -> EventBridgePublisher | None:
    """EventBridge on AWS; None (the in-process worker) locally."""
    from chalicelib.stores.eventbus import EventBridgePublisher

    if not settings.event_bus_name:
        return None

    def client() -> Any:
        return _aws_client("events", settings.aws_region, settings.aws_endpoint_url)

    return EventBridgePublisher(client, settings.event_bus_name)


def _job_runner(settings: Settings) -> StepFunctionsRunner:
    from chalicelib.stores.jobs import StepFunctionsRunner

    def client() -> Any:
        return _aws_client("stepfunctions", settings.aws_region, settings.aws_endpoint_url)

    machines = {"GARBAGE_COLLECTION": settings.gc_state_machine_arn} if settings.gc_state_machine_arn else {}
    if settings.retention_state_machine_arn:
        machines["RETENTION"] = settings.retention_state_machine_arn
    if settings.scan_state_machine_arn:
        machines["IMAGE_SCAN"] = machines["SBOM"] = settings.scan_state_machine_arn
    if settings.scan_all_state_machine_arn:
        machines["SCAN_ALL"] = settings.scan_all_state_machine_arn
    if settings.scan_export_state_machine_arn:
        machines["SCAN_DATA_EXPORT"] = settings.scan_export_state_machine_arn
    if settings.replication_state_machine_arn:
        machines["REPLICATION"] = settings.replication_state_machine_arn
    if _durable_webhooks(settings):
        machines["WEBHOOK"] = str(settings.webhook_state_machine_arn)
    return StepFunctionsRunner(client, machines)


def _durable_webhooks(settings: Settings) -> bool:
    """Webhooks go through their state machine when there is one, unless told to stay in-process."""
    return settings.webhook_state_machine_arn is not None and settings.webhook_delivery == "stepfunctions"


def _egress(settings: Settings) -> EgressClient:
    """The one client of every outbound call, under the configured egress policy."""
    from chalicelib.adapters.egress import EgressClient, EgressPolicy, parse_networks

    networks = parse_networks(settings.egress_allow_networks.split(","))
    return EgressClient(EgressPolicy(networks), settings.webhook_timeout_seconds)


def _registries(settings: Settings, clock: Clock, events: EventBus, secrets: SecretStore) -> RegistryService:
    """Remote registries, their secrets in the registry's secret store."""
    from chalicelib.adapters.egress import EgressPolicy, parse_networks
    from chalicelib.services.registries import RegistryService
    from chalicelib.stores.registries import RegistryStore

    policy = EgressPolicy(parse_networks(settings.egress_allow_networks.split(",")))
    return RegistryService(
        RegistryStore(clock), secrets, policy, timeout_seconds=settings.remote_registry_timeout_seconds,
        adapter_settings=settings.remote_overrides, events=events, clock=clock,
    )  # fmt: skip


def _registry_host(settings: Settings) -> str:
    """The host webhook payloads name in `resource_url` (Harbor: its external endpoint)."""
    if settings.external_url:
        return settings.external_url.split("://", 1)[-1].rstrip("/")
    return f"{settings.host}:{settings.port}"


def _registry_url(settings: Settings) -> str:
    """Where a scanner pulls from: the external URL, else the local server's address."""
    if settings.external_url:
        return settings.external_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def _secret_value(name: str) -> str:
    """An SSM SecureString (by name) or a Secrets Manager secret (by ARN), through Powertools."""
    from aws_lambda_powertools.utilities import parameters  # only on AWS

    if name.startswith("arn:") and ":secretsmanager:" in name:  # any partition (aws, aws-cn, aws-us-gov)
        return str(parameters.get_secret(name))
    return str(parameters.get_parameter(name, decrypt=True))


def _scanner_egress(settings: Settings) -> Callable[[], EgressPolicy]:
    """The egress policy of calls to scanner adapters: the registry's, plus the networks adapters
    may sit on (`scanner_allow_networks`); built on first use."""

    @lru_cache(maxsize=1)
    def policy() -> EgressPolicy:
        from chalicelib.adapters.egress import EgressPolicy, parse_networks

        parts = [*settings.egress_allow_networks.split(","), *settings.scanner_allow_networks.split(",")]
        return EgressPolicy(parse_networks(parts))

    return policy


def secret_store(settings: Settings, clock: Clock = system_clock) -> SecretStore:
    """Where credentials the registry presents are kept: Secrets Manager, or the table encrypted
    under a local key file (the embedded runner)."""
    if settings.local_secret_key_file is not None:
        import base64

        from chalicelib.stores.secrets import LocalSecretStore

        key = base64.b64decode(settings.local_secret_key_file.read_text().strip())
        return LocalSecretStore(key, clock)
    from chalicelib.stores.secrets import SecretsManagerStore

    def client() -> Any:
        return _aws_client("secretsmanager", settings.aws_region, settings.aws_endpoint_url)

    return SecretsManagerStore(client, settings.secrets_prefix)


def signing_key(settings: Settings) -> SigningKey:
    from chalicelib.auth.tokens import SigningKey

    if settings.token_key_file is not None:
        return SigningKey.from_pem(settings.token_key_file.read_bytes())
    if settings.token_key_parameter:
        return SigningKey.from_pem(_secret_value(settings.token_key_parameter).encode())
    logger.warning("no token signing key configured: using a key that lives only in this process")
    return SigningKey.generate()


def relay_key(settings: Settings) -> bytes | None:
    """The HMAC key the app and the relay share; None when no relay is configured."""
    if settings.relay_key is not None:
        value = settings.relay_key.get_secret_value()
    elif settings.relay_key_parameter:
        value = _secret_value(settings.relay_key_parameter)
    else:
        logger.error("REGISTRY_RELAY_URL is set without REGISTRY_RELAY_KEY(_PARAMETER): uploads stay on the app")
        return None
    if len(value) < 32:
        raise ValueError("the relay key must be at least 32 characters")
    return value.encode()


def admin_password(settings: Settings) -> str | None:
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    if settings.admin_password_parameter:
        return _secret_value(settings.admin_password_parameter)
    return None


_clock: Clock = system_clock


def use_clock(clock: Clock) -> None:
    """Wire `clock` into every service and store from the next build on (tests move time with it)."""
    global _clock  # noqa: PLW0603 (the composition root's one seam for time)
    _clock = clock
    services.cache_clear()


@lru_cache(maxsize=1)
def services() -> Services:  # noqa: PLR0915 (imports and builds every part once)
    from chalicelib.config import get_settings
    from chalicelib.core.webhooks import longest_delivery
    from chalicelib.events import EventBus
    from chalicelib.services.access import AccessService
    from chalicelib.services.allowlists import AllowlistService
    from chalicelib.services.artifacts import ArtifactService
    from chalicelib.services.audit import AuditService
    from chalicelib.services.blobs import BlobService
    from chalicelib.services.configuration import ConfigurationService
    from chalicelib.services.gate import GateService
    from chalicelib.services.gc import GcService
    from chalicelib.services.health import HealthService
    from chalicelib.services.icons import IconService
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.members import MemberService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.proxy_cache import ProxyCacheService
    from chalicelib.services.pulls import PullCoalescer
    from chalicelib.services.quotas import QuotaService
    from chalicelib.services.replication import ReplicationService
    from chalicelib.services.replication_run import ReplicationRun
    from chalicelib.services.repositories import RepositoryService
    from chalicelib.services.retention import RetentionService
    from chalicelib.services.retention_run import RetentionRun
    from chalicelib.services.robots import RobotService
    from chalicelib.services.scan_all import ScanAllService
    from chalicelib.services.scan_export import ScanExportService
    from chalicelib.services.scan_triggers import ScanTriggers
    from chalicelib.services.scanners import ScannerService
    from chalicelib.services.scans import SbomAccessories, ScanService
    from chalicelib.services.securityhub import SecurityHubService
    from chalicelib.services.signin_throttle import SignInThrottle
    from chalicelib.services.uploads import UploadService
    from chalicelib.services.users import UserService
    from chalicelib.services.webhook_delivery import WebhookDelivery
    from chalicelib.services.webhooks import WebhookService
    from chalicelib.stores import tables
    from chalicelib.stores.allowlists import AllowlistStore
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.audit import AuditStore
    from chalicelib.stores.blob_bytes import BlobBytes
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.configuration import ConfigurationStore
    from chalicelib.stores.gate import GateStore
    from chalicelib.stores.gc import GcStore
    from chalicelib.stores.immutability import ImmutabilityStore
    from chalicelib.stores.jobs import JobStore
    from chalicelib.stores.labels import LabelStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.projects import ProjectStore
    from chalicelib.stores.replication import ReplicationStore
    from chalicelib.stores.repositories import RepositoryStore
    from chalicelib.stores.retention import RetentionStore
    from chalicelib.stores.robots import RobotStore
    from chalicelib.stores.scanexport import ScanExportFiles
    from chalicelib.stores.scanners import ScannerStore
    from chalicelib.stores.scans import ScanStore
    from chalicelib.stores.securityhub import SecurityHubStore
    from chalicelib.stores.uploads import UploadStore
    from chalicelib.stores.users import UserStore
    from chalicelib.stores.webhooks import WebhookStore

    settings = get_settings()
    clock = _clock
    tables.bind(settings.table_name, settings.aws_region, settings.aws_endpoint_url)
    objects = object_store(settings, clock)
    gc_window = int(settings.gc_time_window_hours * 3600)
    blob_meta = BlobMetaStore(objects, touch_older_than_seconds=gc_window // 2, clock=clock)
    manifest_store = ManifestStore(
        objects, settings.inline_manifest_max_bytes, settings.manifest_row_refs_max_bytes, clock=clock
    )
    project_store = ProjectStore(clock)
    user_store = UserStore(clock)
    configuration = ConfigurationService(ConfigurationStore(clock), settings, clock)
    robot_store = RobotStore(clock)
    access = AccessService(
        user_store, robot_store, project_store, configuration, lambda: signing_key(settings),
        issuer=settings.token_issuer, service=settings.token_service,
        credential_cache_seconds=settings.credential_cache_seconds,
        throttle=SignInThrottle(settings.signin_failures_per_account, settings.signin_failures_per_source,
                                settings.signin_failure_window_seconds, clock=clock),
        clock=clock,
    )  # fmt: skip
    events = EventBus(_event_publisher(settings), clock)
    projects = ProjectService(project_store, access, configuration, robot_store, events)
    quotas = QuotaService(project_store, projects, events, settings.quota_warning_percent)
    events.subscribe(quotas.on_event)
    audit = AuditService(AuditStore(), projects, access, settings.audit_retention_days, clock=clock)
    events.subscribe_batch(audit.record_many)
    immutability = ImmutabilityService(ImmutabilityStore(), settings.immutable_rules_cache_seconds, clock=clock)
    events.subscribe(immutability.on_event)
    blob_bytes = BlobBytes(objects)
    blobs = BlobService(blob_meta, blob_bytes, settings.presign_ttl_seconds)
    icons = IconService(blob_meta, blob_bytes, manifest_store, blobs)
    events.subscribe(icons.on_event)
    artifact_store = ArtifactStore()
    manifests = ManifestService(
        manifest_store, artifact_store, blob_meta, blob_bytes=blob_bytes, quota=quotas, events=events,
        max_bytes=settings.manifest_max_bytes, immutability=immutability,
    )  # fmt: skip
    repository_store = RepositoryStore(clock)
    labels = LabelService(LabelStore(clock), projects, manifests)
    artifacts = ArtifactService(artifact_store, manifests, manifest_store, projects, blob_meta,
                                repositories=repository_store, labels=labels, immutability=immutability)  # fmt: skip
    pulls = PullCoalescer(artifact_store, repository_store, settings.pull_count_flush_seconds, clock)
    events.subscribe(pulls.observe)
    repositories = RepositoryService(manifest_store, repository_store, projects, manifests)
    events.subscribe(labels.forget_artifact)
    events.subscribe(labels.forget_project)
    runner = _job_runner(settings)
    allowlists = AllowlistService(AllowlistStore(clock))
    jobs = JobService(JobStore(clock), runner, clock)
    # A GC tombstone outlives any upload session that could have written bytes before the sweep.
    tombstone_seconds = max(settings.upload_ttl_seconds, gc_window) + 3600
    gc = GcService(jobs, GcStore(objects, clock), manifests, manifest_store, project_store,
                   window_seconds=gc_window, tombstone_seconds=tombstone_seconds, clock=clock)  # fmt: skip
    longest = longest_delivery(settings.webhook_attempts, settings.webhook_timeout_seconds,
                               settings.webhook_backoff_seconds)  # fmt: skip
    egress = _egress(settings)
    webhooks = WebhookService(WebhookStore(), jobs, projects, egress,
                              cache_seconds=settings.webhook_policy_cache_seconds, longest_seconds=longest,
                              clock=clock)  # fmt: skip
    webhook_delivery = WebhookDelivery(
        webhooks, jobs, projects, egress,
        registry_host=_registry_host(settings), attempts=settings.webhook_attempts,
        backoff_seconds=settings.webhook_backoff_seconds, longest_seconds=longest,
        asynchronous=settings.event_bus_name is None, workers=settings.webhook_workers,
        durable=_durable_webhooks(settings), clock=clock,
    )  # fmt: skip
    events.subscribe(webhook_delivery.on_event)
    retention_store = RetentionStore(clock)
    retention_runs = RetentionRun(
        retention_store, jobs, projects, repositories=repository_store, artifacts=artifact_store, labels=labels,
        immutability=immutability, manifests=manifests, events=events, workers=settings.retention_workers,
        clock=clock,
    )  # fmt: skip
    retention = RetentionService(retention_store, jobs, projects, retention_runs)
    events.subscribe(retention.on_event)
    secrets = secret_store(settings, clock)
    scanners = ScannerService(ScannerStore(), secrets, _scanner_egress(settings), events,
                              metadata_cache_seconds=settings.scanner_metadata_cache_seconds, clock=clock)  # fmt: skip
    events.subscribe(scanners.forget_project)
    uploads = UploadService(
        UploadStore(settings.upload_ttl_seconds, settings.upload_lease_seconds, clock), objects, blob_meta, quotas,
        settings,
    )  # fmt: skip
    scans = ScanService(
        artifact_store, ScanStore(objects), jobs, robots=robot_store, access=access, scanners=scanners, events=events,
        registry_url=_registry_url(settings), internal_url=_registry_url(settings), clock=clock,
        accessories=SbomAccessories(uploads, manifests, artifact_store, clock),
    )  # fmt: skip
    securityhub = SecurityHubService(SecurityHubStore(), scanners, artifact_store)
    scans.use_hub(securityhub)
    manifests.on_deleted(securityhub.artifact_deleted)
    events.subscribe(securityhub.on_event)
    scan_triggers = ScanTriggers(projects, scans)
    events.subscribe(scan_triggers.on_event)
    scan_all = ScanAllService(
        jobs, scans, scanners=scanners, projects=projects, repositories=repository_store, artifacts=artifact_store,
        batch=settings.scan_all_batch, max_active=settings.scan_all_max_active,
        wait_seconds=settings.scan_all_wait_seconds, clock=clock,
    )  # fmt: skip
    scan_export = ScanExportService(
        jobs, ScanExportFiles(objects), projects=projects, repositories=repository_store, artifacts=artifact_store,
        labels=LabelStore(clock), reports=ScanStore(objects), access=access,
        download_ttl=settings.presign_ttl_seconds, batch=settings.scan_export_batch,
    )  # fmt: skip
    registries = _registries(settings, clock, events, secrets)
    projects.use_registries(registries.require_proxyable)
    # Replication: its policies, and the run that copies through the same services a client's push uses.
    replication_store = ReplicationStore(clock)
    replication_runs = ReplicationRun(
        replication_store, jobs, registries, manifests=manifests, uploads=uploads, blobs=blobs, projects=projects,
        labels=labels, artifacts=artifact_store, manifest_store=manifest_store, repositories=repository_store,
        events=events, workers=settings.replication_workers, budget_seconds=settings.replication_task_budget_seconds,
    )  # fmt: skip
    replication = ReplicationService(replication_store, jobs, registries, replication_runs)
    registries.register_in_use(replication.in_use)
    events.subscribe(replication.on_event)
    # The local runner serves blob bytes itself, so a cold blob streams to the client as it lands.
    streams = settings.local_object_dir is not None
    proxy = ProxyCacheService(project_store, registries, manifests, manifest_store, blobs, blob_meta, uploads, events,
                              repositories, stream_cold_blobs=streams, clock=clock)  # fmt: skip
    events.subscribe(proxy.on_event)

    def proxy_project_created(caller: Principal, project: Project) -> None:
        proxy.forget(project.name)  # synchronously: the project may be pulled from at once
        retention.create_proxy_default(caller, project)  # Harbor's default policy

    projects.on_proxy_project_created(proxy_project_created)
    built = Services(
        settings=settings,
        clock=clock,
        uploads=uploads,
        manifests=manifests,
        blobs=blobs,
        repositories=repositories,
        health=HealthService({"dynamodb": tables.ping, "s3": objects.ping}),
        access=access,
        configuration=configuration,
        users=UserService(user_store, access, project_store),
        projects=projects,
        members=MemberService(project_store, user_store, access),
        robots=RobotService(robot_store, projects, access, configuration, events, clock=clock),
        quotas=quotas,
        events=events,
        icons=icons,
        immutability=immutability,
        audit=audit,
        labels=labels,
        artifacts=artifacts,
        jobs=jobs,
        gc=gc,
        webhooks=webhooks,
        webhook_delivery=webhook_delivery,
        retention=retention,
        retention_runs=retention_runs,
        pulls=pulls,
        scanners=scanners,
        allowlists=allowlists,
        gate=GateService(GateStore(), ScanStore(objects), clock),
        scan_all=scan_all,
        scans=scans,
        securityhub=securityhub,
        scan_export=scan_export,
        registries=registries,
        replication=replication,
        replication_runs=replication_runs,
        proxy=proxy,
        relay_key=relay_key(settings) if settings.relay_enabled else None,
    )
    _bootstrap(built, settings)
    return built


def _bootstrap(built: Services, settings: Settings) -> None:
    from chalicelib.stores.users import UserStore

    password = admin_password(settings)
    if password is not None and built.users.ensure_admin(password):
        logger.info("created the admin user")
    admin = UserStore(built.clock).get("admin")
    if admin is None and password is None:  # an existing admin needs no password setting
        logger.error("no admin user and no admin password configured "
                     "(REGISTRY_ADMIN_PASSWORD or REGISTRY_ADMIN_PASSWORD_PARAMETER)")  # fmt: skip
    if admin is not None:
        built.projects.ensure_library(admin.user_id, admin.username)


def reset() -> None:
    """Forget settings and services (tests change the environment between cases)."""
    from chalicelib.config import get_settings

    get_settings.cache_clear()
    services.cache_clear()
