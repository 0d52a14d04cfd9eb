"""moto's S3 with the local runner's patches: a PUT answers with its object's ETag even when a
DELETE of the same key on another thread has already disposed of the object it stored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.s3 import models as s3_models

BUCKET = "patched"


@pytest.fixture
def s3(patched_moto: None) -> Iterator[Any]:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client


def test_a_put_whose_object_is_deleted_before_it_answers_still_answers_its_etag(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"layer bytes" * 1000
    deleted: list[str] = []
    send_event = s3_models.notifications.send_event

    def delete_meanwhile(account_id: str, event_name: Any, bucket: Any, key: Any = None) -> None:
        """Runs after moto stored the new object and before it answers: where a concurrent DELETE
        (a GC sweep) can dispose of it."""
        if key is not None and key.name == "blobs/x" and not deleted:
            deleted.append(key.name)
            backend = s3_models.s3_backends[account_id]["aws"]
            backend.delete_object(BUCKET, key.name)
            assert key.disposed
        send_event(account_id, event_name, bucket, key)

    monkeypatch.setattr(s3_models.notifications, "send_event", delete_meanwhile)
    answer = s3.put_object(Bucket=BUCKET, Key="blobs/x", Body=body)
    assert deleted == ["blobs/x"]
    assert answer["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0  # the DELETE came after the PUT


def test_etags_are_those_s3_gives(s3: Any) -> None:
    body = b"x" * 5000
    s3.put_object(Bucket=BUCKET, Key="plain", Body=body)
    assert s3.head_object(Bucket=BUCKET, Key="plain")["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="parts")["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key="parts", UploadId=upload, PartNumber=1, Body=body)["ETag"]
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="parts", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]}
    )
    combined = hashlib.md5(hashlib.md5(body).digest()).hexdigest()
    assert s3.head_object(Bucket=BUCKET, Key="parts")["ETag"] == f'"{combined}-1"'
