"""PynamoDB models of the registry table; the key layout is documented in `stores/keys.py`.

All models share one table. They are bound to a table name, region and endpoint by `bind()` at
wiring time (not at import), so nothing here touches AWS or reads the environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import botocore.loaders
import botocore.session
import pynamodb.connection.base as pynamodb_connection
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection.table import TableConnection
from pynamodb.exceptions import DeleteError, TransactWriteError
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.errors import Conflict, TooManyRequests
from chalicelib.stores import keys


class _Base(Model):
    class Meta:
        table_name = "registry"
        region = "us-east-1"
        host: str | None = None
        max_retry_attempts = 3
        connect_timeout_seconds = 5
        read_timeout_seconds = 10

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        """PynamoDB's connection for this model, carrying the one client all models share."""
        connection = super()._get_connection()
        inner = connection.connection
        if inner._client is None:
            inner._client = _shared_client(inner)
        return connection


class BlobRow(_Base):
    """A verified blob in `blobs/<alg>/<hex>`. `state`/`version` are the non-blocking GC protocol."""

    size = NumberAttribute()
    state = UnicodeAttribute(default="none")
    version = NumberAttribute(default=0)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    # Set once an artifact was pushed with this blob as its validated icon (GET /api/v2.0/icons).
    icon = BooleanAttribute(null=True)
    # Set only on a GC tombstone (state `deleted`): DynamoDB's TTL removes it later.
    expires_at = NumberAttribute(null=True)


class RepositoryRow(_Base):
    project = UnicodeAttribute()
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    # Harbor's integer id, assigned on first use by the management API (stores/repositories.py).
    repository_id = NumberAttribute(null=True)
    description = UnicodeAttribute(default="")
    pull_count = NumberAttribute(default=0)
    pull_time = NumberAttribute(null=True)


class LinkRow(_Base):
    """A repository's right to see a global blob (distribution's linked blob store)."""

    size = NumberAttribute()
    created_at = NumberAttribute()


class ProjectBlobRow(_Base):
    size = NumberAttribute()
    created_at = NumberAttribute()
    releasing = UnicodeAttribute(null=True)  # a release's token while it checks for references


class BlobRefRow(_Base):
    """A manifest of the project references a blob (keys only): what quota release looks up."""


class ManifestRow(_Base):
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    body = BinaryAttribute(null=True, legacy_encoding=False)
    in_s3 = BooleanAttribute(default=False)
    blobs = ListAttribute(of=UnicodeAttribute, default=list)
    children = ListAttribute(of=UnicodeAttribute, default=list)
    # Set when blobs/children were too many to copy into the row; parse them from the body.
    refs_in_body = BooleanAttribute(default=False)
    subject = UnicodeAttribute(null=True)
    artifact_type = UnicodeAttribute(null=True)
    config_media_type = UnicodeAttribute(null=True)
    annotations = MapAttribute[str, Any](null=True)
    # Set when the annotations were too big to copy into the row; read them from the body.
    annotations_in_body = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    # The artifact record (Harbor's artifact row), written by the same push transaction. Rows
    # pushed before these existed lack them; readers fall back (stores/artifacts.py).
    kind = UnicodeAttribute(null=True)  # the processor's type: IMAGE, CHART, UNKNOWN, ...
    extra_attrs = UnicodeAttribute(null=True)  # JSON object
    icon = UnicodeAttribute(null=True)
    total_size = NumberAttribute(null=True)  # manifest + config + layers, or index + children
    push_time = NumberAttribute(null=True)
    pull_time = NumberAttribute(null=True)
    accessory_type = UnicodeAttribute(null=True)  # set when the artifact is an accessory
    # Bumped by every write that makes something point at this manifest (an index edge, a tag): a
    # delete conditions on it.
    ref_version = NumberAttribute(null=True)
    # Every tag ever written to point here (a superset: a tag moved away stays named), read
    # strongly consistently by a delete, which must remove each tag still pointing here.
    tags = UnicodeSetAttribute(null=True)
    # The push-time listing (`ART#<repo>`), or `ARTX#<repo>` for children and hidden accessories.
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    # Scan state, one JSON summary per report MIME type (`core/scans.py`), each in its own
    # attribute so a vulnerability scan and an SBOM generation never overwrite each other.
    scan_generic = UnicodeAttribute(null=True)
    scan_native = UnicodeAttribute(null=True)
    scan_sbom = UnicodeAttribute(null=True)


