"""Harbor's accessory types, cosign's legacy tags and the derived integer ids."""

from __future__ import annotations

import pytest

from chalicelib.core.artifacts import (
    COSIGN_SIGNATURE,
    HARBOR_SBOM,
    NOTATION_SIGNATURE,
    SUBJECT_ACCESSORY,
    ArtifactRecord,
    accessory_type,
    artifact_id,
    cosign_subject,
    cosign_tag,
    tag_id,
)

HEX = "a" * 64


@pytest.mark.parametrize(
    ("artifact_type", "config", "expected"),
    [
        (None, "application/vnd.dev.cosign.artifact.sig.v1+json", COSIGN_SIGNATURE),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.oci.empty.v1+json", COSIGN_SIGNATURE),
        ("application/vnd.cncf.notary.signature", "application/vnd.oci.empty.v1+json", NOTATION_SIGNATURE),
        (None, "application/vnd.cncf.notary.signature", NOTATION_SIGNATURE),
        ("application/vnd.goharbor.harbor.sbom.v1", None, HARBOR_SBOM),
        ("application/spdx+json", "application/vnd.oci.empty.v1+json", SUBJECT_ACCESSORY),
        (None, "application/vnd.oci.image.config.v1+json", SUBJECT_ACCESSORY),
    ],
)
def test_accessory_type(artifact_type: str | None, config: str | None, expected: str) -> None:
    assert accessory_type(artifact_type, config) == expected


def test_only_signatures_and_sboms_hide_from_lists() -> None:
    assert not ArtifactRecord("IMAGE", 1, accessory_type=COSIGN_SIGNATURE).listed
    assert not ArtifactRecord("IMAGE", 1, accessory_type=HARBOR_SBOM).listed
    assert ArtifactRecord("IMAGE", 1, accessory_type=SUBJECT_ACCESSORY).listed
    assert ArtifactRecord("IMAGE", 1).listed


def test_cosign_legacy_tags() -> None:
    assert cosign_subject(f"sha256-{HEX}.sig") == f"sha256:{HEX}"
    assert cosign_tag(f"sha256:{HEX}") == f"sha256-{HEX}.sig"
    for tag in (None, "latest", f"sha256-{HEX}.att", f"sha256-{HEX[:-1]}.sig", f"sha512-{HEX}.sig", f"sha256-{HEX}"):
        assert cosign_subject(tag) is None
    assert cosign_tag(f"sha512:{HEX}{HEX}") is None


def test_ids_are_stable_distinct_and_safe_for_javascript() -> None:
    first = artifact_id("library/app", f"sha256:{HEX}")
    assert first == artifact_id("library/app", f"sha256:{HEX}")
    assert first != artifact_id("library/other", f"sha256:{HEX}")
    assert tag_id("library/app", "v1") != tag_id("library/app", "v2")
    ids = {artifact_id("library/app", f"sha256:{i:064x}") for i in range(10_000)}
    assert len(ids) == 10_000 and all(0 < i < 2**53 for i in ids)
