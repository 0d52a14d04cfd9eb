"""The copy of one artifact between two registries, one of them this one (Harbor's
`transfer/image`), and the two sides it copies between.

A side is either a remote registry (its adapter's distribution client) or this registry, reached
through the services a client's push and pull go through: a pushed blob goes through the upload
service (quota, verification), a pushed manifest through the manifest service (references,
immutability, quota, the PUSH_ARTIFACT event), a deletion through the deep artifact delete. Nothing
is written to the stores behind their back.

Per artifact, as Harbor's transfer: the source manifest is read; a destination tag that already
names the same digest is skipped, one that names another is skipped unless the policy overrides;
manifests are copied children first (an index only after every manifest it names), each skipped
when the destination has it; each blob is skipped when present, mounted when the destination can
tell a repository holding it, else streamed (verified by digest on the way), in chunks when the
policy says `copy_by_chunk` or the blob is large; then the tags are pushed, then the artifact's
referrers and accessories (signatures, SBOMs) with their own referrers. Every step is idempotent,
so an interrupted copy that runs again copies only what is missing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from chalicelib.adapters.registry.client import BlobStream, Manifest
from chalicelib.adapters.registry.errors import RemoteNotFound, RemoteProtocolError
from chalicelib.core.artifacts import cosign_tag
from chalicelib.core.chunks import ChunkReader
from chalicelib.core.digest import is_digest
from chalicelib.core.identity import Principal
from chalicelib.errors import BlobUnknown, Conflict, ManifestUnknown, NotFound

if TYPE_CHECKING:
    from chalicelib.adapters.registry.base import RegistryAdapter
    from chalicelib.services.blobs import BlobService
    from chalicelib.services.labels import LabelService
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.uploads import UploadService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.manifests import ManifestStore
    from chalicelib.stores.repositories import RepositoryStore

# With `copy_by_chunk`, blobs above this size are pushed in chunks (Harbor's threshold); without
# it, in one streamed PUT, unless the destination refuses that body as too large (413).
CHUNKED_ABOVE = 10 * 1024 * 1024
CHUNK_BYTES = 10 * 1024 * 1024
# How deep referrers of referrers are followed (a signature of an SBOM of an image).
_REFERRER_DEPTH = 3


class OutOfTime(Exception):
    """The invocation's budget is spent: the task is taken up again by the next invocation, which
    skips what this one copied."""


class Side(Protocol):
    """One end of a copy (a remote registry, or this one)."""

    label: str

    def head_manifest(self, repository: str, reference: str) -> str | None: ...
    def pull_manifest(self, repository: str, reference: str) -> Manifest: ...
    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> None: ...
    def blob_exists(self, repository: str, digest: str) -> int | None: ...
    def blob_chunks(self, repository: str, digest: str, size: int) -> Iterator[bytes]: ...
    def push_blob(self, repository: str, digest: str, size: int, chunks: Iterator[bytes], chunked: bool) -> None: ...
    def mount_blob(self, repository: str, digest: str) -> bool: ...
    def referrers(self, repository: str, digest: str) -> list[str]: ...
    def prepare(self, repositories: Iterable[str]) -> None: ...
    def delete(self, repository: str, digest: str | None, tags: list[str]) -> None: ...


class RemoteSide:
    """A remote registry through its adapter."""

    def __init__(self, adapter: RegistryAdapter, label: str) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self.label = label

    def head_manifest(self, repository: str, reference: str) -> str | None:
        found = self.client.head_manifest(self.adapter.remote_repository(repository), reference)
        return found.digest if found is not None else None

    def pull_manifest(self, repository: str, reference: str) -> Manifest:
        return self.client.pull_manifest(self.adapter.remote_repository(repository), reference)

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        self.client.push_manifest(self.adapter.remote_repository(repository), reference, manifest)

    def blob_exists(self, repository: str, digest: str) -> int | None:
        return self.client.blob_exists(self.adapter.remote_repository(repository), digest)

    def blob_chunks(self, repository: str, digest: str, size: int) -> Iterator[bytes]:
        return iter(self.client.pull_blob(self.adapter.remote_repository(repository), digest, size))

    def push_blob(self, repository: str, digest: str, size: int, chunks: Iterator[bytes], chunked: bool) -> None:
        name = self.adapter.remote_repository(repository)
        if not chunked:
            # A large blob streams through: the client iterates what it is given (a BlobStream or this).
            body = b"".join(chunks) if size <= CHUNK_BYTES else cast("BlobStream", _Stream(chunks))
            self.client.push_blob(name, digest, size, body)
            return
        reader = ChunkReader(chunks)
        self.client.push_blob_chunked(name, digest, size, reader.read, CHUNK_BYTES)

    def mount_blob(self, repository: str, digest: str) -> bool:
        source = self.adapter.mount_source(digest)
        name = self.adapter.remote_repository(repository)
        return bool(source and source != name and self.client.mount_blob(name, digest, source))

    def referrers(self, repository: str, digest: str) -> list[str]:
        name = self.adapter.remote_repository(repository)
        found = [str(d["digest"]) for d in self.client.referrers(name, digest)]
        tag = cosign_tag(digest)
        if tag:
            signed = self.client.head_manifest(name, tag)
            if signed is not None and signed.digest not in found:
                found.append(signed.digest)
        return found

    def prepare(self, repositories: Iterable[str]) -> None:
        self.adapter.prepare_for_push(list(repositories))

    def delete(self, repository: str, digest: str | None, tags: list[str]) -> None:
        name = self.adapter.remote_repository(repository)
        if digest is None and tags:
            digest = self.head_manifest(repository, tags[0])
        if digest is None:
            return
        with contextlib.suppress(RemoteNotFound):
            self.client.delete_manifest(name, digest)


class LocalSide:
    """This registry, through the services a client's push and pull use."""

    label = "local"

    def __init__(self, manifests: ManifestService, uploads: UploadService, blobs: BlobService, *,
                 projects: ProjectService, artifacts: ArtifactStore, manifest_store: ManifestStore,
                 operator: str) -> None:  # fmt: skip
        self._manifests = manifests
        self._manifest_store = manifest_store
        self._uploads = uploads
        self._blobs = blobs
        self._projects = projects
        self._artifacts = artifacts
        self._operator = operator

    def head_manifest(self, repository: str, reference: str) -> str | None:
        try:
            return (
                self._manifests.resolve(repository, reference)
                if not is_digest(reference)
                else (self._manifests.get(repository, reference, [], with_body=False).digest)
            )
        except (ManifestUnknown, NotFound):
            return None

    def pull_manifest(self, repository: str, reference: str) -> Manifest:
        """Read from the store, not the pull path: a replication reads, nobody pulls (no
        PULL_ARTIFACT, no pull count)."""
        if is_digest(reference):
            found = self._manifest_store.get(repository, reference, with_body=True)
        else:
            found = self._manifest_store.get_by_tag(repository, reference, with_body=True)
        if found is None:
            raise ManifestUnknown(detail={"reference": reference})
        return Manifest(found.media_type, found.digest, found.body)

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        self._manifests.put(repository, reference, manifest.data, manifest.media_type)

    def blob_exists(self, repository: str, digest: str) -> int | None:
        try:
            return self._blobs.stat(repository, digest)[1]
        except BlobUnknown:
            return None

    def blob_chunks(self, repository: str, digest: str, size: int) -> Iterator[bytes]:
        return self._blobs.chunks(repository, digest)

    def push_blob(self, repository: str, digest: str, size: int, chunks: Iterator[bytes], chunked: bool) -> None:
        if size <= CHUNK_BYTES:
            self._uploads.put_monolithic(repository, digest, b"".join(chunks))
            return
        upload = self._uploads.start(repository, digest.partition(":")[0])
        location = f"/v2/{repository}/blobs/uploads/{upload.id}"
        self._uploads.append_stream(repository, upload.id, ChunkReader(chunks), length=size, content_range=None,
                                    location=location)  # fmt: skip
        self._uploads.finish(repository, upload.id, digest, b"", content_range=None, location=location)

    def mount_blob(self, repository: str, digest: str) -> bool:
        return self._uploads.mount(repository, digest, None)

    def referrers(self, repository: str, digest: str) -> list[str]:
        return self._artifacts.accessory_digests(repository, digest)

    def prepare(self, repositories: Iterable[str]) -> None:
        """The projects a pull-based copy lands in exist (created private, as Harbor's adapter does)."""
        creator = Principal("user", self._operator or "admin", None, sysadmin=True)
        for project in sorted({name.split("/", 1)[0] for name in repositories}):
            if self._projects.exists(project):
                continue
            try:
                self._projects.create(creator, project, {"public": "false"}, {}, None)
            except Conflict:
                continue

    def delete(self, repository: str, digest: str | None, tags: list[str]) -> None:
        if digest is None and tags:
            digest = self.head_manifest(repository, tags[0])
        if digest is None:
            return
        with contextlib.suppress(ManifestUnknown, NotFound):
            self._manifests.delete_artifact(repository, digest)


