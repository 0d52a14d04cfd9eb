"""References that name no possible manifest: reads and deletes are 404, pushes stay 400.

The OCI distribution conformance suite reads `/v2/<name>/manifests/.INVALID_MANIFEST_NAME` and
expects 404 MANIFEST_UNKNOWN: a reference that is neither a valid tag nor a valid digest cannot
name a stored manifest, so it is unknown, not malformed. A push with such a reference is still
refused as malformed, and leaves nothing behind.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.functional.helpers import OCI_MANIFEST, assert_error

REPO = "library/references"
UNNAMEABLE = [
    ".INVALID_MANIFEST_NAME",
    "-dash-first",
    "a" * 129,
    "bad+tag",
    "sha256:1234",
    "sha256:" + "Z" * 64,
    "md5:abc",
    ":",
]


@pytest.mark.parametrize("reference", UNNAMEABLE)
def test_reads_and_deletes_of_an_unnameable_reference_are_manifest_unknown(registry, reference):
    registry.push_image(REPO, "v1")
    path = f"/v2/{REPO}/manifests/{quote(reference, safe='')}"
    assert_error(registry.get(path), 404, "MANIFEST_UNKNOWN")
    head = registry.head(path)
    assert head.status_code == 404, head.status_code
    assert head.get_data() == b""
    assert_error(registry.delete(path), 404, "MANIFEST_UNKNOWN")
    assert registry.tag_names(REPO) == ["v1"]


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "bad+tag", "sha256:1234"])
def test_a_push_to_an_unnameable_reference_stays_400(registry, reference):
    _, body = registry.push_image(REPO, "v1")
    response = registry.put_manifest(REPO, quote(reference, safe=""), body, OCI_MANIFEST)
    assert response.status_code == 400, response.status_code
    assert response.get_json()["errors"][0]["code"] in ("TAG_INVALID", "DIGEST_INVALID", "MANIFEST_INVALID")
    assert registry.tag_names(REPO) == ["v1"]


def test_a_missing_valid_reference_is_still_manifest_unknown(registry):
    registry.push_image(REPO, "v1")
    assert_error(registry.get(f"/v2/{REPO}/manifests/v2"), 404, "MANIFEST_UNKNOWN")
    assert_error(registry.get(f"/v2/{REPO}/manifests/sha256:{'0' * 64}"), 404, "MANIFEST_UNKNOWN")
