"""core/manifest.py: parsing and media-type dispatch of pushed manifests (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json

import pytest

from chalicelib.core import mediatypes as mt
from chalicelib.core.manifest import ParsedManifest, index_descriptors, parse_manifest
from chalicelib.errors import ManifestInvalid


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = _digest(b"config")
LAYER1 = _digest(b"layer1")
LAYER2 = _digest(b"layer2")
CHILD1 = _digest(b"child1")
CHILD2 = _digest(b"child2")
SUBJECT = _digest(b"subject")
DIGEST = _digest(b"the manifest itself")


def _desc(media_type: str, digest: str, size: int = 10, **extra) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def _image(media_type: str | None = mt.OCI_MANIFEST, **extra) -> dict:
    doc = {
        "schemaVersion": 2,
        "config": _desc("application/vnd.oci.image.config.v1+json", CONFIG),
        "layers": [_desc("application/vnd.oci.image.layer.v1.tar+gzip", LAYER1), _desc("x/y", LAYER2)],
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    doc.update(extra)
    return doc


def _index(media_type: str | None = mt.OCI_INDEX, **extra) -> dict:
    doc = {"schemaVersion": 2, "manifests": [_desc(mt.OCI_MANIFEST, CHILD1), _desc(mt.OCI_MANIFEST, CHILD2)]}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc.update(extra)
    return doc


def _parse(doc, content_type: str | None = None) -> ParsedManifest:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_manifest(body, content_type, DIGEST)


def _invalid(doc, content_type: str | None = None) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as info:
        _parse(doc, content_type)
    assert info.value.code.name == "MANIFEST_INVALID"
    assert info.value.http_status == 400
    return info.value


class TestImageManifests:
    def test_oci_image(self):
        doc = _image(annotations={"a": "b"})
        body = json.dumps(doc).encode()
        parsed = parse_manifest(body, mt.OCI_MANIFEST, DIGEST)
        assert parsed.media_type == mt.OCI_MANIFEST
        assert parsed.digest == DIGEST
        assert parsed.size == len(body)
        assert parsed.blobs == (CONFIG, LAYER1, LAYER2)
        assert parsed.children == ()
        assert parsed.subject is None
        assert parsed.artifact_type is None
        assert parsed.config_media_type == "application/vnd.oci.image.config.v1+json"
        assert parsed.annotations == {"a": "b"}
        assert not parsed.is_index

    def test_docker_schema2(self):
        parsed = _parse(_image(mt.DOCKER_MANIFEST), mt.DOCKER_MANIFEST)
        assert parsed.media_type == mt.DOCKER_MANIFEST
        assert parsed.blobs == (CONFIG, LAYER1, LAYER2)

    def test_blobs_are_deduplicated_in_order(self):
        doc = _image()
        doc["layers"] = [_desc("l", LAYER2), _desc("l", LAYER1), _desc("l", LAYER2), _desc("l", CONFIG)]
        assert _parse(doc).blobs == (CONFIG, LAYER2, LAYER1)

    def test_empty_layers(self):
        assert _parse(_image(layers=[])).blobs == (CONFIG,)

    @pytest.mark.parametrize(
        "foreign",
        [
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ],
    )
    def test_foreign_layers_are_not_required(self, foreign):
        doc = _image()
        doc["layers"].append(_desc(foreign, _digest(b"foreign"), urls=["https://example.invalid/x"]))
        assert _parse(doc).blobs == (CONFIG, LAYER1, LAYER2)

    def test_subject_and_artifact_type(self):
        doc = _image(artifactType="application/vnd.example.sbom", subject=_desc(mt.OCI_MANIFEST, SUBJECT))
        parsed = _parse(doc)
        assert parsed.subject == SUBJECT
        assert parsed.artifact_type == "application/vnd.example.sbom"
        assert parsed.referrer_artifact_type == "application/vnd.example.sbom"

    def test_referrer_artifact_type_falls_back_to_config_media_type(self):
        doc = _image(subject=_desc(mt.OCI_MANIFEST, SUBJECT))
        doc["config"]["mediaType"] = "application/vnd.example.config"
        assert _parse(doc).referrer_artifact_type == "application/vnd.example.config"

    def test_unknown_fields_are_allowed(self):
        doc = _image(extra={"x": 1})
        doc["config"]["data"] = "e30="
        doc["layers"][0]["platform"] = {"os": "linux"}
        assert _parse(doc).blobs == (CONFIG, LAYER1, LAYER2)


class TestIndexes:
    def test_oci_index(self):
        parsed = _parse(_index(annotations={"k": "v"}), mt.OCI_INDEX)
        assert parsed.media_type == mt.OCI_INDEX
        assert parsed.is_index
        assert parsed.children == (CHILD1, CHILD2)
        assert parsed.blobs == ()
        assert parsed.annotations == {"k": "v"}
        assert parsed.config_media_type is None

    def test_docker_manifest_list(self):
        parsed = _parse(_index(mt.DOCKER_MANIFEST_LIST), mt.DOCKER_MANIFEST_LIST)
        assert parsed.media_type == mt.DOCKER_MANIFEST_LIST
        assert parsed.is_index
        assert parsed.children == (CHILD1, CHILD2)

    def test_children_are_deduplicated(self):
        doc = _index()
        doc["manifests"].append(_desc(mt.OCI_MANIFEST, CHILD1))
        assert _parse(doc).children == (CHILD1, CHILD2)

    def test_empty_index(self):
        assert _parse(_index(manifests=[])).children == ()

    def test_index_with_subject_and_artifact_type(self):
        parsed = _parse(_index(artifactType="application/vnd.example", subject=_desc(mt.OCI_MANIFEST, SUBJECT)))
        assert parsed.subject == SUBJECT
        assert parsed.referrer_artifact_type == "application/vnd.example"


class TestMediaTypeDispatch:
    @pytest.mark.parametrize("content_type", [None, "", "application/json", "application/octet-stream", "text/plain"])
    def test_generic_content_type_defers_to_the_body(self, content_type):
        assert _parse(_image(mt.DOCKER_MANIFEST), content_type).media_type == mt.DOCKER_MANIFEST
        assert _parse(_index(mt.DOCKER_MANIFEST_LIST), content_type).media_type == mt.DOCKER_MANIFEST_LIST

    def test_content_type_parameters_and_case_are_ignored(self):
        parsed = _parse(_image(), "Application/VND.OCI.image.manifest.v1+json; charset=utf-8")
        assert parsed.media_type == mt.OCI_MANIFEST

    def test_content_type_names_the_type_when_the_body_does_not(self):
        assert _parse(_image(None), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
        assert _parse(_index(None), mt.DOCKER_MANIFEST_LIST).media_type == mt.DOCKER_MANIFEST_LIST

    def test_sniffing_without_either(self):
        assert _parse(_image(None)).media_type == mt.OCI_MANIFEST
        assert _parse(_index(None)).media_type == mt.OCI_INDEX

    def test_sniffing_prefers_index(self):
        doc = _index(None)
        doc["config"] = _desc("c", CONFIG)
        assert _parse(doc).media_type == mt.OCI_INDEX

    def test_nothing_to_sniff(self):
        _invalid({"schemaVersion": 2})

    def test_content_type_and_media_type_disagree(self):
        _invalid(_image(mt.OCI_MANIFEST), mt.DOCKER_MANIFEST)
        _invalid(_index(mt.OCI_INDEX), mt.OCI_MANIFEST)

    @pytest.mark.parametrize("content_type", ["application/vnd.example+json", "image/png", mt.OCI_EMPTY])
    def test_unknown_content_type(self, content_type):
        _invalid(_image(None), content_type)

    @pytest.mark.parametrize("media_type", ["application/vnd.example+json", mt.OCI_EMPTY, ""])
    def test_unknown_declared_media_type(self, media_type):
        doc = _image(media_type)
        if media_type == "":
            # An empty mediaType declares nothing: sniffed.
            assert _parse(doc).media_type == mt.OCI_MANIFEST
        else:
            _invalid(doc)

    @pytest.mark.parametrize("media_type", [1, ["x"], {"a": "b"}, True])
    def test_media_type_must_be_a_string(self, media_type):
        _invalid(_image(media_type))

    def test_index_type_with_an_image_body(self):
        _invalid(_image(None), mt.OCI_INDEX)

    def test_image_type_with_an_index_body(self):
        _invalid(_index(None), mt.OCI_MANIFEST)


class TestRejected:
    @pytest.mark.parametrize("content_type", sorted(mt.SCHEMA1))
    def test_schema1_by_content_type(self, content_type):
        assert "schema1" in _invalid({"schemaVersion": 1, "fsLayers": []}, content_type).message

    @pytest.mark.parametrize("media_type", sorted(mt.SCHEMA1))
    def test_schema1_by_media_type(self, media_type):
        _invalid(_image(media_type))

    def test_schema1_by_version(self):
        _invalid({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": [], "history": []})

    @pytest.mark.parametrize("version", [0, 3, "2", 2.5, None])
    def test_other_schema_versions(self, version):
        _invalid(_image(schemaVersion=version))

    def test_missing_schema_version(self):
        doc = _image()
        del doc["schemaVersion"]
        _invalid(doc)

    @pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe\x00", b"[]", b"null", b"2", b'"s"'])
    def test_not_a_json_object(self, body):
        _invalid(body)

    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda d: d.pop("config"), id="no-config"),
            pytest.param(lambda d: d.pop("layers"), id="no-layers"),
            pytest.param(lambda d: d.update(layers={}), id="layers-object"),
            pytest.param(lambda d: d.update(config="x"), id="config-string"),
            pytest.param(lambda d: d["config"].pop("digest"), id="no-digest"),
            pytest.param(lambda d: d["config"].pop("size"), id="no-size"),
            pytest.param(lambda d: d["config"].update(size=-1), id="negative-size"),
            pytest.param(lambda d: d["config"].update(size="ten"), id="size-word"),
            pytest.param(lambda d: d["config"].update(size="10"), id="size-numeric-string"),
            pytest.param(lambda d: d["config"].update(size=10.5), id="size-float"),
            pytest.param(lambda d: d["config"].update(mediaType=""), id="empty-media-type"),
            pytest.param(lambda d: d["layers"][0].update(digest="sha256:abc"), id="short-digest"),
            pytest.param(lambda d: d["layers"][0].update(digest="md5:" + "a" * 32), id="md5-digest"),
            pytest.param(lambda d: d["layers"][0].update(digest=None), id="null-digest"),
            pytest.param(
                lambda d: d.update(subject={"mediaType": mt.OCI_MANIFEST, "digest": "bad", "size": 1}), id="bad-subject"
            ),
            pytest.param(lambda d: d.update(annotations={"k": 1}), id="annotation-not-string"),
        ],
    )
    def test_schema_violations_name_the_field(self, mutate):
        doc = _image()
        mutate(doc)
        error = _invalid(doc)
        assert isinstance(error.detail, list) and error.detail
        assert all({"loc", "msg"} <= set(entry) for entry in error.detail)

    def test_index_entry_with_bad_digest(self):
        doc = _index()
        doc["manifests"][0]["digest"] = "sha256:zz"
        _invalid(doc)

    def test_index_without_manifests_list(self):
        _invalid(_index(manifests="x"))


class TestIndexDescriptors:
    def test_entries_of_an_index(self):
        body = json.dumps(_index()).encode()
        assert [d["digest"] for d in index_descriptors(body)] == [CHILD1, CHILD2]

    def test_entries_without_a_string_digest_are_dropped(self):
        doc = _index()
        doc["manifests"] += [{"digest": 5}, "text", {"mediaType": "x"}]
        assert [d["digest"] for d in index_descriptors(json.dumps(doc).encode())] == [CHILD1, CHILD2]

    @pytest.mark.parametrize("body", [b"not json", b"\xff", b"[]", b"{}", b'{"manifests": null}', b'{"manifests": []}'])
    def test_anything_else_has_no_entries(self, body):
        assert index_descriptors(body) == []
