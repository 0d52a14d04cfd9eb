"""The bytes of verified blobs, addressed by digest: where they lie (`blobs/<alg>/<hex>`, keys.py) is
this store's business, so services that read a blob or hand out its download URL name only its
digest. Either object store (S3 on AWS, files locally) carries them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from chalicelib.stores import keys

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore


class BlobBytes:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def read(self, digest: str) -> bytes:
        return self._objects.get(keys.blob_object_key(digest))

    def chunks(self, digest: str) -> Iterator[bytes]:
        """The bytes in pieces, for a copy that must not hold a large blob in memory."""
        return self._objects.iter_bytes(keys.blob_object_key(digest))

    def read_head(self, digest: str, max_bytes: int) -> bytes:
        """At most the first `max_bytes` bytes."""
        return self._objects.get_head(keys.blob_object_key(digest), max_bytes)

    def download_url(self, digest: str, ttl_seconds: int) -> str:
        """A presigned GET of the bytes, valid for `ttl_seconds`."""
        return self._objects.presigned_get(keys.blob_object_key(digest), ttl_seconds)
