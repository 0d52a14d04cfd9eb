"""GET /api/v2.0/icons/{digest}: icons of pushed artifacts, over HTTP on moto."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.functional.helpers import (
    MIB,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    canonical,
    descriptor,
    digest_of,
    image_manifest,
)
from tests.unit.processors.support import GIF, JPEG, png

ICON = "io.goharbor.artifact.v1alpha1.icon"
MODEL_CONFIG = "application/vnd.caicloud.model.config.v1alpha1+json"
REPO = "library/model"


def _drain() -> None:
    from chalicelib.wiring import services

    assert services().events.drain()


def _push_model(registry: Any, icon: bytes | None, *, tag: str = "v1", annotate: bool = True) -> dict[str, Any]:
    """A user-defined artifact: config, weights and (optionally) an icon layer."""
    config = canonical({"name": "resnet", "metrics": {"acc": 0.9}})
    weights = b"weights " + tag.encode()
    registry.push_blob(REPO, config)
    registry.push_blob(REPO, weights)
    layers = [descriptor("application/tar+gzip", weights)]
    if icon is not None:
        registry.push_blob(REPO, icon)
        layers.insert(0, descriptor("image/png", icon, **({"annotations": {ICON: ""}} if annotate else {})))
    registry.push_manifest(REPO, tag, image_manifest(descriptor(MODEL_CONFIG, config), layers))
    _drain()
    return {"icon": digest_of(icon) if icon is not None else None}


def _get_icon(registry: Any, digest: str, **kwargs: Any) -> Any:
    return registry.get(f"/api/v2.0/icons/{digest}", **kwargs)


@pytest.mark.parametrize(
    ("image", "content_type"), [(png(16, 16), "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif")]
)
def test_the_icon_of_a_pushed_artifact_is_served_as_base64(registry: Any, image: bytes, content_type: str) -> None:
    pushed = _push_model(registry, image)

    response = _get_icon(registry, pushed["icon"])

    assert response.status_code == 200, response.get_data()[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"content-type": content_type, "content": base64.b64encode(image).decode()}


def test_icons_need_no_login_but_bad_credentials_are_refused(registry: Any) -> None:
    pushed = _push_model(registry, png())

    assert _get_icon(registry, pushed["icon"], auth=None).status_code == 200
    assert_error(_get_icon(registry, pushed["icon"], auth=("admin", "wrong-password")), 401, "UNAUTHORIZED")
    assert_error(_get_icon(registry, pushed["icon"], auth=("nobody", "x")), 401, "UNAUTHORIZED")
    bearer = _get_icon(registry, pushed["icon"], auth=None, headers={"Authorization": "Bearer abc.def.ghi"})
    assert_error(bearer, 401, "UNAUTHORIZED")


def test_a_png_blob_that_is_no_artifacts_icon_is_not_served(registry: Any) -> None:
    image = png(8, 8)
    # The same PNG pushed as an ordinary layer (no icon annotation) of a model, and of an image.
    _push_model(registry, image, annotate=False)
    config = canonical({"architecture": "amd64", "os": "linux"})
    registry.push_blob("library/app", config)
    registry.push_blob("library/app", image)
    doc = image_manifest(descriptor("application/vnd.oci.image.config.v1+json", config), [descriptor(OCI_LAYER, image)])
    registry.push_manifest("library/app", "v1", doc)
    _drain()

    assert_error(_get_icon(registry, digest_of(image)), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "bad_icon",
    [b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.7 not an image", png(padding=2 * MIB)],
    ids=["svg", "pdf", "two-mib-png"],
)
def test_an_icon_layer_that_is_not_a_small_image_is_never_served(registry: Any, bad_icon: bytes) -> None:
    pushed = _push_model(registry, bad_icon)

    # The push itself succeeded (an icon problem never fails a push) ...
    assert registry.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    # ... but the blob is not an icon.
    assert_error(_get_icon(registry, pushed["icon"]), 404, "NOT_FOUND")


def test_an_unknown_digest_is_not_found(registry: Any) -> None:
    assert_error(_get_icon(registry, digest_of(b"never pushed")), 404, "NOT_FOUND")
    assert_error(_get_icon(registry, "sha512:" + "a" * 128), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:xyz",
        "notadigest",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha256:" + "a" * 5000,
        "%00",
        "..",
    ],
)
def test_a_malformed_digest_is_a_bad_request(registry: Any, bad: str) -> None:
    entry = assert_error(_get_icon(registry, bad), 400, "BAD_REQUEST")
    assert len(json.dumps(entry)) < 1000


def test_an_encoded_digest_is_decoded(registry: Any) -> None:
    pushed = _push_model(registry, png())
    assert _get_icon(registry, pushed["icon"].replace(":", "%3A")).status_code == 200


def test_an_icon_whose_blob_garbage_collection_claimed_is_gone(registry: Any) -> None:
    pushed = _push_model(registry, png())
    registry.dynamodb.update_item(
        TableName=registry.table,
        Key={"pk": {"S": f"BLOB#{pushed['icon']}"}, "sk": {"S": "BLOB"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "deleting"}},
    )
    assert_error(_get_icon(registry, pushed["icon"]), 404, "NOT_FOUND")


def test_the_icon_survives_a_second_artifact_and_query_junk(registry: Any) -> None:
    image = png(4, 4)
    first = _push_model(registry, image, tag="v1")
    _push_model(registry, image, tag="v2")
    response = registry.get(f"/api/v2.0/icons/{first['icon']}", query_string={"page_size": "999999999", "q": "(("})
    assert response.status_code == 200
    assert base64.b64decode(response.get_json()["content"]) == image


def test_harbors_built_in_icon_digests_are_served_without_storage(registry: Any) -> None:
    image_icon = "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06"

    response = _get_icon(registry, image_icon, auth=None)

    assert response.status_code == 200
    body = response.get_json()
    assert body["content-type"] == "image/png"
    assert base64.b64decode(body["content"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert registry.object_keys() == []


def test_an_icon_layer_that_understates_its_size_is_still_refused(registry: Any) -> None:
    big = png(padding=2 * MIB)
    config = canonical({"name": "liar"})
    for blob in (config, big):
        registry.push_blob(REPO, blob)
    icon_layer = {**descriptor("image/png", big), "size": 100, "annotations": {ICON: ""}}
    registry.push_manifest(REPO, "liar", image_manifest(descriptor(MODEL_CONFIG, config), [icon_layer]))
    _drain()

    assert_error(_get_icon(registry, digest_of(big)), 404, "NOT_FOUND")


def test_any_user_may_read_an_icon_and_a_request_body_is_ignored(registry: Any) -> None:
    """Harbor checks no permission on icons: a user with no role anywhere reads them too."""
    pushed = _push_model(registry, png())
    created = registry.post(
        "/api/v2.0/users",
        json={"username": "no-role", "password": "No-role-pass1", "email": "n@example.com", "realname": "n"},
    )
    assert created.status_code == 201, created.get_data()[:300]

    as_user = _get_icon(registry, pushed["icon"], auth=("no-role", "No-role-pass1"))
    with_body = _get_icon(registry, pushed["icon"], data=b'{"unterminated": ', content_type="application/json")

    assert as_user.status_code == 200
    assert with_body.status_code == 200
    assert as_user.get_json() == with_body.get_json()
