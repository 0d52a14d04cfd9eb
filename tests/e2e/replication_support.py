"""Helpers shared by the remote-registry, copy and replication end-to-end modules: the egress-allowed
client, images pushed with it (a one-layer image; a signed multi-arch index), and Harbor's
/api/v2.0 replication calls against a `RegistryServer`."""

from __future__ import annotations

import ipaddress
import json
import os
import time
from typing import Any

from chalicelib.adapters.egress import EgressPolicy, EgressSession
from chalicelib.adapters.registry.auth import BasicCredentials, StaticCredentials
from chalicelib.adapters.registry.client import ClientOptions, Manifest, RegistryClient

from .support import ADMIN, API, OCI_INDEX, OCI_MANIFEST, RegistryServer, sha256

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
ENDED = {"Succeed", "Failed", "Stopped"}


# The remote-registry client, allowed to reach 127.0.0.0/8.


def session(allow: bool = True) -> EgressSession:
    return EgressSession(EgressPolicy(LOOPBACK if allow else []), 10)


class Sleeps(list[float]):
    """Stands in for time.sleep: records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(url: str, creds: tuple[str, str] | None = None, **options: Any) -> RegistryClient:
    basic = BasicCredentials(*creds) if creds else None
    sleep = options.pop("sleep", Sleeps())
    return RegistryClient(url, StaticCredentials(basic), session(), options=ClientOptions(**options), sleep=sleep)


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def push_image(c: RegistryClient, repo: str, tag: str, layer: bytes) -> Manifest:
    """A one-layer OCI image pushed with the client (monolithic uploads)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": tag}).encode()
    for blob in (config, layer):
        if c.blob_exists(repo, sha256(blob)) is None:
            c.push_blob(repo, sha256(blob), len(blob), blob)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": len(layer)}
        ],
    }
    data = json.dumps(doc).encode()
    manifest = Manifest(OCI_MANIFEST, sha256(data), data)
    c.push_manifest(repo, tag, manifest)
    return manifest


def put(c: RegistryClient, repo: str, ref: str, media_type: str, doc: dict[str, Any]) -> Manifest:
    data = json.dumps(doc).encode()
    manifest = Manifest(media_type, sha256(data), data)
    c.push_manifest(repo, ref, manifest)
    return manifest


def seed_multiarch(c: RegistryClient, repo: str) -> tuple[Manifest, Manifest, bytes]:
    """An index of two platform images sharing a large layer, and a signature of the index."""
    shared = os.urandom(6 * 1024 * 1024)
    c.push_blob(repo, sha256(shared), len(shared), shared)
    children = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux"}).encode()
        own = f"{arch} layer".encode() * 500
        for blob in (config, own):
            c.push_blob(repo, sha256(blob), len(blob), blob)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [
                descriptor("application/vnd.oci.image.layer.v1.tar+gzip", shared),
                descriptor("application/vnd.oci.image.layer.v1.tar", own),
            ],
        }
        data = json.dumps(doc).encode()
        image = Manifest(OCI_MANIFEST, sha256(data), data)
        c.push_manifest(repo, image.digest, image)
        children.append({**descriptor(OCI_MANIFEST, data), "platform": {"architecture": arch, "os": "linux"}})
    index = put(c, repo, "v1", OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    empty = b"{}"
    c.push_blob(repo, sha256(empty), 2, empty)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE,
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", empty)],
        "subject": {"mediaType": OCI_INDEX, "digest": index.digest, "size": len(index.data)},
        "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="},
    }
    data = json.dumps(doc).encode()
    signature = Manifest(OCI_MANIFEST, sha256(data), data)
    c.push_manifest(repo, signature.digest, signature)
    return index, signature, shared


def local(server: RegistryServer) -> RegistryClient:
    """The client on a `make serve` registry, as its admin."""
    return client(server.url, (ADMIN, server.password))


# Harbor's /api/v2.0 as the admin of a `RegistryServer`.


def api(server: RegistryServer, method: str, path: str, body: Any = None) -> Any:
    response = server.http(method, API + path, json=body)
    assert response.status_code < 300, (method, path, response.status_code, response.text[:500])
    return response


def created_id(response: Any) -> int:
    return int(response.headers["Location"].rsplit("/", 1)[1])


def project(server: RegistryServer, name: str) -> None:
    response = server.http("POST", f"{API}/projects", json={"project_name": name, "metadata": {"public": "false"}})
    assert response.status_code in (201, 409), response.text


def run(server: RegistryServer, policy_id: int, timeout: float = 180) -> dict[str, Any]:
    execution_id = created_id(api(server, "POST", "/replication/executions", {"policy_id": policy_id}))
    return wait(server, execution_id, timeout)


def wait(server: RegistryServer, execution_id: int, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api(server, "GET", f"/replication/executions/{execution_id}").json()
        if found["status"] in ENDED:
            return dict(found)
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not end")


def replicate(server: RegistryServer, policy: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Create the policy, run it once and check it succeeded: (policy id, execution, its tasks)."""
    policy_id = created_id(api(server, "POST", "/replication/policies", policy))
    done = run(server, policy_id)
    assert done["status"] == "Succeed", (done, task_logs(server, done["id"]))
    return policy_id, done, api(server, "GET", f"/replication/executions/{done['id']}/tasks").json()


def task_logs(server: RegistryServer, execution_id: int) -> str:
    tasks = api(server, "GET", f"/replication/executions/{execution_id}/tasks").json()
    path = f"/replication/executions/{execution_id}/tasks"
    return "\n".join(api(server, "GET", f"{path}/{t['id']}/log").text for t in tasks)