class ParentRow(_Base):
    """`PARENT#<child>#<parent>`: an index references a manifest (keys only)."""


class TagsByDigest(GlobalSecondaryIndex["TagRow"]):
    class Meta:
        index_name = "gsi1"
        projection = KeysOnlyProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class TagRow(_Base):
    """A tag, with a copy of what a pull by tag returns (written with the tag, by the same
    conditional writes), so that pull reads one item. Rows written before the copy lack
    `media_type`; readers then read the manifest row."""

    digest = UnicodeAttribute()
    updated_at = NumberAttribute()
    media_type = UnicodeAttribute(null=True)
    size = NumberAttribute(null=True)
    body = BinaryAttribute(null=True, legacy_encoding=False)
    in_s3 = BooleanAttribute(null=True)
    pull_time = NumberAttribute(null=True)  # coalesced by the pull recorder (services/artifacts.py)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_digest = TagsByDigest()


class ReferrerRow(_Base):
    digest = UnicodeAttribute()
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    artifact_type = UnicodeAttribute(null=True)
    annotations = MapAttribute[str, Any](null=True)
    annotations_in_body = BooleanAttribute(default=False)


class PartAttr(MapAttribute[str, Any]):
    number = NumberAttribute()
    etag = UnicodeAttribute()
    size = NumberAttribute()


class ChunkAttr(MapAttribute[str, Any]):
    key = UnicodeAttribute()
    size = NumberAttribute()


class UploadRow(_Base):
    """An upload session; chunks below a part size wait in `pending`, full parts in `parts`."""

    repository = UnicodeAttribute()
    offset = NumberAttribute(default=0)
    next_seq = NumberAttribute(default=1)
    parts = ListAttribute(of=PartAttr, default=list)
    pending = ListAttribute(of=ChunkAttr, default=list)
    multipart_id = UnicodeAttribute(null=True)
    hash_algorithm = UnicodeAttribute(default="sha256")
    hash_state = BinaryAttribute(null=True, legacy_encoding=False)
    lease_token = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()


class CounterRow(_Base):
    """Atomic id sequence per kind (`COUNTER#<kind>`): Harbor's ids are integers."""

    value = NumberAttribute(default=0)


class IdRow(_Base):
    """`<KIND>ID#<id>` -> name, so numeric ids in API paths resolve with one GetItem."""

    name = UnicodeAttribute()


class UserRow(_Base):
    user_id = NumberAttribute()
    email = UnicodeAttribute(default="")
    realname = UnicodeAttribute(default="")
    comment = UnicodeAttribute(default="")
    password_hash = UnicodeAttribute()
    sysadmin = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    token_version = NumberAttribute(default=0)  # refresh tokens carry it; a bump revokes them


class ProjectRow(_Base):
    project_id = NumberAttribute()
    owner_id = NumberAttribute()
    owner_name = UnicodeAttribute()
    metadata = MapAttribute[str, Any](default=dict)
    cve_allowlist = UnicodeAttribute(default="{}")
    storage_limit = NumberAttribute(default=-1)
    storage_used = NumberAttribute(default=0)
    # limit - used, kept beside them because a condition expression cannot do arithmetic.
    storage_free = NumberAttribute(default=0)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    # True from the QUOTA_WARNING that announced usage past the warning share until usage is seen
    # below it again: one warning per crossing (services/quotas.py).
    quota_warned = BooleanAttribute(null=True)
    # A proxy-cache project's upstream (`REGISTRY#<id>`); its registry row counts it in `project_refs`.
    registry_id = NumberAttribute(null=True)


