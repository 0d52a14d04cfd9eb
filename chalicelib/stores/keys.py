"""The storage layout, written down once: every DynamoDB key and S3 key the registry uses.

DynamoDB: one table (`REGISTRY_TABLE_NAME`), string keys `pk` (partition) and `sk` (sort), one
KEYS_ONLY index `gsi1` (`gsi1pk`, `gsi1sk`), TTL attribute `expires_at`.

| item            | pk                  | sk                              | gsi1pk, gsi1sk                       |
|-----------------|---------------------|---------------------------------|--------------------------------------|
| blob (global)   | `BLOB#<digest>`     | `BLOB`                          |                                      |
| repository      | `REPOS`             | `<name>`                        |                                      |
| repo blob link  | `REPO#<name>`       | `BLOB#<digest>`                 |                                      |
| manifest        | `REPO#<name>`       | `MANIFEST#<digest>`             |                                      |
| tag             | `REPO#<name>`       | `TAG#<tag>`                     | `REPO#<name>#M#<digest>`, `TAG#<tag>` |
| referrer edge   | `REPO#<name>`       | `REFERRER#<subject>#<referrer>` |                                      |
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
| job execution   | `JOB#<id>`          | `JOB`                           | `JOBS#<vendor type>`, `<id, 12 digits>` |
| job log line    | `JOB#<id>`          | `LOG#<epoch ms>#<n>`            |                                      |
| job schedule    | `SCHEDULE#<vendor>` | `SCHEDULE`                      |                                      |
| job lock        | `JOBLOCK#<vendor>`  | `LOCK`                          |                                      |
| GC candidate    | `JOB#<id>#SHARD#<n>`| `<digest>`, `~COUNTS` (totals)  | (TTL attribute `expires_at`)         |

Identity rows are keyed by name because authentication and authorisation look them up by name
(one GetItem for a login, one BatchGetItem for a project and the caller's membership); Harbor's
integer ids come from an atomic counter and resolve through the id row. Lists (users, projects,
robots) are Queries on one `gsi1` partition each. A project's storage usage lives on its row and
moves only together with a project-blob row, in one transaction, so it equals the sum of the
distinct blobs the project holds.

Why this shape: every request-path read is a GetItem, a BatchGetItem or a Query on one partition
(no Scan): blob HEAD reads the link and the blob row in one BatchGetItem; tags list and referrers
are Queries on `REPO#<name>` with a sort-key prefix (lexical order and `last=` paging come from the
sort key); the catalog is a Query on `REPOS`; the tags pointing at a digest come from `gsi1`.
A blob is global (content-addressed) and seen by a repository only through its link row, so a
cross-repository mount writes one row and copies no bytes. Project-blob rows count a blob once per
project (Harbor's quota and GC unit).

Background jobs (`services/jobs.py`): every job kind (GC, and later retention, webhooks...) is one
execution row; the history of a kind is a Query on its `gsi1` partition, newest first (the id is
zero-padded so the sort key orders numerically). A job's log is its own rows under the execution's
partition, read back with one Query. The lock row admits one running job per kind (Harbor runs one
GC at a time); it names the holder, so a holder that ended without releasing it is detected.
GC candidates are written by the mark phase under one partition per sweep shard, so each parallel
sweep worker Queries only its own shard and deletes each row in the same transaction that counts
the blob as freed: a sweep that stops midway leaves exactly the uncounted work behind.

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

An object under `blobs/` always holds bytes that hash to its key (S3 checks the SHA-256 on write), but
it is part of the registry only once its blob row exists. The first chunk of every upload is written
straight to the address of its own bytes, so a blob pushed in one request (the common case) needs no
copy when the upload closes; when more chunks follow, that object is left for garbage collection.

`uploads/` is expired by a bucket lifecycle rule (and abandoned multipart uploads aborted), so an
upload that is never finished costs nothing after a day or two even if its DynamoDB row's TTL has
not fired yet.
"""

from __future__ import annotations

REPOS_PK = "REPOS"
BLOB_SK = "BLOB"
UPLOAD_SK = "UPLOAD"
ENTITY_SK = "ENTITY"
MEMBER_PREFIX = "MEMBER#"
USERS_LIST = "USERS"
PROJECTS_LIST = "PROJECTS"
ROBOTS_LIST = "ROBOTS"
CONFIG_PK = "CONFIG"


def user_pk(username: str) -> str:
    return f"USER#{username}"


def robot_pk(name: str) -> str:
    return f"ROBOT#{name}"


def id_pk(kind: str, entity_id: int) -> str:
    return f"{kind}ID#{entity_id}"


def member_sk(user_id: int) -> str:
    return f"{MEMBER_PREFIX}{user_id}"


def blob_ref_prefix(digest: str) -> str:
    return f"REF#{digest}#"


def blob_ref_sk(digest: str, repository: str, manifest: str) -> str:
    return f"{blob_ref_prefix(digest)}{repository}@{manifest}"


def blob_pk(digest: str) -> str:
    return f"BLOB#{digest}"


def repo_pk(name: str) -> str:
    return f"REPO#{name}"


def project_pk(project: str) -> str:
    return f"PROJECT#{project}"


def upload_pk(upload_id: str) -> str:
    return f"UPLOAD#{upload_id}"


def link_sk(digest: str) -> str:
    return f"BLOB#{digest}"


def manifest_sk(digest: str) -> str:
    return f"MANIFEST#{digest}"


TAG_PREFIX = "TAG#"


def tag_sk(tag: str) -> str:
    return f"{TAG_PREFIX}{tag}"


def tags_by_digest_pk(name: str, digest: str) -> str:
    return f"REPO#{name}#M#{digest}"


def referrer_prefix(subject: str) -> str:
    return f"REFERRER#{subject}#"


def referrer_sk(subject: str, referrer: str) -> str:
    return f"{referrer_prefix(subject)}{referrer}"


BLOBS_PREFIX = "blobs/"


def blob_object_key(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def manifest_object_key(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"manifests/{alg}/{hexpart}"


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


UPLOADS_PREFIX = "uploads/"
MANIFESTS_PREFIX = "manifests/"
JOB_SK = "JOB"
LOG_PREFIX = "LOG#"
SCHEDULE_SK = "SCHEDULE"
LOCK_SK = "LOCK"


def job_pk(job_id: int) -> str:
    return f"JOB#{job_id}"


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
    return f"JOB#{job_id}#SHARD#{shard}"
