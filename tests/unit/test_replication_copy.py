"""The copy of one artifact (Harbor's transfer) between two in-memory registries: children before
the index, present content skipped, tags kept unless override, referrers with their subject, and
an interrupted copy resumed without copying anything twice."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.registry.client import Manifest
from chalicelib.services.replication_copy import Copier, OutOfTime

INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(media_type: str, doc: dict[str, Any]) -> Manifest:
    data = json.dumps({"schemaVersion": 2, "mediaType": media_type, **doc}).encode()
    return Manifest(media_type, digest(data), data)


def blob_descriptor(data: bytes) -> dict[str, Any]:
    return {"mediaType": "application/octet-stream", "digest": digest(data), "size": len(data)}


class Memory:
    """A registry in memory, counting what is written to it."""

    label = "memory"

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], Manifest] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.subjects: dict[tuple[str, str], list[str]] = {}
        self.writes: list[str] = []

    def head_manifest(self, repository: str, reference: str) -> str | None:
        if reference.startswith("sha256:"):
            return reference if (repository, reference) in self.manifests else None
        return self.tags.get((repository, reference))

    def pull_manifest(self, repository: str, reference: str) -> Manifest:
        found = self.head_manifest(repository, reference)
        assert found is not None, reference
        return self.manifests[(repository, found)]

    def push_manifest(self, repository: str, reference: str, m: Manifest) -> None:
        for b in m.blobs():
            assert (repository, b["digest"]) in self.blobs, "a manifest before its blobs"
        for c in m.children():
            assert (repository, c["digest"]) in self.manifests, "an index before its children"
        self.manifests[(repository, m.digest)] = m
        if not reference.startswith("sha256:"):
            self.tags[(repository, reference)] = m.digest
        subject = m.document.get("subject")
        if subject:
            self.subjects.setdefault((repository, subject["digest"]), []).append(m.digest)
        self.writes.append(f"manifest {reference}")

    def blob_exists(self, repository: str, d: str) -> int | None:
        data = self.blobs.get((repository, d))
        return len(data) if data is not None else None

    def blob_chunks(self, repository: str, d: str, size: int) -> Iterator[bytes]:
        return iter([self.blobs[(repository, d)]])

    def push_blob(self, repository: str, d: str, size: int, chunks: Iterator[bytes], chunked: bool) -> None:
        data = b"".join(chunks)
        assert digest(data) == d and len(data) == size
        self.blobs[(repository, d)] = data
        self.writes.append(f"blob {d}")

    def mount_blob(self, repository: str, d: str) -> bool:
        return False

    def referrers(self, repository: str, d: str) -> list[str]:
        return self.subjects.get((repository, d), [])

    def prepare(self, repositories: Iterable[str]) -> None:
        pass

    def delete(self, repository: str, d: str | None, tags: list[str]) -> None:
        pass


def seed(src: Memory, repo: str = "lib/app") -> tuple[Manifest, Manifest]:
    shared = b"shared layer" * 100
    children = []
    for arch in ("amd64", "arm64"):
        config, own = f'{{"architecture":"{arch}"}}'.encode(), f"{arch} layer".encode() * 50
        for data in (shared, config, own):
            src.blobs[(repo, digest(data))] = data
        child = manifest(IMAGE, {"config": blob_descriptor(config),
                                 "layers": [blob_descriptor(shared), blob_descriptor(own)]})  # fmt: skip
        src.manifests[(repo, child.digest)] = child
        children.append({"mediaType": IMAGE, "digest": child.digest, "size": len(child.data)})
    index = manifest(INDEX, {"manifests": children})
    src.manifests[(repo, index.digest)] = index
    src.tags[(repo, "v1")] = index.digest
    empty = b"{}"
    src.blobs[(repo, digest(empty))] = empty
    subject = {"mediaType": INDEX, "digest": index.digest, "size": len(index.data)}
    signature = manifest(IMAGE, {"config": blob_descriptor(empty), "layers": [blob_descriptor(empty)],
                                 "subject": subject})  # fmt: skip
    src.manifests[(repo, signature.digest)] = signature
    src.subjects[(repo, index.digest)] = [signature.digest]
    return index, signature


class Ticks:
    """A clock that runs out after `budget` budget checks."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def __call__(self) -> float:
        self.left -= 1
        return 0.0 if self.left >= 0 else 10.0


