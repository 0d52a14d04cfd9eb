"""PynamoDB models of the registry table; the key layout is documented in `stores/keys.py`.

All models share one table. They are bound to a table name, region and endpoint by `bind()` at
wiring time (not at import), so nothing here touches AWS or reads the environment.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model


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


class BlobRow(_Base):
    """A verified blob in `blobs/<alg>/<hex>`. `state`/`version` are the non-blocking GC protocol."""

    size = NumberAttribute()
    state = UnicodeAttribute(default="none")
    version = NumberAttribute(default=0)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()


class RepositoryRow(_Base):
    project = UnicodeAttribute()
    created_at = NumberAttribute()
    updated_at = NumberAttribute()


class LinkRow(_Base):
    """A repository's right to see a global blob (distribution's linked blob store)."""

    size = NumberAttribute()
    created_at = NumberAttribute()


class ProjectBlobRow(_Base):
    size = NumberAttribute()
    created_at = NumberAttribute()


class ManifestRow(_Base):
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    body = BinaryAttribute(null=True, legacy_encoding=False)
    in_s3 = BooleanAttribute(default=False)
    blobs = ListAttribute(of=UnicodeAttribute, default=list)
    children = ListAttribute(of=UnicodeAttribute, default=list)
    subject = UnicodeAttribute(null=True)
    artifact_type = UnicodeAttribute(null=True)
    config_media_type = UnicodeAttribute(null=True)
    annotations = MapAttribute[str, Any](null=True)
    # Set when the annotations were too big to copy into the row; read them from the body.
    annotations_in_body = BooleanAttribute(default=False)
    created_at = NumberAttribute()


class TagsByDigest(GlobalSecondaryIndex["TagRow"]):
    class Meta:
        index_name = "gsi1"
        projection = KeysOnlyProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class TagRow(_Base):
    digest = UnicodeAttribute()
    updated_at = NumberAttribute()
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


MODELS: tuple[type[Model], ...] = (
    BlobRow,
    RepositoryRow,
    LinkRow,
    ProjectBlobRow,
    ManifestRow,
    TagRow,
    ReferrerRow,
    UploadRow,
)


def bind(table_name: str, region: str, host: str | None) -> None:
    """Point every model at one table; drops cached connections so a rebind takes effect."""
    models: tuple[type[Model], ...] = (_Base, *MODELS)
    for model in models:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model.Meta.host = host
        model._connection = None


def batch_get_raw(item_keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Raw items for (pk, sk) pairs of any model, in BatchGetItem calls of 100 keys.

    PynamoDB's own batch_get reads one model only; this lets one call fetch a link row and the
    blob row it points at. Unprocessed keys are retried (throttling) a bounded number of times.
    """
    client: Any = _Base._get_connection().connection.client
    table = _Base.Meta.table_name
    items: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(item_keys))
    for start in range(0, len(unique), 100):
        request: dict[str, Any] = {
            table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + 100]]}
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


def ping() -> None:
    """One GetItem on a key that never exists: proves the table answers."""
    _Base._get_connection().get_item("HEALTH", "HEALTH")
