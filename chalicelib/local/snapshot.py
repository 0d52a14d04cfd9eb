"""Persistence of the embedded runner's state under `REGISTRY_DATA_DIR`, through public AWS APIs only.

moto keeps everything in memory. On a snapshot, DynamoDB items are dumped to JSON lines and S3
objects are written one file each (incrementally: an unchanged object is not rewritten); on start
they are loaded back with BatchWriteItem and PutObject. Using the public API instead of pickling
moto's internals keeps the format stable across moto versions.

Order matters: the table is dumped before the bucket, and the registry writes S3 objects before the
rows that reference them, so a snapshot taken while requests run never holds a row whose object is
missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from functools import partial
from pathlib import Path
from typing import Any

from chalicelib.observability import logger


class Snapshotter:
    def __init__(self, data_dir: Path, dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
        self._dir = data_dir
        self._dynamodb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._lock = threading.Lock()
        self._dirty = threading.Event()

    @property
    def _items_file(self) -> Path:
        return self._dir / "dynamodb" / f"{self._table}.jsonl"

    @property
    def _objects_dir(self) -> Path:
        return self._dir / "s3" / self._bucket

    def mark_dirty(self) -> None:
        self._dirty.set()

    def restore(self) -> tuple[int, int]:
        """Load a previous snapshot; returns (items, objects) restored."""
        items = self._restore_items()
        objects = self._restore_objects()
        return items, objects

    def save_if_dirty(self) -> bool:
        if not self._dirty.is_set():
            return False
        self.save()
        return True

    def save(self) -> None:
        with self._lock:
            self._dirty.clear()
            self._save_items()
            self._save_objects()

    # DynamoDB.

    def _save_items(self) -> None:
        path = self._items_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._table):
                for item in page["Items"]:
                    out.write(json.dumps(_encode(item), separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)

    def _restore_items(self) -> int:
        if not self._items_file.exists():
            return 0
        batch: list[dict[str, Any]] = []
        count = 0
        with self._items_file.open(encoding="utf-8") as source:
            for line in source:
                batch.append({"PutRequest": {"Item": _decode(json.loads(line))}})
                if len(batch) == 25:
                    count += self._write_batch(batch)
                    batch = []
        return count + (self._write_batch(batch) if batch else 0)

    def _write_batch(self, batch: list[dict[str, Any]]) -> int:
        request = {self._table: batch}
        while request:
            request = self._dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        return len(batch)

    # S3.

    def _index_path(self) -> Path:
        return self._objects_dir / "index.json"

    def _load_index(self) -> dict[str, dict[str, Any]]:
        try:
            index: dict[str, dict[str, Any]] = json.loads(self._index_path().read_text())
        except (OSError, ValueError):
            return {}
        return index

    def _save_objects(self) -> None:
        directory = self._objects_dir
        directory.mkdir(parents=True, exist_ok=True)
        old = self._load_index()
        new: dict[str, dict[str, Any]] = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket):
            for obj in page.get("Contents", []):
                key, etag = obj["Key"], obj["ETag"]
                name = hashlib.sha256(key.encode()).hexdigest()
                entry = {"file": name, "etag": etag, "size": obj["Size"]}
                if old.get(key) != entry or not (directory / name).exists():
                    body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
                    tmp = directory / f"{name}.tmp"
                    with tmp.open("wb") as out:
                        for block in iter(partial(body.read, 8 * 1024 * 1024), b""):
                            out.write(block)
                    tmp.replace(directory / name)
                new[key] = entry
        index_tmp = directory / "index.json.tmp"
        index_tmp.write_text(json.dumps(new))
        index_tmp.replace(self._index_path())
        kept = {e["file"] for e in new.values()} | {"index.json"}
        for stale in directory.iterdir():
            if stale.name not in kept:
                stale.unlink(missing_ok=True)

    def _restore_objects(self) -> int:
        index = self._load_index()
        for key, entry in index.items():
            with (self._objects_dir / entry["file"]).open("rb") as body:
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=body)
        return len(index)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def log_restored(items: int, objects: int) -> None:
    logger.info("state restored", extra={"items": items, "objects": objects})