def copier(src: Memory, dst: Memory, *, budget: int = 10_000, override: bool = False) -> Copier:
    return Copier(src, dst, override=override, copy_by_chunk=False, deadline=1.0, clock=Ticks(budget))


def test_children_first_then_index_tag_then_signature() -> None:
    src, dst = Memory(), Memory()
    index, signature = seed(src)
    c = copier(src, dst)
    assert c.artifact("lib/app", "mirror/app", None, ["v1"]) == index.digest
    manifests = [w for w in dst.writes if w.startswith("manifest")]
    children = [f"manifest {ch['digest']}" for ch in index.children()]
    assert manifests == [*children, f"manifest {index.digest}", "manifest v1", f"manifest {signature.digest}"]
    assert dst.tags[("mirror/app", "v1")] == index.digest
    assert dst.subjects[("mirror/app", index.digest)] == [signature.digest]
    # The shared layer and the signature's empty blob crossed once; their second uses were found present.
    assert c.outcome.blobs_copied == 6 and c.outcome.blobs_present == 2


def test_a_second_run_copies_nothing() -> None:
    src, dst = Memory(), Memory()
    seed(src)
    copier(src, dst).artifact("lib/app", "lib/app", None, ["v1"])
    before = list(dst.writes)
    again = copier(src, dst)
    again.artifact("lib/app", "lib/app", None, ["v1"])
    assert dst.writes == before
    assert again.outcome.tags_skipped == 1 and again.outcome.manifests_present == 1


@pytest.mark.parametrize("budget", [1, 3, 5, 8])
def test_an_interrupted_copy_resumes_without_copying_twice(budget: int) -> None:
    src, dst = Memory(), Memory()
    index, _ = seed(src)
    runs = 0
    while True:
        runs += 1
        try:
            copier(src, dst, budget=budget).artifact("lib/app", "lib/app", None, ["v1"])
            break
        except OutOfTime:
            assert runs < 50
    counted = Counter(dst.writes)
    assert all(n == 1 for n in counted.values()), counted  # each manifest, tag and blob written once
    assert dst.tags[("lib/app", "v1")] == index.digest and runs > 1


def test_a_tag_naming_something_else_is_kept_unless_override() -> None:
    src, dst = Memory(), Memory()
    index, _ = seed(src)
    other = manifest(INDEX, {"manifests": []})
    dst.push_manifest("lib/app", "v1", other)
    kept = copier(src, dst)
    kept.artifact("lib/app", "lib/app", None, ["v1"])
    assert dst.tags[("lib/app", "v1")] == other.digest and kept.outcome.tags_skipped == 1
    copier(src, dst, override=True).artifact("lib/app", "lib/app", None, ["v1"])
    assert dst.tags[("lib/app", "v1")] == index.digest


class Small(Memory):
    """A destination whose front door refuses request bodies above 1 KiB (413), chunks welcome."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def push_blob(self, repository: str, d: str, size: int, chunks: Iterator[bytes], chunked: bool) -> None:
        self.modes.append(chunked)
        if not chunked and size > 1024:
            from chalicelib.adapters.registry.errors import RemoteProtocolError

            raise RemoteProtocolError("upload of x: the registry answered 413")
        super().push_blob(repository, d, size, chunks, chunked)


def test_a_body_the_destination_finds_too_large_goes_in_chunks() -> None:
    src, dst = Memory(), Small()
    seed(src)
    copier(src, dst).artifact("lib/app", "lib/app", None, ["v1"])
    # Only the 1,200-byte shared layer is above 1 KiB: refused whole once, then sent in chunks.
    assert dst.modes.count(True) == 1 and dst.modes.count(False) == 6
    assert dst.tags[("lib/app", "v1")] == src.tags[("lib/app", "v1")]
