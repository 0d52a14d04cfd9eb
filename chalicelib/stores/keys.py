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

Locally (`make serve`) the same keys are files under `$REGISTRY_DATA_DIR/objects/` (`stores/files.py`),
beside the store's own `.tmp/`, `.multipart/<id>/<part>-<tag>` and `.url-key` (download URL signing).

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
