"""Manifest push, pull and delete: validation, reference rules and content negotiation.

A push also records Harbor's artifact (the processor's type, Harbor's size, the accessory type) in
the row it writes anyway; a delete by digest is Harbor's deep artifact delete, on `/v2` as on the
management API. Tag writes from the management API go through `add_tag`/`delete_tag` here, so a
rule about tags (immutability) has one place to go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from chalicelib import processors
from chalicelib.core.artifacts import COSIGN_SIGNATURE, ArtifactRecord, accessory_type, cosign_subject
from chalicelib.core.digest import Digest, is_digest
from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.core.models import Manifest
from chalicelib.core.reference import project_of, require_nameable, validate_tag
from chalicelib.errors import (
    BadRequest,
    Conflict,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NotFound,
    PayloadTooLarge,
    ReferencedByOthers,
)
from chalicelib.events import EventBus, EventType
from chalicelib.stores.manifests import StillReferenced, StillTagged

if TYPE_CHECKING:
    from chalicelib.core.scans import ReportSummary
    from chalicelib.services.gate import PullGate
    from chalicelib.services.immutability import ImmutabilityService
    from chalicelib.services.quotas import QuotaService
    from chalicelib.stores.artifacts import ArtifactStore
    from chalicelib.stores.blob_bytes import BlobBytes
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.manifests import ManifestStore

# A delete whose condition keeps failing (indexes adopting the artifact meanwhile) gives up after this.
_DELETE_ATTEMPTS = 3


class ManifestService:
    def __init__(
        self,
        manifests: ManifestStore,
        artifacts: ArtifactStore,
        blobs: BlobMetaStore,
        *,
        blob_bytes: BlobBytes,
        quota: QuotaService,
        events: EventBus,
        max_bytes: int,
        immutability: ImmutabilityService,
    ) -> None:
        self._manifests = manifests
        self._artifacts = artifacts
        self._immutability = immutability
        self._blobs = blobs
        self._bytes = blob_bytes
        self._quota = quota
        self._events = events
        self._max_bytes = max_bytes
        self._on_deleted: list[Callable[[str, str, dict[str, ReportSummary]], None]] = []

    def on_deleted(self, callback: Callable[[str, str, dict[str, ReportSummary]], None]) -> None:
        """Called with (repository, digest, report summaries) after each manifest row is deleted
        (an index's children and accessories too, which publish no event of their own)."""
        self._on_deleted.append(callback)

    def put(self, repository: str, reference: str, body: bytes, content_type: str | None) -> ParsedManifest:
        if len(body) > self._max_bytes:
            raise PayloadTooLarge(f"manifest exceeds the {self._max_bytes}-byte limit", {"size": len(body)})
        if is_digest(reference):
            expected = Digest.parse(reference)
            digest = Digest(expected.algorithm, hashlib.new(expected.algorithm, body).hexdigest())
            if digest != expected:
                raise DigestInvalid("manifest does not match the digest in the URL", {"digest": reference})
            tag = None
        else:
            tag = validate_tag(reference)
            digest = Digest.of(body)
        manifest = parse_manifest(body, content_type, str(digest))
        sizes, children_size = self._check_references(repository, manifest)
        record = self._record(manifest, body, tag, sum(sizes.values()) + children_size)
        sizes[manifest.digest] = len(body)
        project = project_of(repository)
        # Tag immutability: an immutable tag may not move to another manifest (checked here, before
        # any charge, and again by the conditional tag write, which closes the race).
        frozen = tag is not None and self._immutability.protects(repository, tag)
        if frozen and tag is not None and self._manifests.resolve_tag(repository, tag) not in (None, manifest.digest):
            raise self._immutability.immutable_error(repository, tag)
        # References first, then the charge: a concurrent delete that releases a shared blob either
        # sees these references (and keeps it counted) or released it before the charge (which then
        # counts it again). The other order could leave a referenced blob uncounted.
        self._quota.track_manifest(project, repository, manifest.digest, list(manifest.blobs))
        charged: list[str] = []
        try:
            charged = self._quota.count_all(project, repository, sizes)
            self._protect(manifest)
            self._manifests.put(repository, manifest, body, tag, record, tag_may_move=not frozen)
        except BaseException as exc:
            if self._manifests.get(repository, manifest.digest, with_body=False) is None:
                # Not stored: drop its references, but blobs uploaded for it stay counted (Harbor).
                self._quota.forget_manifest(project, repository, manifest.digest, list(manifest.blobs))
            for d in charged:  # unless another manifest relies on them now
                self._quota.release(project, d)
            if frozen and tag is not None and isinstance(exc, Conflict):  # tag immutability: lost the race
                raise self._immutability.immutable_error(repository, tag) from exc
            raise
        self._events.emit(
            EventType.PUSH_ARTIFACT,
            project=project,
            repository=repository,
            digest=manifest.digest,
            tag=tag,
            media_type=manifest.media_type,
            size=len(body),
        )
        return manifest

    def _protect(self, manifest: ParsedManifest) -> None:
        """Touch the referenced blobs so no GC run deletes what this push relies on.

        After the charge on purpose: a GC scan that ran before the project held these blobs sees
        their versions change here (its conditional mark or claim then fails); a scan after it sees
        them held. Either way a blob this manifest references is never swept; one already being
        swept is reported, and the client pushes it again (Harbor's GC protocol)."""
        gone = self._blobs.protect(list(manifest.blobs)) if manifest.blobs else []
        if gone:
            raise ManifestBlobUnknown("blobs are being garbage collected; push them again", {"digests": gone[:20]})

    def get(self, repository: str, reference: str, accept: list[str], *, with_body: bool = True,
            gate: PullGate | None = None) -> Manifest:  # fmt: skip
        """A pull: by digest from the manifest row, by tag from the tag row alone (one read).

        `gate` (the project's vulnerability policy) may refuse the pull before it counts; the rows
        it needs are read with the manifest, in the same call."""
        require_nameable(reference)
        also = None if gate is None else gate.also
        if is_digest(reference):
            pulled = self._manifests.pull(repository, str(Digest.parse(reference)), with_body=with_body, also=also)
        else:
            pulled = self._manifests.pull_by_tag(repository, validate_tag(reference), with_body=with_body, also=also)
        manifest = pulled.manifest
        if manifest is None:
            raise ManifestUnknown(detail={"reference": reference})
        if accept and not _accepts(accept, manifest.media_type):
            raise ManifestUnknown(
                f"manifest is {manifest.media_type}, which the Accept header does not allow",
                {"reference": reference, "mediaType": manifest.media_type},
            )
        if gate is not None:
            gate.check(manifest.digest, pulled.found)
        if with_body:
            self._events.emit(
                EventType.PULL_ARTIFACT,
                project=project_of(repository),
                repository=repository,
                digest=manifest.digest,
                tag=None if is_digest(reference) else reference,
                media_type=manifest.media_type,
                size=manifest.size,
            )
        return manifest

    def resolve(self, repository: str, reference: str) -> str:
        if is_digest(reference):
            return str(Digest.parse(reference))
        digest = self._manifests.resolve_tag(repository, validate_tag(reference))
        if digest is None:
            raise ManifestUnknown(detail={"tag": reference})
        return digest

    def delete(self, repository: str, reference: str) -> None:
        """By tag: untag. By digest: the artifact, as Harbor deletes it (bytes are left to GC)."""
        require_nameable(reference)
        if is_digest(reference):
            self.delete_artifact(repository, str(Digest.parse(reference)))
        else:
            tag = validate_tag(reference)
            tagged = self._manifests.resolve_tag(repository, tag)
            if tagged is None:
                raise ManifestUnknown(detail={"tag": reference})
            self._immutability.ensure_mutable(repository, tag, "deleted")  # tag immutability
            if not self._manifests.delete_tag(repository, tag):
                raise ManifestUnknown(detail={"tag": reference})
            self._events.emit(
                EventType.DELETE_TAG, project=project_of(repository), repository=repository, digest=tagged, tag=tag
            )

    def _check_references(self, repository: str, manifest: ParsedManifest) -> tuple[dict[str, int], int]:
        """Every blob and child must already be in the repository; the subject need not be.

        Returns the sizes of the referenced blobs and the summed artifact sizes of the children."""
        linked: dict[str, int] = {}
        if manifest.blobs:
            linked = self._blobs.linked(repository, list(manifest.blobs))
            missing = [d for d in manifest.blobs if d not in linked]
            if missing:
                raise ManifestBlobUnknown(detail={"digests": missing[:20]})
        children_size = 0
        if manifest.children:
            found = self._artifacts.get_many(repository, manifest.children)
            missing = [d for d in manifest.children if d not in found]
            if missing:
                raise ManifestBlobUnknown(
                    "manifest references manifests unknown to the repository", {"digests": missing[:20]}
                )
            children_size = sum(a.size for a in found.values())
        return linked, children_size

    def _record(self, manifest: ParsedManifest, body: bytes, tag: str | None, referenced: int) -> ArtifactRecord:
        """The artifact record of a push: the processor's view, Harbor's size, the accessory type."""
        summary = processors.abstract(manifest, body, self.blob_reader(manifest.blobs))
        kind = None
        if manifest.subject:
            kind = accessory_type(manifest.artifact_type, manifest.config_media_type)
        elif cosign_subject(tag):
            kind = COSIGN_SIGNATURE
        return ArtifactRecord(
            kind=summary.type,
            total_size=len(body) + referenced,
            extra_attrs=summary.extra_attrs,
            icon=summary.icon or "",
            accessory_type=kind,
        )

    # Artifacts (the management API and /v2 DELETE by digest share these rules).

    def blob_reader(self, digests: tuple[str, ...]) -> Callable[[str, int], bytes]:
        """A bounded reader of an artifact's own blobs (checked present when it was pushed): all
        that a processor may read."""

        def read(digest: str, max_bytes: int) -> bytes:
            if digest not in digests:
                raise BadRequest("a processor may read only the blobs of the artifact")
            return self._bytes.read_head(digest, max_bytes)

        return read

    def delete_artifact(self, repository: str, digest: str) -> None:
        """Harbor's deep delete: refused (412) while an index references the artifact; removes its
        accessories and the children nothing else references or tags; quota as for a manifest.
        An artifact carrying an immutable tag stays (tag immutability)."""
        self._immutability.ensure_tags_mutable(
            repository, lambda: self._manifests.tags_of(repository, digest), "deleted"
        )
        if not self._delete_deeply(repository, digest, _Mode.ROOT):
            raise ManifestUnknown(detail={"digest": digest})

    def delete_untagged(self, repository: str, digest: str) -> bool:
        """GC's delete of an untagged artifact: deep, as Harbor deletes it, but only while no tag
        points at it (checked by the delete itself, so a tag pushed meanwhile keeps the artifact).
        False if it is gone or tagged; ReferencedByOthers while an index references it."""
        return self._delete_deeply(repository, digest, _Mode.ROOT, untagged_only=True)

    def _delete_deeply(self, repository: str, digest: str, mode: _Mode, *, untagged_only: bool = False) -> bool:
        deleted = None
        for _attempt in range(_DELETE_ATTEMPTS):
            try:
                # A tagged child stays, as an artifact of its own.
                only = untagged_only or mode is _Mode.CHILD
                deleted = self._manifests.delete(
                    repository, digest, untagged_only=only,
                    referenced=lambda: bool(self._artifacts.live_parents(repository, digest)),
                )  # fmt: skip
                break
            except StillReferenced:
                if mode is _Mode.ROOT:
                    raise ReferencedByOthers(detail={"digest": digest}) from None
                return False
            except StillTagged:
                return False
            except Conflict:
                continue  # a tag or an index came to point at it meanwhile: look again
        else:
            raise Conflict("the artifact kept changing while it was being deleted; retry", {"digest": digest})
        if deleted is None:
            return False
        for callback in self._on_deleted:
            callback(repository, digest, deleted.scans)
        project = project_of(repository)
        self._quota.untrack_manifest(project, repository, digest, deleted.blobs)
        for accessory in self._artifacts.accessory_digests(repository, digest):
            self._delete_deeply(repository, accessory, _Mode.ACCESSORY)
        for child in deleted.children:
            if not self._delete_deeply(repository, child, _Mode.CHILD) and not self._artifacts.live_parents(
                repository, child
            ):
                self._artifacts.relist(repository, child)
        if mode is _Mode.ROOT:
            self._events.emit(
                EventType.DELETE_ARTIFACT,
                project=project,
                repository=repository,
                digest=digest,
                detail={"tags": deleted.tags},
            )
        return True

    def add_tag(self, repository: str, digest: str, tag: str) -> None:
        """Tag an artifact through the API (Harbor: a new name only; 409 if the name is taken)."""
        self._manifests.add_tag(repository, validate_tag(tag), digest)
        self._events.emit(
            EventType.CREATE_TAG, project=project_of(repository), repository=repository, digest=digest, tag=tag
        )

    def delete_tag(self, repository: str, digest: str, tag: str) -> None:
        """Untag through the API: only while the tag still points at `digest`, and never an immutable tag."""
        self._immutability.ensure_mutable(repository, tag, "deleted")
        if not self._manifests.delete_tag(repository, tag, digest):
            raise NotFound(f"tag {tag} not found on the artifact")
        self._events.emit(
            EventType.DELETE_TAG, project=project_of(repository), repository=repository, digest=digest, tag=tag
        )


class _Mode(Enum):
    ROOT = "root"
    CHILD = "child"
    ACCESSORY = "accessory"


def _accepts(accept: list[str], media_type: str) -> bool:
    return any(a in ("*/*", "application/*", media_type) for a in accept)
