"""Manifests over HTTP: push, pull, negotiation, validation and delete, for every supported type."""

from __future__ import annotations

import json

import pytest

from tests.functional.helpers import (
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
    random_bytes,
)

REPO = "library/manifests"
KINDS = ["oci-image", "oci-index", "docker-image", "docker-list"]


def _build(registry, kind: str, repo: str = REPO) -> tuple[bytes, str]:
    """Push what a manifest of `kind` needs and return (body, media type), not yet pushed."""
    if kind in ("oci-image", "docker-image"):
        media_type = OCI_MANIFEST if kind == "oci-image" else DOCKER_MANIFEST
        config = canonical({"os": "linux", "architecture": "arm64", "nonce": random_bytes(4).hex()})
        layer = random_bytes(256)
        registry.push_blob(repo, config)
        registry.push_blob(repo, layer)
        layer_type = OCI_LAYER if kind == "oci-image" else DOCKER_LAYER
        config_type = OCI_CONFIG if kind == "oci-image" else "application/vnd.docker.container.image.v1+json"
        doc = image_manifest(descriptor(config_type, config), [descriptor(layer_type, layer)], media_type=media_type)
        # Indented, unsorted JSON: the registry must keep the exact bytes.
        return json.dumps(doc, indent=3).encode(), media_type
    child_type = OCI_MANIFEST if kind == "oci-index" else DOCKER_MANIFEST
    children = []
    for arch in ("amd64", "arm64"):
        _, child = registry.push_image(repo, media_type=child_type)
        children.append(descriptor(child_type, child, platform={"architecture": arch, "os": "linux"}))
    media_type = OCI_INDEX if kind == "oci-index" else DOCKER_LIST
    return json.dumps(index_manifest(children, media_type=media_type), indent=1).encode(), media_type


def _assert_pulled(response, body: bytes, media_type: str, *, head: bool = False) -> None:
    assert response.status_code == 200, response.get_data()[:300]
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert response.headers["Content-Length"] == str(len(body))
    assert response.get_data() == (b"" if head else body)


@pytest.mark.parametrize("kind", KINDS)
def test_push_and_pull_by_tag_and_digest(registry, kind):
    body, media_type = _build(registry, kind)
    digest = digest_of(body)
    response = registry.put_manifest(REPO, "v1", body, media_type)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"] == f"/v2/{REPO}/manifests/{digest}"
    assert "OCI-Subject" not in response.headers
    for reference in ("v1", digest):
        _assert_pulled(registry.get(f"/v2/{REPO}/manifests/{reference}"), body, media_type)
        _assert_pulled(registry.head(f"/v2/{REPO}/manifests/{reference}"), body, media_type, head=True)
    assert "v1" in registry.tag_names(REPO)


@pytest.mark.parametrize("kind", KINDS)
def test_push_by_digest(registry, kind):
    body, media_type = _build(registry, kind)
    digest = digest_of(body)
    response = registry.put_manifest(REPO, digest, body, media_type)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    _assert_pulled(registry.get(f"/v2/{REPO}/manifests/{digest}"), body, media_type)


