"""Manifest push, pull and delete: validation, reference rules and content negotiation."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from chalicelib.core.digest import Digest, is_digest
from chalicelib.core.manifest import ParsedManifest, parse_manifest
from chalicelib.core.models import Manifest
from chalicelib.core.reference import project_of, validate_tag
from chalicelib.errors import DigestInvalid, ManifestBlobUnknown, ManifestUnknown, PayloadTooLarge
from chalicelib.events import Event, EventBus, EventType

if TYPE_CHECKING:
    from chalicelib.services.quotas import QuotaService
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.manifests import ManifestStore


class ManifestService:
    def __init__(
        self, manifests: ManifestStore, blobs: BlobMetaStore, quota: QuotaService, events: EventBus, max_bytes: int
    ) -> None:
        self._manifests = manifests
        self._blobs = blobs
        self._quota = quota
        self._events = events
        self._max_bytes = max_bytes

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
        sizes = self._check_references(repository, manifest)
        sizes[manifest.digest] = len(body)
        project = project_of(repository)
        # References first, then the charge: a concurrent delete that releases a shared blob either
        # sees these references (and keeps it counted) or released it before the charge (which then
        # counts it again). The other order could leave a referenced blob uncounted.
        self._quota.track_manifest(project, repository, manifest.digest, list(manifest.blobs))
        charged: list[str] = []
        try:
            charged = self._charge(project, sizes)
            self._protect(manifest)
            self._manifests.put(repository, manifest, body, tag)
        except BaseException:
            for d in charged:
                self._quota.release(project, d)
            if self._manifests.get(repository, manifest.digest, with_body=False) is None:
                # Not stored: drop its references, but blobs uploaded for it stay counted (Harbor).
                self._quota.forget_manifest(project, repository, manifest.digest, list(manifest.blobs))
            raise
        self._events.publish(
            Event.now(
                EventType.PUSH_ARTIFACT, project=project, repository=repository, digest=manifest.digest,
                tag=tag, media_type=manifest.media_type, size=len(body),
            )
        )  # fmt: skip
        return manifest

    def _protect(self, manifest: ParsedManifest) -> None:
        """Touch the referenced blobs so no GC run deletes what this push relies on.

        After the charge on purpose: a GC scan that ran before the project held these blobs sees
        their versions change here (its conditional mark or claim then fails); a scan after it sees
        them held. Either way a blob this manifest references is never swept; one already being
        swept is reported, and the client pushes it again (reference/harbor.md section 2)."""
        gone = self._blobs.protect(list(manifest.blobs)) if manifest.blobs else []
        if gone:
            raise ManifestBlobUnknown("blobs are being garbage collected; push them again", {"digests": gone[:20]})

    def _charge(self, project: str, sizes: dict[str, int]) -> list[str]:
        """Charge the manifest and any referenced blob the project does not count yet (Harbor)."""
        charged: list[str] = []
        try:
            for d in self._blobs.unassociated(project, list(sizes)):
                if self._quota.charge(project, d, sizes[d]):
                    charged.append(d)
        except BaseException:
            for d in charged:
                self._quota.release(project, d)
            raise
        return charged

    def get(self, repository: str, reference: str, accept: list[str], *, with_body: bool = True) -> Manifest:
        digest = self.resolve(repository, reference)
        manifest = self._manifests.get(repository, digest, with_body=with_body)
        if manifest is None:
            raise ManifestUnknown(detail={"reference": reference})
        if accept and not _accepts(accept, manifest.media_type):
            raise ManifestUnknown(
                f"manifest is {manifest.media_type}, which the Accept header does not allow",
                {"reference": reference, "mediaType": manifest.media_type},
            )
        if with_body:
            self._events.publish(
                Event.now(
                    EventType.PULL_ARTIFACT, project=project_of(repository), repository=repository,
                    digest=digest, tag=None if is_digest(reference) else reference,
                    media_type=manifest.media_type, size=manifest.size,
                )
            )  # fmt: skip
        return manifest

    def resolve(self, repository: str, reference: str) -> str:
        if is_digest(reference):
            return str(Digest.parse(reference))
        digest = self._manifests.resolve_tag(repository, validate_tag(reference))
        if digest is None:
            raise ManifestUnknown(detail={"tag": reference})
        return digest

    def delete(self, repository: str, reference: str) -> None:
        """By tag: untag. By digest: the manifest and every tag on it (bytes are left to GC)."""
        if is_digest(reference):
            digest = str(Digest.parse(reference))
            blobs = self._manifests.delete(repository, digest)
            if blobs is None:
                raise ManifestUnknown(detail={"digest": reference})
            project = project_of(repository)
            self._quota.untrack_manifest(project, repository, digest, blobs)
            deleted = Event.now(EventType.DELETE_ARTIFACT, project=project, repository=repository, digest=digest)
            self._events.publish(deleted)
        else:
            tag = validate_tag(reference)
            tagged = self._manifests.resolve_tag(repository, tag)
            if tagged is None or not self._manifests.delete_tag(repository, tag):
                raise ManifestUnknown(detail={"tag": reference})
            self._events.publish(
                Event.now(
                    EventType.DELETE_TAG, project=project_of(repository), repository=repository, digest=tagged, tag=tag
                )
            )

    def _check_references(self, repository: str, manifest: ParsedManifest) -> dict[str, int]:
        """Every blob and child must already be in the repository; the subject need not be.

        Returns the sizes of the referenced blobs."""
        linked: dict[str, int] = {}
        if manifest.blobs:
            linked = self._blobs.linked(repository, list(manifest.blobs))
            missing = [d for d in manifest.blobs if d not in linked]
            if missing:
                raise ManifestBlobUnknown(detail={"digests": missing[:20]})
        if manifest.children:
            found = self._manifests.existing(repository, list(manifest.children))
            missing = [d for d in manifest.children if d not in found]
            if missing:
                raise ManifestBlobUnknown(
                    "manifest references manifests unknown to the repository", {"digests": missing[:20]}
                )
        return linked


def _accepts(accept: list[str], media_type: str) -> bool:
    return any(a in ("*/*", "application/*", media_type) for a in accept)