def raw_storage_limit(item: dict[str, Any]) -> int:
    """A raw project row's storage limit as the model reads it (absent: the default, unlimited),
    without deserialising the rest of the row (a read that fetched it beside other rows)."""
    return int(item.get("storage_limit", {"N": "-1"})["N"])


class MemberRow(_Base):
    member_id = NumberAttribute()
    entity_id = NumberAttribute()
    entity_name = UnicodeAttribute()
    entity_type = UnicodeAttribute(default="u")
    role_id = NumberAttribute()


class RobotRow(_Base):
    robot_id = NumberAttribute()
    level = UnicodeAttribute()
    permissions = UnicodeAttribute()  # JSON: Harbor's [{kind, namespace, access:[...]}]
    secret_hash = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    duration = NumberAttribute(default=-1)
    # Not the table's TTL attribute (`expires_at`): DynamoDB would delete an expired robot, where
    # Harbor keeps it, listed as expired, until someone deletes or refreshes it.
    expires_at = NumberAttribute(default=-1, attr_name="robot_expires_at")
    disabled = BooleanAttribute(default=False)
    creator = UnicodeAttribute(default="")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    token_version = NumberAttribute(default=0)  # refresh tokens carry it; a bump revokes them


class ConfigRow(_Base):
    values = UnicodeAttribute(default="{}")  # JSON object of Harbor configuration keys
    updated_at = NumberAttribute(default=0)


class SystemAllowlistRow(_Base):
    """The system CVE allowlist (`CONFIG` / `CVEALLOWLIST`). Its expiry is `expiry`, never
    `expires_at`: that name is the table's TTL attribute, which would delete the row."""

    items = ListAttribute(of=UnicodeAttribute, default=list)
    expiry = NumberAttribute(null=True)
    created_at = NumberAttribute(default=0)
    updated_at = NumberAttribute(default=0)


class ImmutableRulesRow(_Base):
    """All immutable-tag rules of a project in one item (`PROJECT#<name>`, `IMMUTABLE`): at most 15
    small rules, so one GetItem answers "is this tag protected?" and one conditional put on
    `version` keeps the 15-rule limit and the no-duplicates rule under concurrent writers."""

    rules = UnicodeAttribute(default="[]")  # JSON: [{id, priority, disabled, tag_selectors, scope_selectors}]
    version = NumberAttribute(default=0)


class AuditRow(_Base):
    """One audit log entry, written twice: under its project and under the global partition."""

    log_id = NumberAttribute()
    username = UnicodeAttribute()
    resource = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    operation = UnicodeAttribute()
    op_time = NumberAttribute()  # epoch milliseconds
    project = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)  # Harbor's operation_description (extended audit log)
    expires_at = NumberAttribute()  # DynamoDB TTL


