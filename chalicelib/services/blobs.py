"""Blob reads and deletes; bytes are served by S3 through presigned redirects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from chalicelib.core.digest import Digest
from chalicelib.errors import BlobUnknown, PayloadTooLarge

if TYPE_CHECKING:
    from chalicelib.stores.blob_bytes import BlobBytes
    from chalicelib.stores.blobs import BlobMetaStore


class BlobService:
    def __init__(self, blobs: BlobMetaStore, blob_bytes: BlobBytes, presign_ttl_seconds: int) -> None:
        self._blobs = blobs
        self._bytes = blob_bytes
        self._ttl = presign_ttl_seconds

    def stat(self, repository: str, digest_text: str) -> tuple[str, int]:
        """(digest, size) of a blob the repository can see, from DynamoDB alone."""
        digest = str(Digest.parse(digest_text))
        size = self._blobs.stat(repository, digest)
        if size is None:
            raise BlobUnknown(detail={"digest": digest})
        return digest, size

    def read(self, repository: str, digest_text: str, max_bytes: int) -> bytes:
        """The bytes of a blob the repository can see, refused (before reading) above `max_bytes`.

        This is the `BlobReader` the artifact processors take (bind the repository)."""
        digest, size = self.stat(repository, digest_text)
        if size > max_bytes:
            raise PayloadTooLarge(f"blob is {size} bytes, over the {max_bytes} byte limit", {"digest": digest})
        return self._bytes.read(digest)

    def chunks(self, repository: str, digest_text: str) -> Iterator[bytes]:
        """The bytes of a blob the repository can see, in pieces (a replication's source)."""
        digest, _ = self.stat(repository, digest_text)
        return self._bytes.chunks(digest)

    def download_url(self, repository: str, digest_text: str) -> tuple[str, int, str]:
        digest, size = self.stat(repository, digest_text)
        return digest, size, self._bytes.download_url(digest, self._ttl)

    def delete(self, repository: str, digest_text: str) -> None:
        digest = str(Digest.parse(digest_text))
        if not self._blobs.unlink(repository, digest):
            raise BlobUnknown(detail={"digest": digest})
