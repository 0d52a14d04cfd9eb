"""The storage layout, written down once: every DynamoDB key and S3 key the registry uses.

DynamoDB: one table (`REGISTRY_TABLE_NAME`), string keys `pk` (partition) and `sk` (sort), one
KEYS_ONLY index `gsi1` (`gsi1pk`, `gsi1sk`), TTL attribute `expires_at`.

| item            | pk                  | sk                              | gsi1pk, gsi1sk                       |
|-----------------|---------------------|---------------------------------|--------------------------------------|
| blob (global)   | `BLOB#<digest>`     | `BLOB`                          |                                      |
| repository      | `REPOS`             | `<name>`                        |                                      |
| repo blob link  | `REPO#<name>`       | `BLOB#<digest>`                 |                                      |
| manifest        | `REPO#<name>`       | `MANIFEST#<digest>`             | `ART#<name>` / `ARTX#<name>`, `<t>#<d>` |
| tag (+ pull copy) | `REPO#<name>`     | `TAG#<tag>`                     | `REPO#<name>#M#<digest>`, `TAG#<tag>` |
| referrer edge   | `REPO#<name>`       | `REFERRER#<subject>#<referrer>` |                                      |
| index edge      | `REPO#<name>`       | `PARENT#<child>#<index>`        |                                      |
| project blob    | `PROJECT#<project>` | `BLOB#<digest>`                 |                                      |
| upload session  | `UPLOAD#<id>`       | `UPLOAD`                        | (TTL attribute `expires_at`)         |
| user            | `USER#<username>`   | `ENTITY`                        | `USERS`, `<username>`                |
| project         | `PROJECT#<name>`    | `ENTITY`                        | `PROJECTS`, `<name>`                 |
| project member  | `PROJECT#<name>`    | `MEMBER#<user id>`              |                                      |
| blob reference  | `PROJECT#<name>`    | `REF#<blob>#<repo>@<manifest>`  |                                      |
| robot account   | `ROBOT#<name>`      | `ENTITY`                        | `ROBOTS`, `<name>`                   |
| id -> name      | `<KIND>ID#<id>`     | `ENTITY`                        |                                      |
| id sequence     | `COUNTER#<kind>`    | `COUNTER`                       |                                      |
| configuration   | `CONFIG`            | `CONFIG`                        |                                      |
| system CVE allowlist | `CONFIG`       | `CVEALLOWLIST`                  |                                      |
| immutable rules | `PROJECT#<project>` | `IMMUTABLE`                     |                                      |
| audit (project) | `AUDIT#<project>`   | `<op ms, 13 digits>#<id, 12>`   | (TTL attribute `expires_at`)         |
| audit (all)     | `AUDIT`             | `<op ms, 13 digits>#<id, 12>`   | (TTL attribute `expires_at`)         |
| label           | `LABEL#<id>`        | `ENTITY`                        |                                      |
| label name      | `LABELS#<scope>`    | `NAME#<name>`                   |                                      |
| label on artifact | `REPO#<name>`     | `LABEL#<digest>#<label id>`     |                                      |
| artifact of label | `LABEL#<id>`      | `REF#<repo>@<digest>`           |                                      |
| labels of artifact | `REPO#<name>`    | `ALABELS#<digest>`              | (number set `label_ids`)             |
| job execution   | `JOB#<id>`          | `JOB`                           | `JOBS#<vendor type>`, `<id, 12 digits>` |
| job log line    | `JOB#<id>`          | `LOG#<epoch ms>#<n>`            |                                      |
| job task        | `JOB#<execution>`   | `TASK#<task id, 12 digits>`     | (`status`, `subject`, `counts`, `log`) |
| job schedule    | `SCHEDULE#<vendor>` | `SCHEDULE`                      |                                      |
| policy schedule | `SCHEDULE#<vendor>` | `SCHEDULE#<policy id, 12 digits>` | (`cron`, `last_fired`)              |
| job lock        | `JOBLOCK#<vendor>`  | `LOCK`                          |                                      |
| retention lock  | `JOBLOCK#RETENTION#<policy id>` | `LOCK`              |                                      |
| GC candidate    | `JOB#<id>#SHARD#<n>`| `<digest>`, `~COUNTS` (totals)  | (TTL attribute `expires_at`)         |
| webhook policies | `PROJECT#<project>` | `WEBHOOKS`                     |                                      |
| webhook last trigger | `PROJECT#<project>` | `WEBHOOKLAST#<policy id>#<event type>` |                      |
| webhook execution | `JOB#<id>`         | `JOB`                           | `JOBS#WEBHOOK#<policy id>`, `<id, 12>` |
| webhook task    | `JOB#<id>`          | `JOB`                           | `JOBS#WEBHOOK_TASK#<exec id>`, `<id>` |
| scanner registrations | `SCANNERS`    | `REGISTRATIONS`                 |                                      |
| project's scanner | `SCANNERS`        | `PROJECT#<project id>`          |                                      |
| local secret    | `SECRET#<id>`       | `SECRET`                        |                                      |
| remote registry | `REGISTRY#<id>`     | `ENTITY`                        |                                      |
| registry name   | `REGISTRIES`        | `NAME#<name>`                   |                                      |
| hub totals      | `SECHUB#<registration>` | `TOTALS`                    |                                      |
| hub contribution | `SECHUB#<registration>` | `ART#<repository>@<digest>` |                                      |
| hub ranking     | `SECHUBTOP#<registration>` | `<danger key>#<repository>@<digest>` |                          |
| hub vulnerability | `SECHUBVUL#<registration>` | `<score key>#<severity key>#<hash>` |                         |
| hub artifact count | `SECHUB`         | `ARTIFACTS`                     |                                      |
| hub counted mark | `SECHUBCOUNTED#<repository>` | `<digest>`            |                                      |

A blob row carries `icon: true` once an artifact was pushed with that blob as its validated icon
(Harbor's `io.goharbor.artifact.v1alpha1.icon` layer): the icon endpoint serves only such blobs,
with one GetItem, and the flag goes when garbage collection removes the row.

Identity rows are keyed by name because authentication and authorisation look them up by name
(one GetItem for a login, one BatchGetItem for a project and the caller's membership); Harbor's
integer ids come from an atomic counter and resolve through the id row. Lists (users, projects,
robots) are Queries on one `gsi1` partition each. A project's storage usage lives on its row and
moves only together with a project-blob row, in one transaction, so it equals the sum of the
distinct blobs the project holds. The row's `quota_warned` flag records that QUOTA_WARNING was sent
for the current crossing of the warning share (set and cleared by conditional updates that also
check usage, services/quotas.py); its `metadata.retention_id` names the project's retention policy.

The catalogue (management API): a repository row also carries Harbor's fields (integer id,
assigned on first use through `REPOSITORYID#<id>`; description; pull count and time). The
`REPOS` partition is sorted by name and a name starts with its project, so a project's
repositories are one Query with `begins_with("<project>/")`; an artifact count is a `Select=COUNT`
Query on `REPO#<name>` with the `MANIFEST#` prefix (reads the manifest rows, returns no data; see
services/repositories.py for its cost). A label's `<scope>` is `g` (global) or `p#<project id>`;
the name row makes names unique per scope (one conditional put in the create transaction) and
listing a scope is one Query. An attachment is written twice in one transaction, under the
repository (so a page of artifacts gets its labels with one Query) and under the label (so deleting
a label finds its attachments with one Query, never a Scan). The same transaction adds the label's
id to the artifact's `ALABELS#<digest>` set (a detach removes it), so an artifact list page reads
the labels of its artifacts with one BatchGetItem, whatever the repository holds; the attachment
rows stay the source of truth (the `q=labels` filter, label deletes). A deleted label's id may stay
in such sets: ids are never reused and readers keep only the labels that still exist.

Why this shape: every request-path read is a GetItem, a BatchGetItem or a Query on one partition
(no Scan): blob HEAD reads the link and the blob row in one BatchGetItem; tags list and referrers
are Queries on `REPO#<name>` with a sort-key prefix (lexical order and `last=` paging come from the
sort key); the catalog is a Query on `REPOS`; the tags pointing at a digest come from `gsi1`.
A blob is global (content-addressed) and seen by a repository only through its link row, so a
cross-repository mount writes one row and copies no bytes. Project-blob rows count a blob once per
project (Harbor's quota and GC unit).

A project's immutable-tag rules are one item (at most 15 small rules) beside the project row, so a
push asks "is this tag protected?" with one GetItem (cached in-process, see services/immutability.py),
the rule limit and duplicate check hold under concurrent writers through one conditional put on its
`version`, and deleting the project (which clears its whole partition) takes them along. Audit
entries are written twice, to the project's partition and to the global one, with a sort key that
starts with the time: each list is a newest-first Query on one partition, an `op_time` range is a
sort-key condition, and entries expire through the TTL attribute. The global partition takes every
entry, so it bounds the sustained audit write rate (~1,000 entries/s per DynamoDB partition);
shard it (`AUDIT#<n>`) if a deployment ever needs more. Audit partitions are not under `PROJECT#`,
so a deleted project's history stays until it expires.

A manifest's `gsi1sk` is its push time (12 digits, seconds) and digest.

A pull by tag is one GetItem: the tag row carries a copy of what the pull answers with (media
type, size, and the inline body or `in_s3`, whose bytes then are `manifests/<alg>/<hex>`), written by
the same conditional write that creates or moves the tag (the push transaction, or the API's tag
create, which reads the manifest row first). Digest and body are one item, so a pull racing a tag
move gets the old pair or the new one, never a mix; a pull by digest reads the manifest row. For a
delete to find every tag that names a manifest at once (the `gsi1` tags index is eventually
consistent), each tag write also adds the tag's name to the manifest row's string set `tags` (a
superset: a tag moved away stays named) and bumps its `ref_version`; the delete reads the row and
those tags strongly consistently and removes the row and every tag still pointing at it in one
transaction conditioned on that `ref_version`, so no tag is left serving the copy of a deleted
manifest (GC's delete of an untagged artifact uses the same read to refuse a tagged one). Tag
readers that list tags (the artifact views) read only the tag's own attributes.

Artifacts (Harbor's artifact rows) are the manifest rows themselves: the push transaction writes
the processor's type, sizes and push time into the row it writes anyway, so recording an artifact
costs no extra call. The artifact list is a Query on `gsi1` partition `ART#<name>` in push-time
order (a page is one Query with `Limit` plus one BatchGetItem of the rows); children of an index and
accessories that Harbor hides from the list (signatures, SBOMs) sit in `ARTX#<name>` instead, so the
index is sparse for the list and paging needs no filter. An index push writes an index edge per
child and bumps the child's `ref_version` (as a tag write does); deleting a manifest refuses while a
live index has an edge to it, and conditions its delete on `ref_version` so an index pushed (or a
tag written) meanwhile is not missed.
Accessories need no row of their own: OCI 1.1 ones are the referrer edges of the subject, cosign's
legacy ones the tag `sha256-<hex>.sig`.

Background jobs (`services/jobs.py`, the executions/tasks service): every job kind (GC, retention,
webhook delivery) is one execution row; the history of a kind is a Query on its `gsi1` partition,
newest first (the id is zero-padded so the sort key orders numerically). A job's log is its own rows
under the execution's partition, read back with one Query. The lock row admits one running job per
kind (Harbor runs one GC at a time); it names the holder, so a holder that ended without releasing
it is detected. A retention execution takes its policy's lock instead (`JOBLOCK#RETENTION#<policy
id>`, named on the job row as `lock`), so one run per policy is active while other projects'
policies run beside it. GC candidates are written by the mark phase under one partition per sweep
shard, so each parallel sweep worker Queries only its own shard and deletes each row in the same
transaction that counts the blob as freed: a sweep that stops midway leaves exactly the uncounted
work behind. A mark that stops at its time budget and is called again reads a marked blob's
candidate row back (BatchGetItem on `JOB#<id>#SHARD#<n>` / `<digest>`): its `version` equal to the
blob's means this run marked it. An execution's tasks (`JOB#<execution>` / `TASK#<id>`: a retention
run's repositories, a webhook delivery's targets) are created Pending with consecutive ids (one
`COUNTER#JOB` UpdateItem reserves the block from the executions' sequence, so a task id never names
an execution), so each parallel lane of a state machine's Map walks
every `workers`-th id by arithmetic, with no listing. A task moves `Pending -> Running ->
Success|Error|Stopped` by conditional writes only, in one transaction with its execution's `metrics`
(tasks by status), so a retried or re-driven Task never runs an ended one again and the counts stay
exact; `result` keeps the kind's outcome (a real retention run's deleted `name_tag`s), and
`reported` claims the kind's one side effect per task (the TAG_RETENTION event).

Webhooks (`services/webhooks.py`): a project's policies are one item beside the project row (like
the immutable rules), so an event finds the policies to fire with one GetItem (cached briefly), and
deleting the project takes them along. Their executions and tasks are job execution rows (vendor
types `WEBHOOK` and `WEBHOOK_TASK`) listed under the policy's and the execution's own `gsi1`
partitions, so a policy's executions and an execution's tasks are one Query each; a task's log is
its job log. `lasttrigger` is a Query on the project partition with the `WEBHOOKLAST#` prefix.

A webhook execution delivered durably (its state machine, `services/webhooks.py`) also carries the
execution's ARN and, in its `parameters` under `delivery`, the state machine's input (the event,
task ids, target indices; never a target's auth header), written in the one update that records
the ARN, so that the local runner can start an interrupted delivery again; a task's row counts its
attempts (`counts.attempts`), so the delivery goes on from there. No new keys.

A blob row GC has deleted stays as a tombstone (`state` `deleted`, TTL `expires_at`) for longer than
an upload session lives: an upload that wrote bytes before the sweep deleted them and finishes
after it finds the tombstone and checks the object really exists before the blob becomes visible
again (`stores/blobs.py`).

S3: one bucket (`REGISTRY_BUCKET_NAME`).

| object                         | key                               |
|--------------------------------|-----------------------------------|
| blob bytes                     | `blobs/<alg>/<hex>`               |
| manifest too big to inline     | `manifests/<alg>/<hex>`           |
| upload staging (chunks, parts) | `uploads/<id>/...`                |
| scan data export CSV           | `scan-exports/<execution id>.csv` |
| its parts, while it runs       | `scan-exports/<execution id>/part-<n>.csv` |

An object under `blobs/` always holds bytes that hash to its key (S3 checks the SHA-256 on write), but
it is part of the registry only once its blob row exists. The first chunk of every upload is written
straight to the address of its own bytes, so a blob pushed in one request (the common case) needs no
copy when the upload closes; when more chunks follow, that object is left for garbage collection.

Locally (`make serve`) the same keys are files under `$REGISTRY_DATA_DIR/objects/` (`stores/files.py`),
beside the store's own `.tmp/`, `.multipart/<id>/` (`data`, `index`) and `.url-key` (download URL signing).

`uploads/` is expired by a bucket lifecycle rule (and abandoned multipart uploads aborted), so an
upload that is never finished costs nothing after a day or two even if its DynamoDB row's TTL has
not fired yet.
"""