class JobRow(_Base):
    """One execution of a background job (GC, retention, ...): Harbor's execution/task record."""

    vendor_type = UnicodeAttribute()
    trigger = UnicodeAttribute()
    status = UnicodeAttribute()
    parameters = UnicodeAttribute(default="{}")  # JSON object
    schedule_type = UnicodeAttribute(null=True)
    schedule_cron = UnicodeAttribute(null=True)
    counts = MapAttribute[str, Any](default=dict)
    execution_arn = UnicodeAttribute(null=True)
    stop_requested = BooleanAttribute(default=False)
    error = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    started_at = NumberAttribute(null=True)
    ended_at = NumberAttribute(null=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    lock = UnicodeAttribute(null=True)  # the lock it holds when not its vendor type's (`Job.lock`)
    metrics = MapAttribute[str, Any](null=True)  # its tasks by status, moved with each task's status


class TaskRow(_Base):
    """`JOB#<execution>` / `TASK#<id>`: one task of an execution (`core/jobs.py` `Task`)."""

    task_id = NumberAttribute()
    subject = UnicodeAttribute()
    status = UnicodeAttribute()
    parameters = UnicodeAttribute(default="{}")  # JSON object
    counts = MapAttribute[str, Any](default=dict)
    run_count = NumberAttribute(default=0)
    error = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    started_at = NumberAttribute(null=True)
    ended_at = NumberAttribute(null=True)
    log = ListAttribute(of=UnicodeAttribute, default=list)
    result = UnicodeAttribute(null=True)  # JSON object: the kind's outcome
    reported = NumberAttribute(null=True)  # when the kind's once-per-task side effect was claimed


class WebhookPoliciesRow(_Base):
    """All webhook policies of a project in one item (`PROJECT#<name>`, `WEBHOOKS`): an event needs
    them with one GetItem, and one conditional put on `version` keeps names unique under
    concurrent writers."""

    policies = UnicodeAttribute(default="[]")  # JSON: [Policy.record()]
    version = NumberAttribute(default=0)


class WebhookLastTriggerRow(_Base):
    """When a policy last fired for one event type (`PROJECT#<name>`, `WEBHOOKLAST#<id>#<type>`)."""

    last_trigger = NumberAttribute()


class JobLogRow(_Base):
    line = UnicodeAttribute()


class ScheduleRow(_Base):
    """A job kind's schedule: Harbor's type (Hourly/Daily/Weekly/Custom/None), 6-field cron, parameters."""

    schedule_type = UnicodeAttribute()
    cron = UnicodeAttribute(default="")
    parameters = UnicodeAttribute(default="{}")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    # The last cron slot a scheduler started a run for, so two schedulers never start it twice.
    last_fired = NumberAttribute(default=0)


class JobLockRow(_Base):
    job_id = NumberAttribute()


class GcCandidateRow(_Base):
    """A blob the GC mark phase claimed (state `delete` at `version`), waiting in its sweep shard."""

    version = NumberAttribute()
    size = NumberAttribute()
    repositories = ListAttribute(of=UnicodeAttribute, default=list)
    expires_at = NumberAttribute(null=True)


class ListIndex(GlobalSecondaryIndex["ListEntry"]):
    """`gsi1` read as a list: users, projects and robots each sit under one gsi1pk."""

    class Meta:
        index_name = "gsi1"
        projection = KeysOnlyProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class ListEntry(_Base):
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    listing = ListIndex()


class LabelRow(_Base):
    """A Harbor label (`LABEL#<id>`); its name is claimed by a `LabelNameRow` in its scope."""

    name = UnicodeAttribute()
    scope = UnicodeAttribute()
    project_id = NumberAttribute(default=0)
    description = UnicodeAttribute(default="")
    color = UnicodeAttribute(default="")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()


class LabelNameRow(_Base):
    """`LABELS#<scope>` / `NAME#<name>`: makes a name unique in its scope, and lists the scope."""

    label_id = NumberAttribute()


class LabelRefRow(_Base):
    """An attachment, written twice in one transaction: under the artifact's repository (read by
    artifact listings) and under the label (so deleting the label finds every attachment)."""

    label_id = NumberAttribute()
    repository = UnicodeAttribute()
    digest = UnicodeAttribute()
    created_at = NumberAttribute()


class ArtifactLabelsRow(_Base):
    """`REPO#<name>` / `ALABELS#<digest>`: the ids of the labels attached to one artifact, moved in
    the attach and detach transactions, so a list page reads its labels with one BatchGetItem."""

    label_ids = NumberSetAttribute(null=True)


class RetentionPolicyRow(_Base):
    """`RETENTION#<id>` / `POLICY`: a project's tag retention policy (Harbor's JSON, opaque here)."""

    project = UnicodeAttribute()
    project_id = NumberAttribute()
    policy = UnicodeAttribute(default="{}")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    version = NumberAttribute(default=1)


class RetentionLinkRow(_Base):
    """`PROJECT#<name>` / `RETENTION`: the project's one policy (Harbor's `retention_id` metadata);
    created with a condition so a project never gets two policies."""

    policy_id = NumberAttribute()


# Scanner registrations (`stores/scanners.py`).
class HubTotalsRow(_Base):
    """`SECHUB#<registration>` / `TOTALS`: the security hub's sums (moved with ADD only)."""

    critical_cnt = NumberAttribute(default=0)
    high_cnt = NumberAttribute(default=0)
    medium_cnt = NumberAttribute(default=0)
    low_cnt = NumberAttribute(default=0)
    none_cnt = NumberAttribute(default=0)
    unknown_cnt = NumberAttribute(default=0)
    fixable_cnt = NumberAttribute(default=0)
    scanned_cnt = NumberAttribute(default=0)


class HubArtifactCountRow(_Base):
    """`SECHUB` / `ARTIFACTS`: how many artifacts the registry holds (moved with ADD only)."""

    artifacts = NumberAttribute(default=0)


class HubCountedRow(_Base):
    """`SECHUBCOUNTED#<repository>` / `<digest>`: the artifact is in `HubArtifactCountRow`."""


class HubContributionRow(_Base):
    """What one artifact's vulnerability report added to the hub (so it can be taken back)."""

    project_id = NumberAttribute()
    counts = UnicodeAttribute()
    top_sk = UnicodeAttribute(null=True)
    item_sks = UnicodeSetAttribute(null=True)


class HubTopRow(_Base):
    """A ranking row: an artifact with Critical to Low findings, most dangerous first."""

    project_id = NumberAttribute()
    repository = UnicodeAttribute()
    digest = UnicodeAttribute()
    critical_cnt = NumberAttribute(default=0)
    high_cnt = NumberAttribute(default=0)
    medium_cnt = NumberAttribute(default=0)
    low_cnt = NumberAttribute(default=0)


class HubVulRow(_Base):
    """One finding of one artifact (Harbor's vulnerability item), ordered by CVSS v3 score."""

    project_id = NumberAttribute()
    repository = UnicodeAttribute()
    digest = UnicodeAttribute()
    cve_id = UnicodeAttribute()
    package = UnicodeAttribute()
    version = UnicodeAttribute()
    severity = UnicodeAttribute()
    fixed_version = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    cvss = NumberAttribute(null=True)
    description = UnicodeAttribute(null=True)
    links = ListAttribute(of=UnicodeAttribute, null=True)


class ScannerRegistrationsRow(_Base):
    """`SCANNERS` / `REGISTRATIONS`: every scanner registration in one item (a handful at most): a
    read is one GetItem, and one conditional put on `version` keeps names and URLs unique and one
    registration the default under concurrent writers."""

    registrations = UnicodeAttribute(default="[]")  # JSON: [ScannerRegistration.record()]
    version = NumberAttribute(default=0)


class ProjectScannerRow(_Base):
    """`SCANNERS` / `PROJECT#<project id>`: the registration a project chose (Harbor's
    `projectScanner` project metadata), beside the registrations so one BatchGetItem reads both."""

    registration = UnicodeAttribute()


class SecretRow(_Base):
    """`SECRET#<id>` / `SECRET`: a credential kept by the local secret store, encrypted (`stores/secrets.py`)."""

    ciphertext = BinaryAttribute(legacy_encoding=False)
    created_at = NumberAttribute()


class ReplicationPolicyRow(_Base):
    """`REPLICATION` / `POLICY#<id>`: a replication policy (its fields as JSON, opaque here)."""

    policy = UnicodeAttribute(default="{}")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    version = NumberAttribute(default=1)


class ReplicationNameRow(_Base):
    """`REPLICATION` / `POLICYNAME#<name>`: the claim that keeps policy names unique."""

    policy_id = NumberAttribute()


# Registries (`stores/registries.py`, issue 14).
class RegistryRow(_Base):
    """`REGISTRY#<id>` / `ENTITY`: one remote registry endpoint. `secret_ref` names where the secret
    is kept (`stores/secrets.py`), never the secret."""

    name = UnicodeAttribute()
    type = UnicodeAttribute()
    url = UnicodeAttribute()
    credential_type = UnicodeAttribute(null=True)
    access_key = UnicodeAttribute(default="")
    secret_ref = UnicodeAttribute(default="")
    insecure = BooleanAttribute(default=False)
    description = UnicodeAttribute(default="")
    status = UnicodeAttribute(default="healthy")
    settings = UnicodeAttribute(default="{}")  # JSON object: type-specific overrides
    ca_certificate = UnicodeAttribute(default="")
    # Proxy-cache projects using this registry: moved in the project's create and delete
    # transactions, and a registry is deleted only on condition that it is 0.
    project_refs = NumberAttribute(null=True)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    version = NumberAttribute(default=0)


class RegistryNameRow(_Base):
    """`REGISTRIES` / `NAME#<name>`: makes a registry name unique and lists every registry."""

    registry_id = NumberAttribute()


MODELS: tuple[type[Model], ...] = (
    BlobRow,
    RepositoryRow,
    LinkRow,
    ProjectBlobRow,
    ManifestRow,
    TagRow,
    ReferrerRow,
    UploadRow,
    CounterRow,
    BlobRefRow,
    IdRow,
    UserRow,
    ProjectRow,
    MemberRow,
    RobotRow,
    ConfigRow,
    SystemAllowlistRow,
    ListEntry,
    ImmutableRulesRow,
    AuditRow,
    LabelRow,
    LabelNameRow,
    LabelRefRow,
    ParentRow,
    ArtifactLabelsRow,
    JobRow,
    TaskRow,
    JobLogRow,
    ScheduleRow,
    JobLockRow,
    GcCandidateRow,
    RetentionPolicyRow,
    RetentionLinkRow,
    ScannerRegistrationsRow,
    ProjectScannerRow,
    ReplicationPolicyRow,
    ReplicationNameRow,
    RegistryRow,
    RegistryNameRow,
    SecretRow,
    HubTotalsRow,
    HubArtifactCountRow,
    HubCountedRow,
    HubContributionRow,
    HubTopRow,
    HubVulRow,
)


def bind(table_name: str, region: str, host: str | None) -> None:
    """Point every model at one table; drops cached connections so a rebind takes effect."""
    _share_botocore_data()
    models: tuple[type[Model], ...] = (_Base, *MODELS)
    for model in models:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model.Meta.host = host
        model._connection = None


_loader: list[botocore.loaders.Loader] = []
_clients: dict[tuple[str, str | None], Any] = {}
_clients_lock = threading.Lock()


def _shared_client(connection: pynamodb_connection.Connection) -> Any:
    """One botocore client per (region, endpoint) for every model and thread.

    PynamoDB builds a client per model class, each with a botocore session of its own (~15-40 ms
    together): a cold Lambda paid that for every model its first request touched, and each rebind
    paid it again. botocore clients are thread-safe and the models' connection settings are the
    same (`_Base.Meta`), so the first client built for an endpoint serves them all.
    """
    key = (connection.region, connection.host)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = connection.client  # built by PynamoDB, with its settings
        return client


def _shared_session(env_vars: Any = None) -> botocore.session.Session:
    if not _loader:
        _loader.append(botocore.loaders.create_loader())
    session = botocore.session.get_session(env_vars)
    session.register_component("data_loader", _loader[0])
    return session


def _share_botocore_data() -> None:
    """PynamoDB opens a botocore session per model class (and thread), and each new session parses
    botocore's JSON data files again: ~150 ms per model, seconds for the ~45 models on a cold Lambda
    or a starting `make serve`. The sessions it opens share one loader instead, whose cache holds
    read-only data, so the files are parsed once per process."""
    pynamodb_connection.get_session = _shared_session  # type: ignore[attr-defined]


def batch_get_raw(item_keys: list[tuple[str, str]], attributes: list[str] | None = None) -> list[dict[str, Any]]:
    """Raw items for (pk, sk) pairs of any model, in BatchGetItem calls of 100 keys (only
    `attributes` of each, when given).

    PynamoDB's own batch_get reads one model only; this lets one call fetch a link row and the
    blob row it points at. Reads are strongly consistent: the GC protocol decides on what these
    read (a blob state, a project's count), and a stale read could let a push rely on a blob a
    sweep has claimed. Unprocessed keys are retried (throttling) a bounded number of times.
    """
    client: Any = _Base._get_connection().connection.client
    table = _Base.Meta.table_name
    items: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(item_keys))
    for start in range(0, len(unique), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + 100]],
                "ConsistentRead": True,
                **_projection(attributes),
            }
        }
        for _attempt in range(8):
            result = client.batch_get_item(RequestItems=request)
            items.extend(result.get("Responses", {}).get(table, []))
            request = result.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("BatchGetItem left keys unprocessed after retries")
    return items


