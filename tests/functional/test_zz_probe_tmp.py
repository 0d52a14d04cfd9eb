import time
from tests.functional.helpers import OCI_CONFIG, OCI_LAYER, canonical, descriptor, digest_of, image_manifest


def test_probe_many_layers(registry):
    repo = "library/many"
    config = b"{}"
    registry.push_blob(repo, config)
    layers = [f"layer-{i}".encode() for i in range(6500)]
    now = int(time.time())
    items = []
    for data in layers:
        d = digest_of(data)
        items.append({"pk": {"S": f"REPO#{repo}"}, "sk": {"S": f"BLOB#{d}"}, "size": {"N": str(len(data))}, "created_at": {"N": str(now)}})
        items.append({"pk": {"S": f"BLOB#{d}"}, "sk": {"S": "BLOB"}, "size": {"N": str(len(data))}, "state": {"S": "none"}, "version": {"N": "0"}, "created_at": {"N": str(now)}, "updated_at": {"N": str(now)}})
    for i in range(0, len(items), 25):
        registry.dynamodb.batch_write_item(RequestItems={registry.table: [{"PutRequest": {"Item": it}} for it in items[i:i+25]]})
    doc = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, l) for l in layers])
    body = canonical(doc)
    print("body", len(body))
    t = time.time()
    r = registry.put_manifest(repo, "v1", body)
    print(r.status_code, r.get_data()[:300], time.time() - t)
    assert r.status_code == 201