@dataclass
class Outcome:
    """What one artifact's copy did (counted for the task's log and the bench)."""

    manifests_copied: int = 0
    manifests_present: int = 0
    blobs_copied: int = 0
    blobs_chunked: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    tags_pushed: int = 0
    tags_skipped: int = 0
    log: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


class Copier:
    """Copies artifacts from `src` to `dst`; `deadline` (on `clock`) is when the invocation must
    stop starting new work (OutOfTime), `check` raises when the job was stopped."""

    def __init__(self, src: Side, dst: Side, *, override: bool, copy_by_chunk: bool, deadline: float,
                 clock: Callable[[], float] = time.monotonic,
                 check: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.src, self.dst = src, dst
        self.override = override
        self.copy_by_chunk = copy_by_chunk
        self.deadline = deadline
        self.clock = clock
        self.check = check
        self.outcome = Outcome()
        self.wrote = False

    def _budget(self) -> None:
        """Stop (OutOfTime) once the deadline passed, but only after this invocation wrote
        something: lookups of what is present cost time too, and every invocation must move on."""
        self.check()
        if self.wrote and self.clock() >= self.deadline:
            raise OutOfTime

    def artifact(self, src_repo: str, dst_repo: str, digest: str | None, tags: list[str],
                 keep: Callable[[Manifest], bool] | None = None) -> str:  # fmt: skip
        """Copy one artifact (by digest, or by its first tag) with its tags and referrers; its digest.
        `keep` is a filter only the manifest can answer (a remote listing does not say what a tag
        names): an artifact it refuses is left where it is."""
        top = self.src.pull_manifest(src_repo, digest or tags[0])
        if keep is not None and not keep(top):
            self.outcome.log.append(
                f"{src_repo}@{top.digest} ({top.media_type}) is not selected by the filters: skipped"
            )
            return top.digest
        wanted: list[str] = []
        for tag in tags:
            there = self.dst.head_manifest(dst_repo, tag)
            if there == top.digest:
                self.outcome.tags_skipped += 1
                self.outcome.log.append(f"tag {dst_repo}:{tag} already names {top.digest}")
            elif there is not None and not self.override:
                self.outcome.tags_skipped += 1
                self.outcome.log.append(f"tag {dst_repo}:{tag} names {there} and override is off: skipped")
            else:
                wanted.append(tag)
        if tags and not wanted:
            self._referrers(src_repo, dst_repo, top.digest, 0)
            return top.digest
        self.manifest(src_repo, dst_repo, top)
        for tag in wanted:
            self._budget()
            self.dst.push_manifest(dst_repo, tag, top)
            self.wrote = True
            self.outcome.tags_pushed += 1
            self.outcome.log.append(f"pushed {dst_repo}:{tag} -> {top.digest}")
        self._referrers(src_repo, dst_repo, top.digest, 0)
        return top.digest

    def _referrers(self, src_repo: str, dst_repo: str, subject: str, depth: int) -> None:
        if depth >= _REFERRER_DEPTH:
            return
        for digest in self.src.referrers(src_repo, subject):
            self._budget()
            manifest = self.src.pull_manifest(src_repo, digest)
            self.manifest(src_repo, dst_repo, manifest)
            tag = cosign_tag(subject)
            if tag and _is_cosign_signature(manifest) and self.dst.head_manifest(dst_repo, tag) != digest:
                self.dst.push_manifest(dst_repo, tag, manifest)  # cosign finds its signature by this tag
                self.wrote = True
            self._referrers(src_repo, dst_repo, digest, depth + 1)

    def manifest(self, src_repo: str, dst_repo: str, manifest: Manifest) -> None:
        """Copy a manifest by digest, children and blobs first, unless the destination has it."""
        self._budget()
        if self.dst.head_manifest(dst_repo, manifest.digest) is not None:
            self.outcome.manifests_present += 1
            return
        for child in manifest.children():
            self.manifest(src_repo, dst_repo, self.src.pull_manifest(src_repo, str(child["digest"])))
        for blob in manifest.blobs():
            if _foreign(blob):
                continue
            self.blob(src_repo, dst_repo, str(blob["digest"]), int(blob.get("size") or 0))
        self.dst.push_manifest(dst_repo, manifest.digest, manifest)
        self.wrote = True
        self.outcome.manifests_copied += 1
        self.outcome.log.append(f"copied manifest {dst_repo}@{manifest.digest} ({manifest.media_type})")

    def blob(self, src_repo: str, dst_repo: str, digest: str, size: int) -> None:
        self._budget()
        if self.dst.blob_exists(dst_repo, digest) is not None:
            self.outcome.blobs_present += 1
            return
        if self.dst.mount_blob(dst_repo, digest):
            self.wrote = True
            self.outcome.blobs_mounted += 1
            self.outcome.log.append(f"mounted blob {digest}")
            return
        chunked = self.copy_by_chunk and size > CHUNKED_ABOVE
        try:
            self.dst.push_blob(dst_repo, digest, size, self.src.blob_chunks(src_repo, digest, size), chunked)
        except RemoteProtocolError as exc:
            if chunked or not _too_large(exc):
                raise
            # The destination (or a proxy before it) refuses a body this large: in chunks, then.
            chunked = True
            self.dst.push_blob(dst_repo, digest, size, self.src.blob_chunks(src_repo, digest, size), chunked)
        self.wrote = True
        self.outcome.bytes_copied += size
        if chunked:
            self.outcome.blobs_chunked += 1
        else:
            self.outcome.blobs_copied += 1
        self.outcome.log.append(f"copied blob {digest} ({size} bytes{', in chunks' if chunked else ''})")


_FOREIGN = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})  # fmt: skip