def _projection(attributes: list[str] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}


def delete_where(row: Model, condition: Any) -> bool:
    """Delete `row` if `condition` holds; False (not an error) when it does not."""
    try:
        row.delete(condition=condition)
    except DeleteError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def create_with_id(row: _Base, kind: str, name: str, conflict: str) -> None:
    """Insert a named entity and its `<KIND>ID#<id>` row in one transaction; Conflict if the name is taken.

    `row` must carry its new integer id already (from `next_id`)."""
    entity_id = int(getattr(row, f"{kind.lower()}_id"))
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.save(row, condition=type(row).pk.does_not_exist())
            tx.save(IdRow(keys.id_pk(kind, entity_id), keys.ENTITY_SK, name=name))
    except TransactWriteError as exc:
        raise Conflict(conflict) from exc


def name_by_id(kind: str, entity_id: int) -> str | None:
    try:
        return str(IdRow.get(keys.id_pk(kind, entity_id), keys.ENTITY_SK).name)
    except IdRow.DoesNotExist:
        return None


def connection() -> Any:
    """The models' cached low-level connection, for transactions (no new botocore client each time)."""
    return _Base._get_connection().connection


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """Why DynamoDB cancelled a transaction, per item in the order it was sent (None: that item was fine)."""
    return [getattr(reason, "code", None) for reason in (exc.cancellation_reasons or [])]


