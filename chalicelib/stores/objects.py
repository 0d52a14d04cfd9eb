"""Object stores: the only code that moves blob bytes. `S3ObjectStore` on AWS (the bucket);
`stores/files.py` for the embedded runner. Both satisfy `ObjectStore`, which is what services see."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.config import S3_MIN_PART_BYTES
from chalicelib.errors import BlobUploadUnknown, DigestInvalid

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# CopyObject handles up to 5 GiB; larger objects are copied part by part, in parallel.
_SINGLE_COPY_MAX = 5 * 1024**3
_COPY_PART_BYTES = 512 * 1024**2
_READ_BLOCK = 8 * 1024**2


class ObjectStore(Protocol):
    """Keys as in `stores/keys.py`.

    `put`'s `sha256_hex` is the caller's digest of exactly `data`, computed in this process from
    those bytes (the upload service has verified it against the client's digest by then). S3
    checks it again on arrival, because the bytes cross a network; the local file store, where
    they do not, writes them without a second pass.

    `min_part_bytes`: the smallest a multipart part other than the last may be (S3 refuses to
    complete an upload with a smaller one before its end), so the upload service knows whether the
    bytes a request leaves after its last full part can be a part of their own or must be staged."""

    min_part_bytes: int

    def put(self, key: str, data: bytes, *, sha256_hex: str | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_head(self, key: str, max_bytes: int) -> bytes:
        """At most the first `max_bytes` of an object: bounded reads for processors."""
        ...

    def iter_bytes(self, key: str) -> Iterator[bytes]: ...
    def ping(self) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, *keys: str) -> None: ...
    def presigned_get(self, key: str, ttl_seconds: int) -> str: ...
    def start_multipart(self, key: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str: ...
    def upload_part_stream(self, key: str, upload_id: str, number: int, blocks: Iterable[bytes]) -> str:
        """`upload_part` of the bytes `blocks` yields, taken as they come; an exception from
        `blocks` ends the call with no part."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...
    def copy(self, source: str, target: str, size: int) -> None: ...

    # Inventory: garbage collection only, never a request path.
    def list_objects(self, prefix: str) -> Iterator[StoredObject]: ...
    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, int]]:
        """(key, upload id, initiated epoch) of unfinished multipart uploads under `prefix`."""
        ...


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: int


class S3ObjectStore:
    """Thin, typed wrapper over one bucket; boto3 errors become registry errors here."""

    min_part_bytes = S3_MIN_PART_BYTES

    def __init__(self, client: S3Client, bucket: str, presign_client: S3Client | None = None) -> None:
        self._s3 = client
        self._presign = presign_client or client
        self.bucket = bucket

    def put(self, key: str, data: bytes, *, sha256_hex: str | None = None) -> None:
        """Write an object; with `sha256_hex`, S3 itself refuses bytes that do not match."""
        extra: dict[str, Any] = {}
        if sha256_hex:
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except ClientError as exc:
            if _code(exc) in {"BadDigest", "InvalidRequest"} and sha256_hex:
                raise DigestInvalid("content does not match digest") from None
            raise

    def get(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_head(self, key: str, max_bytes: int) -> bytes:
        """At most the first `max_bytes` of an object (one ranged GET): bounded reads for processors."""
        return self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{max(max_bytes, 1) - 1}")["Body"].read()

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        yield from iter(lambda: body.read(_READ_BLOCK), b"")

    def ping(self) -> None:
        """Reach the bucket with a read (a missing key is an answer; only errors raise)."""
        self.exists("health/ping")

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound", "403"}:
                # Without s3:ListBucket (least privilege) S3 answers 403 for a missing key.
                return False
            raise
        return True

    def delete(self, *keys: str) -> None:
        for start in range(0, len(keys), 1000):
            batch: list[Any] = [{"Key": k} for k in keys[start : start + 1000]]
            if batch:
                result = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if result.get("Errors"):
                    raise RuntimeError(f"S3 refused to delete {len(result['Errors'])} objects: {result['Errors'][:3]}")

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], int(item["Size"]), int(item["LastModified"].timestamp()))

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, int]]:
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Uploads", []):
                yield item["Key"], item["UploadId"], int(item["Initiated"].timestamp())

    def presigned_get(self, key: str, ttl_seconds: int) -> str:
        return self._presign.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )

    # Multipart: how chunked uploads become one object without holding it in memory.

    def start_multipart(self, key: str) -> str:
        return self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        try:
            # A streamed part arrives as a bytearray; botocore would send it, moto and the stubs
            # want bytes (one copy of a part, next to the network transfer it feeds).
            body = bytes(data) if isinstance(data, bytearray) else data
            result = self._s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise BlobUploadUnknown("upload staging was lost; restart the upload") from None
            raise
        return result["ETag"]

    def upload_part_stream(self, key: str, upload_id: str, number: int, blocks: Iterable[bytes]) -> str:
        """One request per part, sent once its bytes are all there (S3 wants the length first)."""
        return self.upload_part(key, upload_id, number, b"".join(blocks))

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
            )
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise BlobUploadUnknown("upload staging was lost; restart the upload") from None
            raise

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    def copy(self, source: str, target: str, size: int) -> None:
        """Server-side copy; no bytes pass through this process."""
        if size <= _SINGLE_COPY_MAX:
            self._s3.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source})
            return
        upload_id = self.start_multipart(target)
        ranges = [
            (i + 1, start, min(start + _COPY_PART_BYTES, size) - 1)
            for i, start in enumerate(range(0, size, _COPY_PART_BYTES))
        ]

        def copy_part(spec: tuple[int, int, int]) -> tuple[int, str]:
            number, first, last = spec
            result = self._s3.upload_part_copy(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceRange=f"bytes={first}-{last}",
            )
            return number, result["CopyPartResult"]["ETag"]

        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                parts = list(pool.map(copy_part, ranges))
            self.complete_multipart(target, upload_id, parts)
        except Exception:
            self.abort_multipart(target, upload_id)
            raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
