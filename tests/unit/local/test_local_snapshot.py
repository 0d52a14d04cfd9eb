"""The embedded runner's snapshots: a data dir from before the file store keeps its blobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from chalicelib.local.snapshot import Snapshotter
from chalicelib.stores.files import FileObjectStore


def test_objects_of_an_old_s3_snapshot_move_into_the_object_store(tmp_path: Path) -> None:
    legacy = tmp_path / "s3" / "registry-blobs"
    legacy.mkdir(parents=True)
    index = {}
    for key, body in {"blobs/sha256/" + "ab" * 32: b"layer", "manifests/sha256/" + "cd" * 32: b"{}"}.items():
        name = hashlib.sha256(key.encode()).hexdigest()
        (legacy / name).write_bytes(body)
        index[key] = {"file": name, "etag": '"x"', "size": len(body)}
    (legacy / "index.json").write_text(json.dumps(index))
    objects = FileObjectStore(tmp_path / "objects")
    objects.put("blobs/sha256/" + "ef" * 32, b"already a file")

    snapshots = Snapshotter(tmp_path, dynamodb=None, table="registry", objects=objects, bucket="registry-blobs")
    assert snapshots.restore() == (0, 3)  # no DynamoDB dump yet; three objects in the store

    assert objects.get("blobs/sha256/" + "ab" * 32) == b"layer"
    assert objects.get("manifests/sha256/" + "cd" * 32) == b"{}"
    assert not (tmp_path / "s3").exists()
    assert snapshots.restore() == (0, 3)  # once only