from __future__ import annotations

# The prefixes a row's key starts with; a store that reads a name back from a key strips them
# (`row.pk.removeprefix(keys.REPO_PREFIX)`), nothing else spells them.
BLOB_PREFIX = "BLOB#"
REPO_PREFIX = "REPO#"
PROJECT_PREFIX = "PROJECT#"
UPLOAD_PREFIX = "UPLOAD#"
MANIFEST_PREFIX = "MANIFEST#"
USER_PREFIX = "USER#"
ROBOT_PREFIX = "ROBOT#"
JOB_PREFIX = "JOB#"
ARTIFACT_LABELS_PREFIX = "ALABELS#"
COUNTER_SK = "COUNTER"

REPOS_PK = "REPOS"
BLOB_SK = "BLOB"
UPLOAD_SK = "UPLOAD"
ENTITY_SK = "ENTITY"
MEMBER_PREFIX = "MEMBER#"
USERS_LIST = "USERS"
PROJECTS_LIST = "PROJECTS"
ROBOTS_LIST = "ROBOTS"
CONFIG_PK = "CONFIG"
IMMUTABLE_SK = "IMMUTABLE"
AUDIT_ALL = "AUDIT"


def user_pk(username: str) -> str:
    return f"{USER_PREFIX}{username}"


def robot_pk(name: str) -> str:
    return f"{ROBOT_PREFIX}{name}"


