"""Composition root: builds clients, stores and services once, lazily (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chalicelib.config import Settings, get_settings
from chalicelib.services.blobs import BlobService
from chalicelib.services.health import HealthService
from chalicelib.services.manifests import ManifestService
from chalicelib.services.repositories import RepositoryService
from chalicelib.services.uploads import UploadService
from chalicelib.stores import tables
from chalicelib.stores.blobs import BlobMetaStore
from chalicelib.stores.manifests import ManifestStore
from chalicelib.stores.objects import S3ObjectStore
from chalicelib.stores.uploads import UploadStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Services:
    settings: Settings
    uploads: UploadService
    manifests: ManifestService
    blobs: BlobService
    repositories: RepositoryService
    health: HealthService


def s3_client(settings: Settings) -> S3Client:
    # Path-style addressing is what an emulator endpoint (moto) serves; AWS uses virtual hosts.
    addressing = "path" if settings.aws_endpoint_url else "virtual"
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing},  # type: ignore[arg-type]
        max_pool_connections=max(10, settings.server_threads * 2),
        retries={"mode": "standard", "max_attempts": 4},
    )
    return boto3.session.Session().client(
        "s3", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=config
    )


@lru_cache(maxsize=1)
def services() -> Services:
    settings = get_settings()
    tables.bind(settings.table_name, settings.aws_region, settings.aws_endpoint_url)
    objects = S3ObjectStore(s3_client(settings), settings.bucket_name)
    blob_meta = BlobMetaStore()
    manifests = ManifestStore(objects, settings.inline_manifest_max_bytes)
    return Services(
        settings=settings,
        uploads=UploadService(
            UploadStore(settings.upload_ttl_seconds, settings.upload_lease_seconds), objects, blob_meta, settings
        ),
        manifests=ManifestService(manifests, blob_meta, settings.manifest_max_bytes),
        blobs=BlobService(blob_meta, objects, settings.presign_ttl_seconds),
        repositories=RepositoryService(manifests),
        health=HealthService({"dynamodb": tables.ping, "s3": objects.ping}),
    )


def reset() -> None:
    """Forget settings and services (tests change the environment between cases)."""
    get_settings.cache_clear()
    services.cache_clear()
