"""Persistence of the embedded runner's state under `REGISTRY_DATA_DIR`.

Blob and manifest bytes are files already (`stores/files.py`, under `objects/`): nothing to copy.
DynamoDB lives in moto's memory; on a snapshot its items are dumped to JSON lines through the
public API (stable across moto versions) and loaded back with BatchWriteItem on start.

Order matters for a power cut: the registry writes an object before the row that references it,
and a snapshot dumps the rows first, then flushes everything to disk (`os.sync`, which covers the
object files written before those rows), then renames the dump into place. So a saved row never
points at an object that is not on disk.

A data directory from before the file store kept S3 objects under `s3/<bucket>/` with an
`index.json`; they are moved into the object directory once, on start.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from chalicelib.stores.files import FileObjectStore


class Snapshotter:
    def __init__(self, data_dir: Path, dynamodb: Any, table: str, objects: FileObjectStore, bucket: str) -> None:
        self._dir = data_dir
        self._dynamodb = dynamodb
        self._table = table
        self._objects = objects
        self._bucket = bucket
        self._lock = threading.Lock()
        self._dirty = threading.Event()

    @property
    def _items_file(self) -> Path:
        return self._dir / "dynamodb" / f"{self._table}.jsonl"

    @property
    def _legacy_objects_dir(self) -> Path:
        return self._dir / "s3" / self._bucket

    def mark_dirty(self) -> None:
        self._dirty.set()

    def restore(self) -> tuple[int, int]:
        """Load a previous snapshot; returns (items restored, objects in the object store)."""
        items = self._restore_items()
        self._migrate_legacy_objects()
        return items, self._count_objects()

    def save_if_dirty(self) -> bool:
        if not self._dirty.is_set():
            return False
        self.save()
        return True

    def save(self) -> None:
        with self._lock:
            self._dirty.clear()
            self._save_items()

    # DynamoDB.

    def _save_items(self) -> None:
        path = self._items_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._table):
                for item in page["Items"]:
                    out.write(json.dumps(_encode(item), separators=(",", ":")) + "\n")
        os.sync()  # this dump and every object its rows reference (see the module docstring)
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

    # Objects.

    def _count_objects(self) -> int:
        root, count = self._objects.root, 0
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # the store's own temporary files
            count += len(files) if top != str(root) else 0
        return count

    def _migrate_legacy_objects(self) -> None:
        legacy = self._legacy_objects_dir
        try:
            index: dict[str, dict[str, Any]] = json.loads((legacy / "index.json").read_text())
        except (OSError, ValueError):
            return
        for key, entry in index.items():
            source = legacy / entry["file"]
            if source.exists() and not self._objects.exists(key):
                target = self._objects.path(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                source.replace(target)
        shutil.rmtree(legacy)
        with contextlib.suppress(OSError):
            legacy.parent.rmdir()  # `s3/`, when no other bucket's snapshot is left in it


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