def condition_failed(exc: TransactWriteError) -> bool:
    """Whether DynamoDB cancelled the transaction because a condition of one of its items failed."""
    return "ConditionalCheckFailed" in cancellation_codes(exc)


def write_transaction(build: Callable[[TransactWrite], None], *, busy: str, attempts: int = 3) -> None:
    """One TransactWriteItems of the writes `build` adds, written again (built anew) when DynamoDB
    cancelled it only because another transaction held one of its items at that moment
    (`TransactionConflict`: two pushes charging one project's row, two repositories closing one new
    blob); after `attempts` such cancellations, TooManyRequests (429 with Retry-After: contention,
    which the client's retry resolves). Any other cancellation, such as a failed condition, is the
    caller's to read (`cancellation_codes`). moto runs one transaction at a time, so only AWS
    answers with a conflict."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with TransactWrite(connection=connection()) as tx:
                build(tx)
            return
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if "TransactionConflict" not in codes or "ConditionalCheckFailed" in codes:
                raise
            if attempt >= attempts:
                raise TooManyRequests(busy, retry_after=1) from exc


def next_id(kind: str, count: int = 1) -> int:
    """The next integer id of `kind` (users, projects, members, robots); one atomic UpdateItem.
    With `count`, reserves that many consecutive ids and returns the last of them."""
    row = CounterRow(keys.counter_pk(kind), keys.COUNTER_SK)
    row.update(actions=[CounterRow.value.add(count)])
    return int(row.value)


def ping() -> None:
    """One GetItem on a key that never exists: proves the table answers."""
    _Base._get_connection().get_item("HEALTH", "HEALTH")