def _too_large(exc: RemoteProtocolError) -> bool:
    return "answered 413" in exc.message


def _foreign(descriptor: dict[str, Any]) -> bool:
    """A foreign (non-distributable) layer: Harbor's transfer does not copy it."""
    return descriptor.get("mediaType") in _FOREIGN or bool(descriptor.get("urls"))


def _is_cosign_signature(manifest: Manifest) -> bool:
    if manifest.is_index:
        return False
    layers = manifest.document.get("layers") or []
    return any(layer.get("mediaType") == "application/vnd.dev.cosign.simplesigning.v1+json" for layer in layers)


class _Stream:
    """A chunk iterator as the client's monolithic push takes it (iterated once)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks


def labels_of(labels: LabelService, repository: str, digests: list[str]) -> dict[str, set[str]]:
    found = labels.labels_for(repository, digests) if digests else {}
    return {d: {str(label["name"]) for label in found.get(d, [])} for d in digests}


def local_candidates(repositories: RepositoryStore, artifacts: ArtifactStore, labels: LabelService,
                     selection: Any) -> Iterator[tuple[str, str, list[str]]]:  # fmt: skip
    """(repository, digest, kept tags) of each local artifact the filters select (accessories and
    an index's untagged children travel with their subject, so they are not candidates)."""
    for repo in repositories.find(None):
        if selection.repository(repo.name):
            listed = artifacts.listed(repo.name, True)
            digests = [a.digest for a in listed]
            tags = artifacts.tags_of(repo.name, digests, 1000) if digests else {}
            named = labels_of(labels, repo.name, digests) if selection.labels else {}
            for artifact in listed:
                if artifact.accessory_type:
                    continue
                config_type = artifact.artifact_type
                if not selection.resource_kept(artifact.manifest_media_type, config_type):
                    continue
                if selection.labels and not selection.labels_kept(named.get(artifact.digest, set())):
                    continue
                all_tags = [t.name for t in tags.get(artifact.digest, [])]
                kept = selection.tags(all_tags)
                if not kept and (all_tags or not selection.untagged_kept()):
                    continue
                yield repo.name, artifact.digest, kept