def counter_pk(kind: str) -> str:
    """The id sequence of one kind (`COUNTER#<kind>` / `COUNTER`)."""
    return f"{COUNTER_SK}#{kind}"


def id_pk(kind: str, entity_id: int) -> str:
    return f"{kind}ID#{entity_id}"


def member_sk(user_id: int) -> str:
    return f"{MEMBER_PREFIX}{user_id}"


def blob_ref_prefix(digest: str) -> str:
    return f"REF#{digest}#"


def blob_ref_sk(digest: str, repository: str, manifest: str) -> str:
    return f"{blob_ref_prefix(digest)}{repository}@{manifest}"


def blob_pk(digest: str) -> str:
    return f"{BLOB_PREFIX}{digest}"


def repo_pk(name: str) -> str:
    return f"{REPO_PREFIX}{name}"


def project_pk(project: str) -> str:
    return f"{PROJECT_PREFIX}{project}"


def upload_pk(upload_id: str) -> str:
    return f"{UPLOAD_PREFIX}{upload_id}"


def link_sk(digest: str) -> str:
    return f"{BLOB_PREFIX}{digest}"


def manifest_sk(digest: str) -> str:
    return f"{MANIFEST_PREFIX}{digest}"


TAG_PREFIX = "TAG#"


def tag_sk(tag: str) -> str:
    return f"{TAG_PREFIX}{tag}"


