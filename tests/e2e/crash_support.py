"""What the crash and persistence tests share: random images, skopeo pushes and byte-exact pulls, and
reading what a killed or restarted registry left on disk."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

from chalicelib.local.journal import read_frames, segments
from chalicelib.local.persistence import State, read_snapshot

from .support import OCI_MANIFEST, Layout, RegistryServer, assert_same_blobs, canon, check, sha256

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
# Hidden blob states (GC tombstones and sweeps in progress): no bytes are promised for them.
_HIDDEN = {"deleting", "deletefailed", "deleted"}
RESTORED = re.compile(r"restored (\d+) rows and (\d+) objects")


def push(server: RegistryServer, lay: Layout, repo: str, tag: str, *extra: str) -> None:
    check(["skopeo", "copy", "--preserve-digests", *server.skopeo_dest(), *extra,
           f"oci:{lay.path}:latest", "docker://" + server.ref(repo, tag)])  # fmt: skip


def pull_and_compare(server: RegistryServer, src: Layout, repo: str, ref: str, digest: str, out: Path) -> None:
    check(["skopeo", "copy", "--all", "--preserve-digests", *server.skopeo_src(),
           "docker://" + server.ref(repo, ref), f"oci:{out}:x"])  # fmt: skip
    pulled = Layout(out)
    assert pulled.ref("x")["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


def restored(log: str) -> tuple[int, int]:
    m = RESTORED.search(log)
    assert m, f"no 'restored N rows and M objects' in the start-up log:\n{log}"
    return int(m.group(1)), int(m.group(2))


def random_layout(root: Path, size: int) -> str:
    """A one-image OCI layout (ref `latest`) with one layer of `size` fresh random bytes; its digest."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    raw = io.BytesIO()
    content = os.urandom(size)
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    layer = _blob(root, gzip.compress(raw.getvalue(), compresslevel=1, mtime=0), OCI_LAYER_GZ)
    rootfs = {"type": "layers", "diff_ids": [sha256(raw.getvalue())]}
    config = _blob(root, canon({"architecture": "amd64", "os": "linux", "rootfs": rootfs}), OCI_CONFIG)
    manifest = _blob(root, canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                  "layers": [layer]}), OCI_MANIFEST)  # fmt: skip
    ref = {**manifest, "annotations": {"org.opencontainers.image.ref.name": "latest"}}
    (root / "index.json").write_bytes(canon({"schemaVersion": 2, "manifests": [ref]}))
    return str(manifest["digest"])


def _blob(root: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = sha256(data)
    (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def state_on_disk(data_dir: Path) -> State:
    """The table as the data dir holds it (snapshot plus every whole journal record), read only."""
    directory = data_dir / "dynamodb"
    state, through = read_snapshot(directory / "snapshot.bin")
    for number, path in segments(directory):
        if number > through:
            for record in read_frames(path.read_bytes())[0]:
                state.apply(json.loads(record))
    return state


def blob_rows_without_bytes(data_dir: Path, table: str = "registry") -> list[str]:
    """Visible blob rows whose file is missing or shorter or longer than the row says."""
    missing = []
    for image in state_on_disk(data_dir).items.get(table, {}).values():
        pk = image["pk"]["S"]
        if not pk.startswith("BLOB#") or image["sk"]["S"] != "BLOB":
            continue
        if image.get("state", {}).get("S") in _HIDDEN:
            continue
        algorithm, _, hexpart = pk.removeprefix("BLOB#").partition(":")
        path = data_dir / "objects" / "blobs" / algorithm / hexpart
        if not path.is_file() or path.stat().st_size != int(image["size"]["N"]):
            missing.append(pk)
    return missing
