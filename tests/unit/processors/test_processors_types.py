"""processors: CNAB, WASM, SBOM, user-defined artifacts (skip-list, icon) and UNKNOWN."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import BadRequest, NotFound
from chalicelib.processors import abstract, addition
from chalicelib.processors.icon import ICON_MAX_BYTES, icon_type
from tests.unit.processors.support import (
    GIF,
    JPEG,
    MIB,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Blobs,
    desc,
    index,
    manifest,
    png,
    to_json,
)

ICON = "io.goharbor.artifact.v1alpha1.icon"
SKIP = "io.goharbor.artifact.v1alpha1.skip-list"
MODEL_CONFIG = "application/vnd.caicloud.model.config.v1alpha1+json"
MODEL = {"name": "resnet", "framework": "tensorflow", "metrics": {"accuracy": 0.9}, "git": {"sha": "abc"}}


# CNAB


def _cnab(blobs: Blobs, *, with_config: bool = True):
    config = to_json({"schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0"})
    blobs.add(config)
    config_manifest = to_json(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc("application/vnd.cnab.config.v1+json", config),
         "layers": []}
    )  # fmt: skip
    blobs.add(config_manifest)
    invocation = desc(OCI_MANIFEST, b"invocation image", annotations={"io.cnab.manifest.type": "invocation"})
    children = [invocation]
    if with_config:
        children.insert(0, desc(OCI_MANIFEST, config_manifest, annotations={"io.cnab.manifest.type": "config"}))
    return index(children, annotations={"org.opencontainers.artifactType": "application/vnd.cnab.manifest.v1"})


def test_cnab_attributes_come_from_the_config_manifest() -> None:
    blobs = Blobs()
    parsed, body = _cnab(blobs)

    result = abstract(parsed, body, blobs, blobs)

    assert result.type == "CNAB"
    assert result.extra_attrs == {"schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0"}
    assert result.additions == ()


def test_cnab_without_a_manifest_reader_or_config_child_has_no_attributes() -> None:
    blobs = Blobs()
    parsed, body = _cnab(blobs)
    assert abstract(parsed, body, blobs).extra_attrs == {}
    parsed, body = _cnab(blobs, with_config=False)
    assert abstract(parsed, body, blobs, blobs).extra_attrs == {}


def test_cnab_with_a_broken_config_manifest_has_no_attributes() -> None:
    blobs = Blobs()
    parsed, body = _cnab(blobs)
    config_child = parsed.manifests[0].digest
    blobs.data[config_child] = b'{"schemaVersion": 1}'
    result = abstract(parsed, body, blobs, blobs)
    assert (result.type, result.extra_attrs) == ("CNAB", {})


# WASM


def test_wasm_to_oci_artifacts() -> None:
    blobs = Blobs()
    config = b"{}"  # never read: a wasm-to-oci config carries nothing Harbor shows
    module = b"\x00asm\x01\x00\x00\x00"
    title = {"org.opencontainers.image.title": "m.wasm"}
    parsed, body = manifest(
        desc("application/vnd.wasm.config.v1+json", config),
        [desc("application/vnd.wasm.content.layer.v1+wasm", module, annotations=title)],
    )

    result = abstract(parsed, body, blobs)

    assert result.type == "WASM"
    assert result.extra_attrs == {
        "manifest.config.mediaType": "application/vnd.wasm.config.v1+json",
        "manifest.layers.mediaType": "application/vnd.wasm.content.layer.v1+wasm",
        "org.opencontainers.image.title": "m.wasm",
    }
    assert result.additions == ("build_history",)


def test_wasm_images_marked_by_annotation_get_image_attributes() -> None:
    blobs = Blobs()
    config = to_json({"architecture": "wasm", "os": "wasip1", "config": {"Labels": {"maintainer": "me"}},
                      "history": [{"created_by": "COPY app.wasm /"}]})  # fmt: skip
    blobs.add(config)
    parsed, body = manifest(desc(OCI_CONFIG, config), [], annotations={"run.oci.handler": "wasm"})

    result = abstract(parsed, body, blobs)

    assert result.type == "WASM"
    assert result.extra_attrs == {
        "manifest.config.mediaType": OCI_CONFIG,
        "created": None,
        "architecture": "wasm",
        "os": "wasip1",
        "author": "me",
        "config": {"Labels": {"maintainer": "me"}},
    }
    history = addition("build_history", parsed, body, blobs)
    assert json.loads(history.content) == [{"created_by": "COPY app.wasm /"}]


# SBOM


def _sbom(layers: int = 1):
    blobs = Blobs()
    config = to_json({"generator": "trivy"})
    blobs.add(config)
    documents = [to_json({"spdxVersion": "SPDX-2.3", "n": i}) for i in range(layers)]
    for document in documents:
        blobs.add(document)
    parsed, body = manifest(
        desc("application/vnd.goharbor.harbor.sbom.v1", config),
        [desc("application/spdx+json", d) for d in documents],
    )
    return parsed, body, blobs, documents


def test_sbom_type_attributes_and_addition() -> None:
    parsed, body, blobs, documents = _sbom()

    result = abstract(parsed, body, blobs)
    sbom = addition("sbom", parsed, body, blobs)

    assert (result.type, result.extra_attrs, result.additions) == ("SBOM", {"generator": "trivy"}, ("sbom",))
    assert (sbom.content_type, sbom.content) == ("application/vnd.goharbor.harbor.sbom.v1", documents[0])


def test_an_sbom_with_two_layers_has_no_sbom_addition() -> None:
    parsed, body, blobs, _ = _sbom(layers=2)
    with pytest.raises(NotFound):
        addition("sbom", parsed, body, blobs)


# User-defined artifacts


def _model(config: dict | None = None, *, icon: bytes | None = None, icon_size: int | None = None,
           config_annotations: dict | None = None, config_type: str = MODEL_CONFIG):  # fmt: skip
    blobs = Blobs()
    data = to_json(MODEL if config is None else config)
    blobs.add(data)
    model = b"model weights"
    blobs.add(model)
    layers = [desc("application/tar+gzip", model)]
    if icon is not None:
        blobs.add(icon)
        layers.insert(0, desc("image/png", icon, size=icon_size, annotations={ICON: ""}))
    config_desc = desc(config_type, data, **({"annotations": config_annotations} if config_annotations else {}))
    parsed, body = manifest(config_desc, layers)
    return parsed, body, blobs


def test_user_defined_type_comes_from_the_config_media_type() -> None:
    parsed, body, blobs = _model()

    result = abstract(parsed, body, blobs)

    assert (result.type, result.extra_attrs, result.icon, result.additions) == ("MODEL", MODEL, None, ())
    with pytest.raises(BadRequest):
        addition("readme.md", parsed, body, blobs)


def test_skip_list_removes_config_keys() -> None:
    parsed, body, blobs = _model(config_annotations={SKIP: "metrics, git,absent"})
    assert abstract(parsed, body, blobs).extra_attrs == {"name": "resnet", "framework": "tensorflow"}


@pytest.mark.parametrize("image", [png(), png(64, 64), JPEG, GIF, b"GIF87a" + b"\x00" * 20])
def test_an_image_icon_layer_becomes_the_icon(image: bytes) -> None:
    parsed, body, blobs = _model(icon=image)
    result = abstract(parsed, body, blobs)
    assert result.icon == parsed.layers[0].digest
    assert result.extra_attrs == MODEL


@pytest.mark.parametrize(
    "not_an_image",
    [b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\x89PNX\r\n\x1a\n", b"", b"%PDF-1.7", b"\xff\xd8"],
    ids=["svg", "almost-png", "empty", "pdf", "short-jpeg"],
)
def test_an_icon_layer_that_is_not_an_image_is_ignored(not_an_image: bytes) -> None:
    parsed, body, blobs = _model(icon=not_an_image)
    result = abstract(parsed, body, blobs)
    assert (result.type, result.icon, result.extra_attrs) == ("MODEL", None, MODEL)


def test_a_two_mib_icon_is_refused_without_reading_it() -> None:
    big = png(padding=2 * MIB)
    parsed, body, blobs = _model(icon=big)

    assert abstract(parsed, body, blobs).icon is None
    assert all(digest != parsed.layers[0].digest for digest, _ in blobs.reads)


def test_an_icon_that_lies_about_its_size_is_still_refused() -> None:
    big = png(padding=2 * MIB)
    parsed, body, blobs = _model(icon=big, icon_size=1000)
    assert abstract(parsed, body, blobs).icon is None
    assert (parsed.layers[0].digest, ICON_MAX_BYTES) in blobs.reads


def test_a_missing_icon_blob_costs_only_the_icon() -> None:
    parsed, body, blobs = _model(icon=png())
    del blobs.data[parsed.layers[0].digest]
    result = abstract(parsed, body, blobs)
    assert (result.icon, result.extra_attrs) == (None, MODEL)


def test_a_broken_config_costs_only_the_attributes() -> None:
    parsed, body, blobs = _model(icon=png())
    blobs.data[parsed.config.digest] = b"{broken"
    result = abstract(parsed, body, blobs)
    assert (result.type, result.extra_attrs, result.icon) == ("MODEL", {}, parsed.layers[0].digest)


@pytest.mark.parametrize(
    "config_type",
    [
        "application/octet-stream",
        "application/vnd.oci.empty.v1+json",
        "application/vnd.acme..config.v1+json",
        "application/vnd.acme.a/b.config.v1+json",
        "application/vnd.acme." + "x" * 100 + ".config.v1+json",
        "application/vnd.acme.model.config.v1+yaml",
    ],
    ids=["octet", "oci-empty", "empty-type", "slash", "long", "not-json"],
)
def test_other_media_types_are_unknown_without_attributes(config_type: str) -> None:
    parsed, body, blobs = _model(config_type=config_type, icon=png())

    result = abstract(parsed, body, blobs)

    assert (result.type, result.extra_attrs, result.additions) == ("UNKNOWN", {}, ())
    # Harbor reads the icon annotation for every artifact its default processor handles.
    assert result.icon == parsed.layers[0].digest
    assert [digest for digest, _ in blobs.reads] == [parsed.layers[0].digest]


def test_a_dotted_vendor_type_keeps_harbors_greedy_match() -> None:
    parsed, body, blobs = _model(config_type="application/vnd.acme.ml.model.config.v1+json")
    assert abstract(parsed, body, blobs).type == "ML.MODEL"


def test_an_index_with_a_user_defined_artifact_type_annotation() -> None:
    parsed, body = index([desc(OCI_MANIFEST, b"child")], annotations={"org.opencontainers.artifactType": MODEL_CONFIG})
    blobs = Blobs()
    result = abstract(parsed, body, blobs)
    assert (result.type, result.extra_attrs, result.icon) == ("MODEL", {}, None)
    assert blobs.reads == []


def test_an_oci_11_artifact_with_an_empty_config_is_unknown() -> None:
    blobs = Blobs()
    empty = b"{}"
    blobs.add(empty)
    parsed, body = manifest(
        desc("application/vnd.oci.empty.v1+json", empty), [desc(OCI_LAYER, b"x")],
        artifactType="application/vnd.example.sbom.v1",
    )  # fmt: skip
    assert abstract(parsed, body, blobs).type == "UNKNOWN"


def test_icon_sniffing() -> None:
    assert icon_type(png()) == "image/png"
    assert icon_type(JPEG) == "image/jpeg"
    assert icon_type(GIF) == "image/gif"
    assert icon_type(b"BM" + b"\x00" * 50) is None  # BMP is not accepted
    assert icon_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * ICON_MAX_BYTES) is None  # one byte over 1 MiB
    assert icon_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * (ICON_MAX_BYTES - 8)) == "image/png"


def test_index_of_images_is_unaffected_by_icons() -> None:
    parsed, body = index([desc(OCI_MANIFEST, b"c")], media_type=OCI_INDEX)
    assert abstract(parsed, body, Blobs()).icon is None


def test_display_icon_falls_back_to_harbors_built_in_digests() -> None:
    from chalicelib.processors.icon import BUILTIN_ICONS, display_icon

    image_icon = "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06"
    default_icon = "sha256:da834479c923584f4cbcdecc0dac61f32bef1d51e8aae598cf16bd154efab49f"
    assert display_icon("IMAGE", None) == image_icon
    assert display_icon("MODEL", None) == default_icon
    assert display_icon("UNKNOWN", None) == default_icon
    assert display_icon("IMAGE", "sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert {display_icon(t, None) for t in ("IMAGE", "CHART", "CNAB", "WASM", "X")} == set(BUILTIN_ICONS)


def test_built_in_icons_are_valid_50px_pngs() -> None:
    import struct
    import zlib

    from chalicelib.processors.icon import BUILTIN_ICONS, builtin_icon

    tiles = {digest: builtin_icon(digest) for digest in BUILTIN_ICONS}
    assert len(set(tiles.values())) == len(BUILTIN_ICONS)  # one tile per type
    for data in tiles.values():
        assert data is not None and icon_type(data) == "image/png"
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        assert (width, height, depth, colour) == (50, 50, 8, 2)
        idat_length = struct.unpack(">I", data[33:37])[0]
        assert data[37:41] == b"IDAT"
        assert len(zlib.decompress(data[41 : 41 + idat_length])) == 50 * (1 + 50 * 3)
    assert builtin_icon("sha256:" + "b" * 64) is None


def test_icon_alone_reads_only_the_icon_layer() -> None:
    from chalicelib.processors import icon

    parsed, body, blobs = _model(icon=GIF)
    assert icon(parsed, body, blobs) == parsed.layers[0].digest
    assert [digest for digest, _ in blobs.reads] == [parsed.layers[0].digest]
    chart_like, chart_body = manifest(desc("application/vnd.cncf.helm.config.v1+json", b"{}"), [])
    assert icon(chart_like, chart_body, blobs) is None
