"""Artifact icons: recorded when an artifact is pushed with one, served by GET /api/v2.0/icons/{digest}.

Harbor serves an icon only if some artifact uses it, to anyone (no login), as base64 JSON. Here the
push event marks the icon blob (after the processors validated it: PNG, JPEG or GIF, at most
1 MiB), so the endpoint needs one GetItem to decide and never serves other blobs, whatever their
bytes; the bytes are checked again when served. Harbor's built-in icon digests (shown for
artifacts without an icon) get a drawn placeholder tile. Unlike Harbor the image is returned as
pushed, not resized to 50x50 (no imaging library in the Lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib import processors
from chalicelib.core import mediatypes as mt
from chalicelib.core.digest import Digest
from chalicelib.core.manifest import parse_manifest
from chalicelib.errors import BadRequest, DigestInvalid, NotFound
from chalicelib.events import Event, EventType
from chalicelib.processors.icon import ICON_MAX_BYTES, builtin_icon, icon_type

if TYPE_CHECKING:
    from chalicelib.services.blobs import BlobService
    from chalicelib.stores.blob_bytes import BlobBytes
    from chalicelib.stores.blobs import BlobMetaStore
    from chalicelib.stores.manifests import ManifestStore


@dataclass(frozen=True)
class Icon:
    content_type: str
    content: bytes


class IconService:
    def __init__(
        self, blob_meta: BlobMetaStore, blob_bytes: BlobBytes, manifests: ManifestStore, blobs: BlobService
    ) -> None:
        self._blob_meta = blob_meta
        self._bytes = blob_bytes
        self._manifests = manifests
        self._blobs = blobs

    def get(self, digest_text: str) -> Icon:
        try:
            digest = str(Digest.parse(digest_text))
        except DigestInvalid as exc:
            raise BadRequest(exc.message, {"digest": digest_text[:200]}) from None
        builtin = builtin_icon(digest)
        if builtin is not None:
            return Icon("image/png", builtin)
        size = self._blob_meta.icon_size(digest)
        if size is None or size > ICON_MAX_BYTES:
            raise NotFound(f"the icon {digest} not found")
        data = self._bytes.read(digest)
        content_type = icon_type(data)
        if content_type is None:
            raise NotFound(f"the icon {digest} not found")
        return Icon(content_type, data)

    def on_event(self, event: Event) -> None:
        """PUSH_ARTIFACT of an image manifest with an icon layer: mark that blob as an icon."""
        if event.type != EventType.PUSH_ARTIFACT or event.media_type not in mt.IMAGE_MANIFESTS:
            return
        if not event.repository or not event.digest:
            return
        repository = event.repository
        stored = self._manifests.get(repository, event.digest)
        if stored is None:
            return  # deleted since
        manifest = parse_manifest(stored.body, stored.media_type, event.digest)
        digest = processors.icon(manifest, stored.body, lambda d, limit: self._blobs.read(repository, d, limit))
        if digest is not None:
            self._blob_meta.mark_icon(digest)
