"""Manifests that list more digests than fit in one DynamoDB item (an oras push of a directory)."""

from __future__ import annotations

import hashlib

from tests.functional.helpers import OCI_MANIFEST, canonical, descriptor, digest_of, image_manifest

REPO = "library/many"
LAYERS = 60
# Room for ~13 digests in the row, so 60 layers take the read-from-body path that ~540 would in production.
ROW_REFS_MAX = 1000


def _seed_blobs(registry, digests: list[str], size: int) -> None:
    """Link many blobs into the repository and count them in the project without pushing bytes
    (the manifest path only reads these rows, and touches the blob rows for GC; pushing each blob
    would only slow the test down)."""
    items = []
    for d in digests:
        blob = {"size": {"N": str(size)}, "state": {"S": "none"}, "version": {"N": "0"}, "created_at": {"N": "0"}}
        items.append({"pk": {"S": f"BLOB#{d}"}, "sk": {"S": "BLOB"}, **blob, "updated_at": {"N": "0"}})
        items.append(
            {"pk": {"S": f"REPO#{REPO}"}, "sk": {"S": f"BLOB#{d}"}, "size": {"N": str(size)}, "created_at": {"N": "0"}}
        )
        items.append(
            {
                "pk": {"S": "PROJECT#library"},
                "sk": {"S": f"BLOB#{d}"},
                "size": {"N": str(size)},
                "created_at": {"N": "0"},
            }
        )
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        registry.dynamodb.batch_write_item(RequestItems={registry.table: batch})


def test_manifest_with_more_layers_than_its_row_holds_round_trips_and_deletes(registry):
    registry.configure(manifest_row_refs_max_bytes=ROW_REFS_MAX)
    config = b'{"architecture":"amd64","os":"linux"}'
    registry.push_blob(REPO, config)
    layers = [f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(LAYERS)]
    _seed_blobs(registry, layers, 10)
    doc = image_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 10} for d in layers],
    )
    body = canonical(doc)
    assert len(body) < 4 * 1024 * 1024

    response = registry.put_manifest(REPO, "v1", body, OCI_MANIFEST)
    assert response.status_code == 201, response.get_data()[:300]
    got = registry.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200
    assert got.get_data() == body

    deleted = registry.delete(f"/v2/{REPO}/manifests/{digest_of(body)}")
    assert deleted.status_code == 202
    assert registry.get(f"/v2/{REPO}/manifests/v1").status_code == 404
    # The references were read back from the body: nothing of the manifest stays counted.
    counted = registry.dynamodb.get_item(
        TableName=registry.table, Key={"pk": {"S": "PROJECT#library"}, "sk": {"S": f"BLOB#{layers[0]}"}}
    )
    assert "Item" not in counted