def tags_by_digest_pk(name: str, digest: str) -> str:
    return f"{REPO_PREFIX}{name}#M#{digest}"


def referrer_prefix(subject: str) -> str:
    return f"REFERRER#{subject}#"


def referrer_sk(subject: str, referrer: str) -> str:
    return f"{referrer_prefix(subject)}{referrer}"


LABEL_PREFIX = "LABEL#"
LABEL_REF_PREFIX = "REF#"
LABEL_NAME_PREFIX = "NAME#"


def label_pk(label_id: int) -> str:
    return f"{LABEL_PREFIX}{label_id}"


def label_scope_pk(scope: str, project_id: int) -> str:
    """`LABELS#g` for global labels, `LABELS#p#<project id>` for a project's."""
    return "LABELS#g" if scope == "g" else f"LABELS#p#{project_id}"


def label_name_sk(name: str) -> str:
    return f"{LABEL_NAME_PREFIX}{name}"


def artifact_label_sk(digest: str, label_id: int) -> str:
    return f"{LABEL_PREFIX}{digest}#{label_id}"


def artifact_labels_sk(digest: str) -> str:
    return f"{ARTIFACT_LABELS_PREFIX}{digest}"


def label_ref_sk(repository: str, digest: str) -> str:
    return f"{LABEL_REF_PREFIX}{repository}@{digest}"


