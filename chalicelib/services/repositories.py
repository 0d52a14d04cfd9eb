"""Tag listing, the catalog and referrers: the read-only discovery endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.core import mediatypes as mt
from chalicelib.core.digest import Digest
from chalicelib.core.manifest import index_descriptors
from chalicelib.errors import NameUnknown

if TYPE_CHECKING:
    from chalicelib.stores.manifests import ManifestStore


class RepositoryService:
    def __init__(self, manifests: ManifestStore) -> None:
        self._manifests = manifests

    def tags(self, repository: str, limit: int, last: str | None) -> tuple[list[str], bool]:
        if not self._manifests.repository_exists(repository):
            raise NameUnknown(detail={"name": repository})
        if limit == 0:
            return [], False
        return self._manifests.list_tags(repository, limit, last)

    def catalog(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        if limit == 0:
            return [], False
        return self._manifests.list_repositories(limit, last)

    def referrers(self, repository: str, subject_text: str, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose `subject` is the digest, plus those a client listed
        in a referrers fallback tag (`<alg>-<hex>`) before the API existed for it."""
        subject = Digest.parse(subject_text)
        found: dict[str, dict[str, Any]] = {
            r.digest: r.descriptor() for r in self._manifests.referrers(repository, str(subject))
        }
        for descriptor in self._fallback_descriptors(repository, subject):
            found.setdefault(descriptor["digest"], descriptor)
        descriptors = list(found.values())
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        return descriptors

    def _fallback_descriptors(self, repository: str, subject: Digest) -> list[dict[str, Any]]:
        tag_digest = self._manifests.resolve_tag(repository, f"{subject.algorithm}-{subject.hex}"[:128])
        if tag_digest is None:
            return []
        index = self._manifests.get(repository, tag_digest)
        if index is None or index.media_type not in mt.INDEXES:
            return []
        keep = ("mediaType", "digest", "size", "artifactType", "annotations")
        return [{k: d[k] for k in keep if k in d} for d in index_descriptors(index.body)]


def referrer_index(descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
