"""processors: IMAGE (image manifests and indexes), dispatch and the never-raise contract."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import BadRequest, NotFound
from chalicelib.processors import abstract, addition
from chalicelib.processors.base import CONFIG_MAX_BYTES, EXTRA_ATTRS_MAX_BYTES
from tests.unit.processors.support import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MIB,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Blobs,
    desc,
    digest_of,
    index,
    manifest,
    to_json,
)

IMAGE_CONFIG = {
    "created": "2026-11-01T10:00:00.123456789Z",
    "architecture": "arm64",
    "os": "linux",
    "config": {
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["/app"],
        "Labels": {"maintainer": "label-maintainer"},
        "WorkingDir": "",
        "Hostname": "docker-only-field",
        "ArgsEscaped": False,
    },
    "history": [
        {"created": "2026-11-01T09:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /", "empty_layer": False},
        {"created_by": 'CMD ["/app"]', "empty_layer": True, "comment": "", "junk": 1},
        "not an entry",
    ],
    "rootfs": {"type": "layers", "diff_ids": []},
}


def _image(config: dict | bytes = IMAGE_CONFIG, *, media_type: str = OCI_MANIFEST, config_type: str = OCI_CONFIG):
    blobs = Blobs()
    data = config if isinstance(config, bytes) else to_json(config)
    blobs.add(data)
    layer = b"layer-bytes"
    blobs.add(layer)
    parsed, body = manifest(desc(config_type, data), [desc(OCI_LAYER, layer)], media_type=media_type)
    return parsed, body, blobs


@pytest.mark.parametrize(("media_type", "config_type"), [(OCI_MANIFEST, OCI_CONFIG), (DOCKER_MANIFEST, DOCKER_CONFIG)])
def test_image_manifest_takes_harbor_attributes_from_the_config(media_type: str, config_type: str) -> None:
    parsed, body, blobs = _image(media_type=media_type, config_type=config_type)

    result = abstract(parsed, body, blobs)

    assert result.type == "IMAGE"
    assert result.extra_attrs == {
        "created": "2026-11-01T10:00:00.123456789Z",
        "architecture": "arm64",
        "os": "linux",
        "author": "label-maintainer",
        # Only the OCI ImageConfig fields, and none of the empty ones.
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/app"], "Labels": {"maintainer": "label-maintainer"}},
    }
    assert result.icon is None
    assert result.additions == ("build_history",)
    # Only the config was read, with the config bound; layers are never touched.
    assert blobs.reads == [(parsed.config.digest, CONFIG_MAX_BYTES)]


def test_author_prefers_the_config_then_the_oci_authors_label() -> None:
    labels = {"maintainer": "m", "org.opencontainers.image.authors": "oci-author"}
    config = {**IMAGE_CONFIG, "config": {"Labels": labels}}
    assert abstract(*_image(config)).extra_attrs["author"] == "oci-author"
    assert abstract(*_image({**config, "author": "explicit"})).extra_attrs["author"] == "explicit"
    assert abstract(*_image({"architecture": "amd64"})).extra_attrs == {
        "created": None, "architecture": "amd64", "os": "", "author": "", "config": {}
    }  # fmt: skip


def test_build_history_is_the_config_history_as_json() -> None:
    parsed, body, blobs = _image()

    result = addition("build_history", parsed, body, blobs)

    assert result.content_type == "application/json; charset=utf-8"
    assert json.loads(result.content) == [
        {"created": "2026-11-01T09:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
        {"created_by": 'CMD ["/app"]', "empty_layer": True},
    ]
    # Harbor's addition names are upper case on its side; any case is accepted.
    assert addition("BUILD_HISTORY", parsed, body, blobs).content == result.content


def test_image_without_history_has_an_empty_build_history() -> None:
    parsed, body, blobs = _image({"architecture": "amd64", "history": "not a list"})
    assert json.loads(addition("build_history", parsed, body, blobs).content) == []


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_an_index_is_an_image_without_attributes_or_additions(media_type: str) -> None:
    child = desc(OCI_MANIFEST, b"child", platform={"architecture": "amd64", "os": "linux"})
    parsed, body = index([child], media_type=media_type)
    blobs = Blobs()

    result = abstract(parsed, body, blobs)

    assert (result.type, result.extra_attrs, result.icon, result.additions) == ("IMAGE", {}, None, ())
    assert blobs.reads == []
    with pytest.raises(BadRequest):
        addition("build_history", parsed, body, blobs)


def test_empty_config_blob_is_not_read() -> None:
    parsed, body = manifest(desc(OCI_CONFIG, b""), [])
    blobs = Blobs()
    assert abstract(parsed, body, blobs).extra_attrs["architecture"] == ""
    assert blobs.reads == []


@pytest.mark.parametrize(
    "config",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"a string"',
        b'{"architecture": NaN}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b"",
    ],
    ids=["invalid", "array", "string", "nan", "binary", "deep", "empty-bytes"],
)
def test_a_bad_config_costs_the_attributes_never_the_call(config: bytes) -> None:
    blobs = Blobs()
    blobs.add(config)
    parsed, body = manifest(desc(OCI_CONFIG, config, size=max(len(config), 1)), [])

    result = abstract(parsed, body, blobs)

    assert (result.type, result.extra_attrs, result.additions) == ("IMAGE", {}, ("build_history",))
    with pytest.raises(NotFound):
        addition("build_history", parsed, body, blobs)


def test_a_missing_config_blob_costs_the_attributes() -> None:
    parsed, body = manifest(desc(OCI_CONFIG, b'{"os": "linux"}'), [])
    assert abstract(parsed, body, Blobs()).extra_attrs == {}


def test_a_config_declared_too_big_is_not_read_at_all() -> None:
    data = to_json(IMAGE_CONFIG)
    blobs = Blobs()
    blobs.add(data)
    parsed, body = manifest(desc(OCI_CONFIG, data, size=CONFIG_MAX_BYTES + 1), [])

    assert abstract(parsed, body, blobs).extra_attrs == {}
    assert blobs.reads == []


def test_a_reader_that_ignores_its_bound_is_still_bounded() -> None:
    big = b'{"os": "' + b"x" * (2 * MIB) + b'"}'
    parsed, body = manifest(desc(OCI_CONFIG, big, size=10), [])
    assert abstract(parsed, body, lambda _digest, _max: big).extra_attrs == {}


def test_a_reader_that_raises_anything_costs_the_attributes() -> None:
    parsed, body = manifest(desc(OCI_CONFIG, b"{}"), [])

    def broken(_digest: str, _max: int) -> bytes:
        raise RuntimeError("S3 is down")

    assert abstract(parsed, body, broken).extra_attrs == {}


def test_oversized_attributes_lose_their_largest_keys() -> None:
    labels = {f"label{i}": "v" * 100 for i in range(2000)}  # ~230 KB of labels, under the config bound
    parsed, body, blobs = _image({**IMAGE_CONFIG, "config": {"Labels": labels, "Cmd": ["/app"]}})

    attrs = abstract(parsed, body, blobs).extra_attrs

    assert len(json.dumps(attrs)) <= EXTRA_ATTRS_MAX_BYTES
    assert "config" not in attrs
    assert attrs["architecture"] == "arm64"


@pytest.mark.parametrize("name", ["values.yaml", "readme.md", "dependencies", "sbom", "nope", "", "x" * 10_000])
def test_unsupported_additions_are_bad_requests(name: str) -> None:
    parsed, body, blobs = _image()
    with pytest.raises(BadRequest) as caught:
        addition(name, parsed, body, blobs)
    assert len(caught.value.message) < 200


def test_dispatch_uses_the_config_media_type_not_the_manifest_one() -> None:
    data = to_json(IMAGE_CONFIG)
    blobs = Blobs()
    blobs.add(data)
    parsed, body = manifest(desc(DOCKER_CONFIG, data), [], media_type=OCI_MANIFEST)
    assert abstract(parsed, body, blobs).type == "IMAGE"
    assert digest_of(body) == parsed.digest


def test_reader_errors_do_not_leak_into_the_not_found_message() -> None:
    parsed, body, _ = _image()

    def broken(_digest: str, _max: int) -> bytes:
        raise RuntimeError("arn:aws:s3:::internal-bucket-name")

    with pytest.raises(NotFound) as caught:
        addition("build_history", parsed, body, broken)
    assert "internal-bucket-name" not in caught.value.message
    assert parsed.config.digest in caught.value.message