def project_repos_prefix(project: str) -> str:
    """Sort-key prefix of a project's rows in the `REPOS` partition."""
    return f"{project}/"


def parent_prefix(child: str) -> str:
    return f"PARENT#{child}#"


def parent_sk(child: str, parent: str) -> str:
    return f"{parent_prefix(child)}{parent}"


def artifacts_pk(name: str, *, listed: bool = True) -> str:
    return f"ART#{name}" if listed else f"ARTX#{name}"


def artifacts_sk(push_time: int, digest: str) -> str:
    return f"{push_time:012d}#{digest}"


BLOBS_PREFIX = "blobs/"


def blob_object_key(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def manifest_object_key(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"manifests/{alg}/{hexpart}"


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def audit_pk(project: str | None) -> str:
    """The project's audit partition, or the global one (`None`)."""
    return f"{AUDIT_ALL}#{project}" if project is not None else AUDIT_ALL


def audit_sk(op_time_ms: int, log_id: int) -> str:
    return f"{op_time_ms:013d}#{log_id:012d}"


UPLOADS_PREFIX = "uploads/"
MANIFESTS_PREFIX = "manifests/"
JOB_SK = "JOB"
LOG_PREFIX = "LOG#"
SCHEDULE_SK = "SCHEDULE"
LOCK_SK = "LOCK"
TASK_PREFIX = "TASK#"


def job_pk(job_id: int) -> str:
    return f"{JOB_PREFIX}{job_id}"


def job_id_of(pk: str) -> int:
    return int(pk.removeprefix(JOB_PREFIX))


def task_sk(task_id: int) -> str:
    return f"{TASK_PREFIX}{task_id:012d}"


def schedule_sk(policy_id: int) -> str:
    """A kind's own schedule (policy 0), or one policy's."""
    return f"{SCHEDULE_SK}#{policy_id:012d}" if policy_id else SCHEDULE_SK


def jobs_list_pk(vendor_type: str) -> str:
    return f"JOBS#{vendor_type}"


def job_list_sk(job_id: int) -> str:
    return f"{job_id:012d}"


def job_log_sk(epoch_ms: int, n: int) -> str:
    return f"{LOG_PREFIX}{epoch_ms:015d}#{n:06d}"


def schedule_pk(vendor_type: str) -> str:
    return f"SCHEDULE#{vendor_type}"


def job_lock_pk(vendor_type: str) -> str:
    return f"JOBLOCK#{vendor_type}"


def gc_shard_pk(job_id: int, shard: int) -> str:
    return f"{JOB_PREFIX}{job_id}#SHARD#{shard}"


GC_COUNTS_SK = "~COUNTS"  # a shard's totals: sorts after every digest in the shard partition

# The row kinds GC's mark tells apart in the partitions it reads whole (`stores/gc.py`).
BLOB_REF_PREFIX = "REF#"
TAGS_BY_DIGEST_INFIX = "#M#"


WEBHOOKS_SK = "WEBHOOKS"
WEBHOOK_LAST_PREFIX = "WEBHOOKLAST#"


def webhook_last_sk(policy_id: int, event_type: str) -> str:
    return f"{WEBHOOK_LAST_PREFIX}{policy_id}#{event_type}"


# Tag retention (`stores/retention.py`): a policy is `RETENTION#<id>` / `POLICY`; the project's link to
# its one policy is `PROJECT#<name>` / `RETENTION` (conditional create: one policy per project; the id
# is also the project's `retention_id` metadata, which a project delete uses to delete the policy);
# an execution is a job row (vendor type `RETENTION`) with one task per repository. A policy with a
# cron has a policy schedule row (`SCHEDULE#RETENTION` / `SCHEDULE#<policy id>`): the scheduler tick
# Queries that one partition (never on a request path) and claims each due slot conditionally.
RETENTION_POLICY_SK = "POLICY"
RETENTION_LINK_SK = "RETENTION"


def retention_pk(policy_id: int) -> str:
    return f"RETENTION#{policy_id}"


# Scanner registrations (`stores/scanners.py`): every registration in one item, `SCANNERS` /
# `REGISTRATIONS` (a handful at most: a read is one GetItem; one conditional put on its version
# keeps names/URLs unique and one registration the default); a project's chosen registration is
# `SCANNERS` / `PROJECT#<project id>` in the same partition, so resolving the scanner of a project
# is one BatchGetItem of both items. Project ids are never reused, and a project delete removes its
# row. A credential is never on these rows: they hold a reference the secret store resolves; the
# local secret store keeps each secret encrypted as `SECRET#<id>` / `SECRET`.
SCANNERS_PK = "SCANNERS"
SCANNER_REGISTRATIONS_SK = "REGISTRATIONS"
SCANNER_PROJECT_PREFIX = "PROJECT#"
SECRET_PREFIX = "SECRET#"  # noqa: S105 (a key prefix, not a password)
SECRET_SK = "SECRET"  # noqa: S105


def project_scanner_sk(project_id: int) -> str:
    return f"{SCANNER_PROJECT_PREFIX}{project_id}"


# Replication (`stores/replication.py`): every policy sits in one partition, `REPLICATION` /
# `POLICY#<id>` (a handful per registry: listing them, as the event consumer does for each push, is
# one Query), beside its name claim `REPLICATION` / `POLICYNAME#<name>` written in the same transaction
# (names are unique). An execution is a job row (vendor type `REPLICATION`) with one task per
# artifact; a scheduled policy has a policy schedule row (`SCHEDULE#REPLICATION` / `SCHEDULE#<id>`).
REPLICATION_PK = "REPLICATION"
REPLICATION_POLICY_PREFIX = "POLICY#"
REPLICATION_NAME_PREFIX = "POLICYNAME#"


def replication_policy_sk(policy_id: int) -> str:
    return f"{REPLICATION_POLICY_PREFIX}{policy_id:012d}"


def replication_name_sk(name: str) -> str:
    return f"{REPLICATION_NAME_PREFIX}{name}"


# Remote registries (`stores/registries.py`): a registry is `REGISTRY#<id>` / `ENTITY`; its name is
# claimed by `REGISTRIES` / `NAME#<name>` in the same transaction (so names are unique), and that
# one partition, sorted by name, is the whole list (one Query plus one BatchGetItem; a deployment has
# tens of registries, not millions). A credential's secret is not on the row: the row names it
# (`secret_ref`), resolved by the secret store (`stores/secrets.py`). The registry row
# counts the proxy-cache projects using it (`project_refs`, moved in the project's create and delete
# transactions), and its delete is conditioned on 0.
REGISTRY_PREFIX = "REGISTRY#"
REGISTRIES_PK = "REGISTRIES"
REGISTRY_NAME_PREFIX = "NAME#"


def registry_pk(registry_id: int) -> str:
    return f"{REGISTRY_PREFIX}{registry_id}"


def registry_name_sk(name: str) -> str:
    return f"{REGISTRY_NAME_PREFIX}{name}"


def secret_pk(secret_id: str) -> str:
    return f"{SECRET_PREFIX}{secret_id}"


# CVE allowlists and the pull gate (`stores/allowlists.py`, `stores/gate.py`): the system list is one
# item beside the configuration row; a project's own list is on its project row (`cve_allowlist`).
# A manifest pull reads the project row, the system list and the scanner registrations in the same
# BatchGetItem as its tag or manifest row (the manifest row carries the scan summaries).
SYSTEM_ALLOWLIST_SK = "CVEALLOWLIST"


# Scans (`stores/scans.py`). A report's summary lives on the artifact's manifest row (attributes
# `scan_generic`, `scan_native`, `scan_sbom`: one JSON summary per report MIME type, written by
# conditional updates that require the row to exist). The full report is an object, stored once per
# (digest, scanner registration, report MIME type) and so shared by every repository holding the
# digest: `scan-reports/<alg>/<hex>/<registration uuid>/<report kind>.json`. A running scan holds
# the job lock `JOBLOCK#<IMAGE_SCAN|SBOM>#<registration uuid>#<digest>` (`core/scans.py` `scan_lock`).
SCAN_REPORTS_PREFIX = "scan-reports/"
_REPORT_KINDS = {
    "application/vnd.security.vulnerability.report; version=1.1": "vulnerability-1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0": "vulnerability-native-1.0",
    "application/vnd.security.sbom.report+json; version=1.0": "sbom-1.0",
}


def scan_report_key(digest: str, registration: str, mime_type: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{SCAN_REPORTS_PREFIX}{algorithm}/{hexpart}/{registration}/{_REPORT_KINDS[mime_type]}.json"


# Security hub (`stores/securityhub.py`): aggregates kept when a vulnerability summary is stored or
# replaced, so `/security/summary` and `/security/vul` are GetItems and Queries. Per scanner
# registration: the totals row (counts per severity, fixable, scanned artifacts, updated with ADD),
# one contribution row per scanned artifact (what it added, so a re-scan or a delete subtracts it
# exactly), one ranking row per artifact with critical to low findings (its sort key orders the
# most dangerous first), and one row per finding whose sort key orders by CVSS v3 score descending
# (no score last) and then by severity. The registry's artifact count has its own row, moved with
# a mark per (repository, digest), so a re-push does not count twice.
SECHUB_PREFIX = "SECHUB#"
SECHUB_TOP_PREFIX = "SECHUBTOP#"
SECHUB_VUL_PREFIX = "SECHUBVUL#"
SECHUB_COUNTED_PREFIX = "SECHUBCOUNTED#"
SECHUB_PK = "SECHUB"
SECHUB_TOTALS_SK = "TOTALS"
SECHUB_ARTIFACTS_SK = "ARTIFACTS"
SECHUB_CONTRIBUTION_PREFIX = "ART#"


def sechub_pk(registration: str) -> str:
    return f"{SECHUB_PREFIX}{registration}"


def sechub_contribution_sk(repository: str, digest: str) -> str:
    return f"{SECHUB_CONTRIBUTION_PREFIX}{repository}@{digest}"


def sechub_top_pk(registration: str) -> str:
    return f"{SECHUB_TOP_PREFIX}{registration}"


def sechub_top_sk(danger: str, repository: str, digest: str) -> str:
    return f"{danger}#{repository}@{digest}"


def sechub_vul_pk(registration: str) -> str:
    return f"{SECHUB_VUL_PREFIX}{registration}"


def sechub_counted_pk(repository: str) -> str:
    return f"{SECHUB_COUNTED_PREFIX}{repository}"


# Scan data exports (`stores/scanexport.py`): each step of an export execution writes its rows as
# one part, the last step joins them behind the header into the file the download serves.
SCAN_EXPORTS_PREFIX = "scan-exports/"


def scan_export_part_key(execution_id: int, part: int) -> str:
    return f"{SCAN_EXPORTS_PREFIX}{execution_id}/part-{part:06d}.csv"


def scan_export_key(execution_id: int) -> str:
    return f"{SCAN_EXPORTS_PREFIX}{execution_id}.csv"
