"""GET /v2/<name>/referrers/<digest>: the referrers API and the tag-schema fallback."""

from __future__ import annotations

import pytest

from tests.functional.helpers import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
)

REPO = "library/referrers"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
CUSTOM_CONFIG = "application/vnd.example.config.v1+json"


def _referrers(registry, digest: str, repo: str = REPO, **query: str):
    response = registry.get(f"/v2/{repo}/referrers/{digest}", query_string=query or None)
    assert response.status_code == 200, response.get_data()
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.get_json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response, body["manifests"]


def _artifact(registry, subject: dict, *, artifact_type=None, config_type=OCI_EMPTY, annotations=None, repo=REPO):
    config = b"{}" if config_type == OCI_EMPTY else canonical({"kind": config_type})
    registry.push_blob(repo, config)
    layer = canonical({"payload": artifact_type or config_type, "annotations": annotations})
    registry.push_blob(repo, layer)
    doc = image_manifest(
        descriptor(config_type, config),
        [descriptor("application/octet-stream", layer)],
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
    )
    body = canonical(doc)
    response = registry.put_manifest(repo, digest_of(body), body)
    assert response.status_code == 201, response.get_data()
    assert response.headers["OCI-Subject"] == subject["digest"]
    return digest_of(body), body


@pytest.fixture
def subject(registry):
    _, body = registry.push_image(REPO, "v1")
    return descriptor(OCI_MANIFEST, body)


def test_unknown_subject_gives_empty_index(registry, subject):
    response, manifests = _referrers(registry, digest_of(b"nothing refers to this"))
    assert manifests == []
    assert "OCI-Filters-Applied" not in response.headers


def test_unknown_repository_gives_empty_index(registry):
    _, manifests = _referrers(registry, digest_of(b"x"), repo="library/nothing-here")
    assert manifests == []


def test_subject_without_referrers(registry, subject):
    _, manifests = _referrers(registry, subject["digest"])
    assert manifests == []


def test_referrers_listed_with_descriptors(registry, subject):
    sbom, sbom_body = _artifact(registry, subject, artifact_type=SBOM, annotations={"org.example.kind": "sbom"})
    sig, sig_body = _artifact(registry, subject, config_type=CUSTOM_CONFIG)
    index_doc = index_manifest([], artifact_type=SIGNATURE, subject=subject)
    index_body = canonical(index_doc)
    response = registry.put_manifest(REPO, digest_of(index_body), index_body)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject["digest"]

    response, manifests = _referrers(registry, subject["digest"])
    assert "OCI-Filters-Applied" not in response.headers
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {sbom, sig, digest_of(index_body)}
    assert by_digest[sbom] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom,
        "size": len(sbom_body),
        "artifactType": SBOM,
        "annotations": {"org.example.kind": "sbom"},
    }
    # Without artifactType the config's media type stands in.
    assert by_digest[sig]["artifactType"] == CUSTOM_CONFIG
    assert by_digest[sig]["size"] == len(sig_body)
    assert "annotations" not in by_digest[sig]
    assert by_digest[digest_of(index_body)]["mediaType"] == OCI_INDEX
    assert by_digest[digest_of(index_body)]["artifactType"] == SIGNATURE


def test_artifact_type_filter(registry, subject):
    sbom, _ = _artifact(registry, subject, artifact_type=SBOM)
    _artifact(registry, subject, artifact_type=SIGNATURE)
    _artifact(registry, subject, config_type=CUSTOM_CONFIG)
    response, manifests = _referrers(registry, subject["digest"], artifactType=SBOM)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in manifests] == [sbom]
    response, manifests = _referrers(registry, subject["digest"], artifactType=CUSTOM_CONFIG)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert len(manifests) == 1
    response, manifests = _referrers(registry, subject["digest"], artifactType="application/vnd.none")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert manifests == []


def test_referrer_to_a_missing_subject_is_listed(registry):
    missing = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"pushed later"), "size": 12}
    sbom, _ = _artifact(registry, missing, artifact_type=SBOM)
    _, manifests = _referrers(registry, missing["digest"])
    assert [m["digest"] for m in manifests] == [sbom]


def test_referrers_are_per_repository(registry, subject):
    _artifact(registry, subject, artifact_type=SBOM)
    _, manifests = _referrers(registry, subject["digest"], repo="library/other")
    assert manifests == []


def test_deleted_referrer_disappears(registry, subject):
    sbom, _ = _artifact(registry, subject, artifact_type=SBOM)
    sig, _ = _artifact(registry, subject, artifact_type=SIGNATURE)
    assert registry.delete(f"/v2/{REPO}/manifests/{sbom}").status_code == 202
    _, manifests = _referrers(registry, subject["digest"])
    assert [m["digest"] for m in manifests] == [sig]


def test_referrer_pushed_by_tag(registry, subject):
    config = b"{}"
    registry.push_blob(REPO, config)
    doc = image_manifest(descriptor(OCI_EMPTY, config), [], artifact_type=SBOM, subject=subject)
    response = registry.put_manifest(REPO, "sbom-tag", doc)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject["digest"]
    _, manifests = _referrers(registry, subject["digest"])
    assert [m["digest"] for m in manifests] == [digest_of(canonical(doc))]


def test_tag_schema_fallback_index_is_reflected(registry, subject):
    """A client without the referrers API pushes `sha256-<hex>` listing its referrers."""
    config = b"{}"
    registry.push_blob(REPO, config)
    # An artifact pushed the old way: no `subject` field the registry could index.
    legacy_doc = image_manifest(descriptor(OCI_EMPTY, config), [], artifact_type=SIGNATURE)
    legacy_body = canonical(legacy_doc)
    legacy = registry.push_manifest(REPO, digest_of(legacy_body), legacy_body)
    entry = descriptor(OCI_MANIFEST, legacy_body, artifact_type=SIGNATURE, annotations={"org.example": "legacy"})
    fallback = index_manifest([entry])
    tag = subject["digest"].replace(":", "-")
    registry.push_manifest(REPO, tag, fallback)
    native, _ = _artifact(registry, subject, artifact_type=SBOM)

    _, manifests = _referrers(registry, subject["digest"])
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {legacy, native}
    assert by_digest[legacy] == {
        "mediaType": OCI_MANIFEST,
        "digest": legacy,
        "size": len(legacy_body),
        "artifactType": SIGNATURE,
        "annotations": {"org.example": "legacy"},
    }
    _, filtered = _referrers(registry, subject["digest"], artifactType=SIGNATURE)
    assert [m["digest"] for m in filtered] == [legacy]


def test_fallback_and_native_referrer_are_not_duplicated(registry, subject):
    native, native_body = _artifact(registry, subject, artifact_type=SBOM)
    fallback = index_manifest([descriptor(OCI_MANIFEST, native_body, artifact_type=SBOM)])
    registry.push_manifest(REPO, subject["digest"].replace(":", "-"), fallback)
    _, manifests = _referrers(registry, subject["digest"])
    assert [m["digest"] for m in manifests] == [native]


@pytest.mark.parametrize("digest", ["sha256:abc", "notadigest", "md5:" + "a" * 32, "sha256:" + "G" * 64])
def test_bad_digest(registry, digest):
    response = registry.get(f"/v2/{REPO}/referrers/{digest}")
    assert response.status_code == 400
    assert_error(response, 400, "DIGEST_INVALID")