@pytest.mark.parametrize("kind", KINDS)
def test_delete_by_digest_removes_manifest_and_tags(registry, kind):
    body, media_type = _build(registry, kind)
    digest = registry.push_manifest(REPO, "one", body, media_type)
    registry.push_manifest(REPO, "two", body, media_type)
    other, _ = registry.push_image(REPO, "keep")
    response = registry.delete(f"/v2/{REPO}/manifests/{digest}")
    assert response.status_code == 202
    for reference in (digest, "one", "two"):
        assert_error(registry.get(f"/v2/{REPO}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert registry.head(f"/v2/{REPO}/manifests/{reference}").status_code == 404
    tags = registry.tag_names(REPO)
    assert "one" not in tags and "two" not in tags
    assert "keep" in tags
    assert registry.get(f"/v2/{REPO}/manifests/{other}").status_code == 200
    assert_error(registry.delete(f"/v2/{REPO}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_tag_removes_only_the_tag(registry):
    digest, body = registry.push_image(REPO, "v1")
    registry.push_manifest(REPO, "v2", body, OCI_MANIFEST)
    response = registry.delete(f"/v2/{REPO}/manifests/v1")
    assert response.status_code == 202
    assert_error(registry.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert registry.get(f"/v2/{REPO}/manifests/{digest}").get_data() == body
    assert registry.get(f"/v2/{REPO}/manifests/v2").status_code == 200
    assert registry.tag_names(REPO) == ["v2"]
    assert_error(registry.delete(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_delete_last_manifest_empties_tags(registry):
    digest, _ = registry.push_image(REPO, "only")
    assert registry.delete(f"/v2/{REPO}/manifests/{digest}").status_code == 202
    response = registry.tags(REPO)
    if response.status_code == 200:
        assert response.get_json()["tags"] == []
    else:
        assert_error(response, 404, "NAME_UNKNOWN")


def test_delete_unknown_manifest(registry):
    registry.push_image(REPO, "v1")
    assert_error(registry.delete(f"/v2/{REPO}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(registry.delete(f"/v2/{REPO}/manifests/{digest_of(b'x')}"), 404, "MANIFEST_UNKNOWN")


def test_get_unknown_manifest(registry):
    assert_error(registry.get(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")
    assert_error(registry.get(f"/v2/{REPO}/manifests/{digest_of(b'x')}"), 404, "MANIFEST_UNKNOWN")
    assert registry.head(f"/v2/{REPO}/manifests/latest").status_code == 404
    registry.push_image(REPO, "v1")
    assert_error(registry.get(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")


def test_manifest_of_another_repository_is_not_visible(registry):
    digest, _ = registry.push_image("library/team-one", "v1")
    assert_error(registry.get(f"/v2/library/team-two/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
    assert_error(registry.get("/v2/library/team-two/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_tag_moves_to_the_latest_push(registry):
    first, first_body = registry.push_image(REPO, "latest")
    second, second_body = registry.push_image(REPO, "latest")
    assert first != second
    response = registry.get(f"/v2/{REPO}/manifests/latest")
    assert response.headers["Docker-Content-Digest"] == second
    assert response.get_data() == second_body
    assert registry.get(f"/v2/{REPO}/manifests/{first}").get_data() == first_body
    assert registry.tag_names(REPO) == ["latest"]
    # Deleting the old digest does not take the moved tag with it.
    assert registry.delete(f"/v2/{REPO}/manifests/{first}").status_code == 202
    assert registry.get(f"/v2/{REPO}/manifests/latest").headers["Docker-Content-Digest"] == second


def test_repush_same_manifest_is_idempotent(registry):
    digest, body = registry.push_image(REPO, "v1")
    assert registry.push_manifest(REPO, "v1", body, OCI_MANIFEST) == digest
    assert registry.tag_names(REPO) == ["v1"]


def _padded(base: bytes, size: int | None = None, *, extra: int = 0) -> bytes:
    """`base` with an embedded `data` field in its config descriptor, `size` bytes long in all."""
    import base64

    doc = json.loads(base)
    doc["config"]["data"] = ""
    target = size if size is not None else len(json.dumps(doc).encode()) + extra
    missing = target - len(json.dumps(doc).encode())
    raw = base64.b64encode(b"\0" * (missing // 4 * 3)).decode()
    doc["config"]["data"] = raw + "=" * (missing - len(raw))  # pad to the exact length
    body = json.dumps(doc).encode()
    assert len(body) == target
    return body


def test_large_manifest_stored_out_of_line_is_byte_exact(registry):
    """Bodies above the inline limit (~300 kB) live in S3 and still come back byte for byte."""
    _, base = registry.push_image(REPO, "base")
    body = _padded(base, extra=400_000)
    digest = registry.push_manifest(REPO, "big", body, OCI_MANIFEST)
    _assert_pulled(registry.get(f"/v2/{REPO}/manifests/big"), body, OCI_MANIFEST)
    _assert_pulled(registry.head(f"/v2/{REPO}/manifests/{digest}"), body, OCI_MANIFEST, head=True)


def test_manifest_at_the_size_limit_is_accepted(registry):
    _, base = registry.push_image(REPO, "base")
    body = _padded(base, 4 * 1024 * 1024)
    assert registry.put_manifest(REPO, "edge", body, OCI_MANIFEST).status_code == 201
    assert registry.get(f"/v2/{REPO}/manifests/edge").get_data() == body


def test_manifest_with_large_annotations(registry):
    """Annotations are part of a valid manifest; 500 kB of them is well under the 4 MiB limit."""
    _, base = registry.push_image(REPO, "base")
    doc = json.loads(base)
    doc["annotations"] = {f"org.example.k{i}": "v" * 1000 for i in range(500)}
    body = json.dumps(doc).encode()
    response = registry.put_manifest(REPO, "annotated", body, OCI_MANIFEST)
    assert response.status_code == 201, response.get_data()[:300]
    _assert_pulled(registry.get(f"/v2/{REPO}/manifests/annotated"), body, OCI_MANIFEST)


def test_manifest_with_large_referrer_annotations(registry):
    """The same for an artifact with a subject (its annotations also feed the referrers list)."""
    subject, subject_body = registry.push_image(REPO, "base")
    config = b"{}"
    registry.push_blob(REPO, config)
    doc = image_manifest(
        descriptor("application/vnd.oci.empty.v1+json", config),
        [],
        artifact_type="application/vnd.example.sbom",
        subject=descriptor(OCI_MANIFEST, subject_body),
        annotations={f"org.example.k{i}": "v" * 1000 for i in range(500)},
    )
    body = canonical(doc)
    response = registry.put_manifest(REPO, digest_of(body), body)
    assert response.status_code == 201, response.get_data()[:300]
    referrers = registry.get(f"/v2/{REPO}/referrers/{subject}")
    assert referrers.status_code == 200
    assert [d["digest"] for d in referrers.get_json()["manifests"]] == [digest_of(body)]


def test_manifest_over_4_mib_is_413(registry):
    _, base = registry.push_image(REPO, "base")
    doc = json.loads(base)
    doc["annotations"] = {"pad": "x" * (4 * 1024 * 1024)}
    body = json.dumps(doc).encode()
    response = registry.put_manifest(REPO, "huge", body, OCI_MANIFEST)
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["code"] in ("SIZE_INVALID", "MANIFEST_INVALID")
    assert_error(registry.get(f"/v2/{REPO}/manifests/{digest_of(body)}"), 404, "MANIFEST_UNKNOWN")
    assert registry.tag_names(REPO) == ["base"]


def test_subject_pointing_to_missing_manifest_is_accepted(registry):
    missing = digest_of(b"a subject not pushed yet")
    subject = {"mediaType": OCI_MANIFEST, "digest": missing, "size": 24}
    config = b"{}"
    registry.push_blob(REPO, config)
    doc = image_manifest(
        descriptor("application/vnd.oci.empty.v1+json", config),
        [],
        artifact_type="application/vnd.example.sig",
        subject=subject,
    )
    response = registry.put_manifest(REPO, digest_of(canonical(doc)), doc)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == missing


def test_content_type_with_parameters(registry):
    body, media_type = _build(registry, "oci-image")
    response = registry.put_manifest(REPO, "v1", body, f"{media_type}; charset=utf-8")
    assert response.status_code == 201
    assert registry.get(f"/v2/{REPO}/manifests/v1").headers["Content-Type"] == media_type


def test_media_type_sniffed_without_content_type(registry):
    body, _ = _build(registry, "oci-image")
    doc = json.loads(body)
    del doc["mediaType"]
    plain = json.dumps(doc).encode()
    response = registry.put(f"/v2/{REPO}/manifests/v1", data=plain)
    assert response.status_code == 201
    assert registry.get(f"/v2/{REPO}/manifests/v1").headers["Content-Type"] == OCI_MANIFEST


def test_foreign_layers_need_not_exist(registry):
    config = canonical({"os": "windows"})
    registry.push_blob(REPO, config)
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": digest_of(b"windows base layer"),
        "size": 18,
        "urls": ["https://example.invalid/layer"],
    }
    doc = image_manifest(
        descriptor("application/vnd.docker.container.image.v1+json", config), [foreign], media_type=DOCKER_MANIFEST
    )
    assert registry.put_manifest(REPO, "win", doc).status_code == 201


class TestRejectedPushes:
    """Each failed push answers the right code and leaves nothing visible."""

    @pytest.fixture(autouse=True)
    def _existing(self, registry):
        self.digest, self.body = registry.push_image(REPO, "existing")

    def _assert_nothing_visible(self, registry, body: bytes | None = None, tag: str = "v1") -> None:
        assert registry.tag_names(REPO) == ["existing"]
        assert_error(registry.get(f"/v2/{REPO}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
        if body is not None:
            assert_error(registry.get(f"/v2/{REPO}/manifests/{digest_of(body)}"), 404, "MANIFEST_UNKNOWN")

    def test_schema1_by_content_type(self, registry):
        body = canonical({"schemaVersion": 1, "name": REPO, "tag": "v1", "fsLayers": [], "history": []})
        assert_error(registry.put_manifest(REPO, "v1", body, DOCKER_SCHEMA1), 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry, body)

    def test_schema1_by_body(self, registry):
        body = canonical({"schemaVersion": 1, "name": REPO, "tag": "v1", "fsLayers": [], "history": []})
        assert_error(registry.put_manifest(REPO, "v1", body, "application/json"), 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry, body)

    @pytest.mark.parametrize("body", [b"not json", b"{", b"[]", b'"string"', b"", b"\xff\xfe"])
    def test_invalid_json(self, registry, body):
        assert_error(registry.put_manifest(REPO, "v1", body, OCI_MANIFEST), 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry)

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d.pop("config"),
            lambda d: d.pop("layers"),
            lambda d: d.update(layers="nope"),
            lambda d: d.update(schemaVersion=3),
            lambda d: d["config"].update(digest="sha256:short"),
            lambda d: d["config"].update(size=-1),
            lambda d: d["layers"][0].pop("mediaType"),
        ],
        ids=["no-config", "no-layers", "layers-not-list", "schema-3", "bad-digest", "negative-size", "no-media-type"],
    )
    def test_schema_violations(self, registry, mutate):
        doc = json.loads(self.body)
        mutate(doc)
        body = canonical(doc)
        assert_error(registry.put_manifest(REPO, "v1", body, OCI_MANIFEST), 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry, body)

    def test_content_type_disagrees_with_media_type(self, registry):
        assert_error(registry.put_manifest(REPO, "v1", self.body, DOCKER_MANIFEST), 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry)

    def test_unknown_content_type(self, registry):
        doc = json.loads(self.body)
        del doc["mediaType"]
        body = canonical(doc)
        response = registry.put_manifest(REPO, "v1", body, "application/vnd.example.unknown+json")
        assert_error(response, 400, "MANIFEST_INVALID")
        self._assert_nothing_visible(registry, body)

    def test_missing_layer(self, registry):
        config = canonical({"os": "linux"})
        registry.push_blob(REPO, config)
        doc = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, b"never pushed")])
        body = canonical(doc)
        entry = assert_error(registry.put_manifest(REPO, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
        assert digest_of(b"never pushed") in json.dumps(entry.get("detail"))
        self._assert_nothing_visible(registry, body)

    def test_missing_config(self, registry):
        layer = random_bytes(40)
        registry.push_blob(REPO, layer)
        doc = image_manifest(descriptor(OCI_CONFIG, b"{missing}"), [descriptor(OCI_LAYER, layer)])
        body = canonical(doc)
        assert_error(registry.put_manifest(REPO, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
        self._assert_nothing_visible(registry, body)

    def test_layer_only_in_another_repository(self, registry):
        _, body = registry.push_image("library/team-elsewhere", "v1")
        assert_error(registry.put_manifest(REPO, "v1", body, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
        self._assert_nothing_visible(registry, body)

    def test_layer_deleted_before_push(self, registry):
        doc = json.loads(self.body)
        layer = random_bytes(64)
        layer_digest = registry.push_blob(REPO, layer)
        doc["layers"].append(descriptor(OCI_LAYER, layer))
        assert registry.delete(f"/v2/{REPO}/blobs/{layer_digest}").status_code == 202
        body = canonical(doc)
        assert_error(registry.put_manifest(REPO, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
        self._assert_nothing_visible(registry, body)

    def test_index_with_missing_child(self, registry):
        missing = canonical(image_manifest(descriptor(OCI_CONFIG, b"{}"), []))
        doc = index_manifest([descriptor(OCI_MANIFEST, self.body), descriptor(OCI_MANIFEST, missing)])
        body = canonical(doc)
        assert_error(registry.put_manifest(REPO, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
        self._assert_nothing_visible(registry, body)

    def test_docker_list_with_missing_child(self, registry):
        missing = canonical(image_manifest(descriptor(OCI_CONFIG, b"{}"), [], media_type=DOCKER_MANIFEST))
        doc = index_manifest([descriptor(DOCKER_MANIFEST, missing)], media_type=DOCKER_LIST)
        body = canonical(doc)
        assert_error(registry.put_manifest(REPO, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
        self._assert_nothing_visible(registry, body)

    def test_put_by_digest_with_mismatching_body(self, registry):
        doc = json.loads(self.body)
        doc["annotations"] = {"changed": "yes"}
        body = canonical(doc)
        response = registry.put_manifest(REPO, self.digest, body, OCI_MANIFEST)
        assert_error(response, 400, "DIGEST_INVALID")
        self._assert_nothing_visible(registry, body)
        assert registry.get(f"/v2/{REPO}/manifests/{self.digest}").get_data() == self.body

    def test_put_by_malformed_digest(self, registry):
        response = registry.put_manifest(REPO, "sha256:1234", self.body, OCI_MANIFEST)
        assert response.status_code == 400
        assert response.get_json()["errors"][0]["code"] in ("DIGEST_INVALID", "MANIFEST_INVALID", "TAG_INVALID")
        assert registry.tag_names(REPO) == ["existing"]

    @pytest.mark.parametrize("tag", ["-bad", ".bad", "a" * 129, "bad+tag", "bad/tag", "ünïcode", "newline\n"])
    def test_invalid_tag(self, registry, tag):
        from urllib.parse import quote

        response = registry.put_manifest(REPO, quote(tag, safe=""), self.body, OCI_MANIFEST)
        if "/" in tag:
            # `a/b` as a reference is another route (or an unknown endpoint): never a stored tag.
            assert response.status_code in (400, 404, 405)
        else:
            assert_error(response, 400, "TAG_INVALID")
        assert registry.tag_names(REPO) == ["existing"]

    def test_longest_valid_tag(self, registry):
        tag = "_" + "a" * 127
        assert registry.put_manifest(REPO, tag, self.body, OCI_MANIFEST).status_code == 201
        assert registry.get(f"/v2/{REPO}/manifests/{tag}").status_code == 200


class TestAcceptNegotiation:
    @pytest.fixture(autouse=True)
    def _pushed(self, registry):
        self.digest, self.body = registry.push_image(REPO, "oci")
        self.docker_digest, self.docker_body = registry.push_image(REPO, "docker", media_type=DOCKER_MANIFEST)

    @pytest.mark.parametrize("reference", ["oci", "digest"])
    def test_docker_only_accept_on_oci_manifest_is_404(self, registry, reference):
        ref = self.digest if reference == "digest" else "oci"
        accept = f"{DOCKER_MANIFEST}, {DOCKER_LIST}"
        response = registry.get(f"/v2/{REPO}/manifests/{ref}", headers={"Accept": accept})
        assert_error(response, 404, "MANIFEST_UNKNOWN")
        assert registry.head(f"/v2/{REPO}/manifests/{ref}", headers={"Accept": accept}).status_code == 404

    def test_oci_only_accept_on_docker_manifest_is_404(self, registry):
        response = registry.get(f"/v2/{REPO}/manifests/docker", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        assert_error(response, 404, "MANIFEST_UNKNOWN")

    def test_no_accept_returns_the_manifest(self, registry):
        _assert_pulled(registry.get(f"/v2/{REPO}/manifests/oci"), self.body, OCI_MANIFEST)
        _assert_pulled(registry.get(f"/v2/{REPO}/manifests/docker"), self.docker_body, DOCKER_MANIFEST)

    @pytest.mark.parametrize(
        "accept",
        [
            OCI_MANIFEST,
            f"{DOCKER_MANIFEST}, {OCI_MANIFEST}",
            f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5",
            "*/*",
            f"{DOCKER_MANIFEST}, */*;q=0.1",
        ],
    )
    def test_matching_accept(self, registry, accept):
        _assert_pulled(registry.get(f"/v2/{REPO}/manifests/oci", headers={"Accept": accept}), self.body, OCI_MANIFEST)

    def test_multiple_accept_headers(self, registry):
        headers = [("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)]
        response = registry.get(f"/v2/{REPO}/manifests/oci", headers=headers)
        _assert_pulled(response, self.body, OCI_MANIFEST)


@pytest.mark.parametrize(
    "body",
    [
        b'{"schemaVersion":2,"annotations":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"schemaVersion":2,"config":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
        b'{"schemaVersion":' + b"2" * 5000 + b',"config":{},"layers":[]}',
        b'{"schemaVersion":2e999,"config":{},"layers":[]}',
        b'{"schemaVersion":2,"mediaType":"\\ud800"}',
        b'{"schemaVersion":2,' + b'"x":[' * 70 + b"]" * 70 + b"}",
    ],
    ids=["deep array", "deep object", "5000 digits", "infinite", "lone surrogate", "depth 71"],
)
def test_hostile_manifest_json_is_manifest_invalid(registry, body):
    """Each of these was a 500 (RecursionError, the int-conversion limit) or got past the parser."""
    response = registry.put_manifest("library/hostile", "v1", body, OCI_MANIFEST)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(registry.get("/v2/library/hostile/manifests/v1"), 404, "MANIFEST_UNKNOWN")
