"""Harbor's artifact vocabulary, pure: accessory types, cosign's legacy signature tags, integer ids.

Harbor keys artifacts and tags by integer ids. Here an artifact is its manifest row, keyed by
repository and digest, so its id is derived from that key (the first 52 bits of a SHA-256, which
stays exact in JavaScript clients) instead of being allocated: a push needs no counter call and an
index's references can name their children's ids without reading the children. Nothing resolves an
artifact by id (Harbor's paths take a digest or tag), so the id only has to be stable and unique in
practice; a re-pushed artifact gets its old id back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.scans import ReportSummary

COSIGN_SIGNATURE = "signature.cosign"
NOTATION_SIGNATURE = "signature.notation"
HARBOR_SBOM = "harbor.sbom"
SUBJECT_ACCESSORY = "subject.accessory"
# Harbor shows these only under their subject, never as artifacts of their own in a list.
HIDDEN_ACCESSORIES = frozenset({COSIGN_SIGNATURE, NOTATION_SIGNATURE, HARBOR_SBOM})
# The longest list the filtered (`q`) path reads into memory before it refuses.
FILTER_MAX = 20_000

_COSIGN_CONFIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_NOTATION = "application/vnd.cncf.notary.signature"
_HARBOR_SBOM = "application/vnd.goharbor.harbor.sbom.v1"
_COSIGN_TAG = re.compile(r"(sha256)-([0-9a-f]{64})\.sig")


def accessory_type(artifact_type: str | None, config_media_type: str | None) -> str:
    """The accessory type of a manifest with a `subject`, as Harbor's subject middleware decides it."""
    resolved = artifact_type or config_media_type
    if config_media_type == _COSIGN_CONFIG or resolved in (_COSIGN_CONFIG, _SIGSTORE_BUNDLE):
        return COSIGN_SIGNATURE
    if resolved == _NOTATION:
        return NOTATION_SIGNATURE
    if resolved == _HARBOR_SBOM:
        return HARBOR_SBOM
    return SUBJECT_ACCESSORY


def cosign_subject(tag: str | None) -> str | None:
    """The digest a cosign legacy signature tag (`sha256-<hex>.sig`) signs, else None."""
    match = _COSIGN_TAG.fullmatch(tag or "")
    return f"{match.group(1)}:{match.group(2)}" if match else None


def cosign_tag(digest: str) -> str | None:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}.sig" if algorithm == "sha256" else None


def artifact_id(repository: str, digest: str) -> int:
    return _id(f"artifact {repository}@{digest}")


def tag_id(repository: str, tag: str) -> int:
    return _id(f"tag {repository}:{tag}")


def _id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:7], "big") >> 4 or 1


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """What a push records besides the manifest itself (computed by the service)."""

    kind: str
    total_size: int
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    icon: str = ""
    accessory_type: str | None = None

    @property
    def listed(self) -> bool:
        return self.accessory_type not in HIDDEN_ACCESSORIES


@dataclass(frozen=True, slots=True)
class Artifact:
    """An artifact as read back: the manifest row's artifact view."""

    repository: str
    digest: str
    manifest_media_type: str
    media_type: str
    artifact_type: str | None
    kind: str
    size: int
    push_time: int
    pull_time: int | None = None
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    icon: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)
    accessory_type: str | None = None
    subject: str | None = None
    children: tuple[str, ...] = ()
    # An index's `manifests` entries (platform, annotations, urls), when its body is at hand.
    descriptors: tuple[dict[str, Any], ...] = ()
    # Its scan state, one summary per report MIME type (`core/scans.py` ReportSummary), read with
    # the row: the API's scan_overview and the pull gate need no other read.
    scans: dict[str, ReportSummary] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return artifact_id(self.repository, self.digest)


@dataclass(frozen=True, slots=True)
class Tag:
    repository: str
    name: str
    digest: str
    push_time: int
    pull_time: int | None = None

    @property
    def id(self) -> int:
        return tag_id(self.repository, self.name)


@dataclass(frozen=True, slots=True)
class Accessory:
    subject_repository: str
    subject: str
    digest: str
    type: str
    size: int
    push_time: int
