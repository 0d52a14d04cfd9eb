"""HTTP helpers for the functional tests: a registry client, pushes, manifest builders, assertions.

`Registry` wraps `werkzeug.test.Client(ChaliceWSGI(app))`; every call goes through the same WSGI
adapter and API Gateway event shape as `make serve`, with moto (`mock_aws`) behind the app.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from werkzeug.test import Client, TestResponse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MIB = 1024 * 1024


REGION = "us-east-1"
# What every in-process suite runs with: fake AWS credentials (nothing can reach real AWS), a fixed
# region, no X-Ray or metrics output, quiet logs. Suites add their table, bucket and secrets.
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def canonical(document: dict[str, Any]) -> bytes:
    """A stable JSON encoding (the registry stores whatever bytes it gets; tests want them fixed)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def descriptor(media_type: str, data: bytes, *, artifact_type: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if artifact_type is not None:
        out["artifactType"] = artifact_type
    out.update(extra)
    return out


def image_manifest(
    config: dict[str, Any],
    layers: Iterable[dict[str, Any]] = (),
    *,
    media_type: str | None = OCI_MANIFEST,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "config": config, "layers": list(layers)}
    if media_type is not None:
        doc["mediaType"] = media_type
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


def index_manifest(
    manifests: Iterable[dict[str, Any]],
    *,
    media_type: str | None = OCI_INDEX,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "manifests": list(manifests)}
    if media_type is not None:
        doc["mediaType"] = media_type
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The OCI error envelope with `code`; returns the first error entry."""
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    body = response.get_json(force=True, silent=True)
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], response.get_data()
    entry = body["errors"][0]
    assert entry["code"] == code, entry
    assert isinstance(entry.get("message"), str) and entry["message"], entry
    return entry


def range_end(response: TestResponse) -> int:
    """The inclusive end of a `Range: 0-N` upload header."""
    value = response.headers["Range"]
    first, _, last = value.partition("-")
    assert first == "0", value
    return int(last)


class Registry:
    """A thin HTTP client for /v2 plus the multi-request flows tests repeat."""

    def __init__(self, client: Client, auth: tuple[str, str] | None = None) -> None:
        self.http = client
        self.auth = auth

    def clone(self) -> Registry:
        """Another client (own cookie jar and state) for the same app and credentials."""
        return Registry(Client(self.http.application), self.auth)

    # Raw verbs (paths are absolute, e.g. "/v2/"). `auth=None` sends no credentials.

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("auth", self.auth)
        return self.http.open(path, method=method, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    # Uploads.

    def start_upload(self, repo: str, **query: str) -> TestResponse:
        response = self.post(f"/v2/{repo}/blobs/uploads/", query_string=query or None)
        assert response.status_code == 202, (response.status_code, response.get_data()[:500])
        return response

    def patch_chunk(self, location: str, data: bytes, start: int | None = None) -> TestResponse:
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
        return self.patch(location, data=data, headers=headers)

    def finish_upload(self, location: str, digest: str, data: bytes = b"", start: int | None = None) -> TestResponse:
        headers = {"Content-Type": "application/octet-stream"}
        if data and start is not None:
            headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
        return self.put(location, query_string={"digest": digest}, data=data, headers=headers)

    def push_blob(self, repo: str, data: bytes, *, algorithm: str = "sha256", session: bool = False) -> str:
        """Single-request push (POST ?digest= with the body); with `session`, POST then PUT ?digest=."""
        digest = digest_of(data, algorithm)
        if session:
            location = self.start_upload(repo).headers["Location"]
            response = self.finish_upload(location, digest, data)
        else:
            response = self.post(
                f"/v2/{repo}/blobs/uploads/",
                query_string={"digest": digest},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        assert response.status_code == 201, (response.status_code, response.get_data()[:500])
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    def push_blob_chunked(
        self,
        repo: str,
        data: bytes,
        chunk_size: int,
        *,
        algorithm: str = "sha256",
        upload_algorithm: str | None = None,
        content_range: bool = True,
    ) -> str:
        """POST, PATCH every chunk (with Content-Range unless told not to), PUT ?digest= empty."""
        query = {"digest-algorithm": upload_algorithm} if upload_algorithm else {}
        location = self.start_upload(repo, **query).headers["Location"]
        offset = 0
        while offset < len(data):
            chunk = data[offset : offset + chunk_size]
            response = self.patch_chunk(location, chunk, offset if content_range else None)
            assert response.status_code == 202, (response.status_code, response.get_data()[:500])
            offset += len(chunk)
            assert range_end(response) == offset - 1
            location = response.headers["Location"]
        digest = digest_of(data, algorithm)
        response = self.finish_upload(location, digest)
        assert response.status_code == 201, (response.status_code, response.get_data()[:500])
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    # Manifests.

    def put_manifest(
        self, repo: str, reference: str, manifest: dict[str, Any] | bytes, media_type: str | None = None
    ) -> TestResponse:
        body = manifest if isinstance(manifest, bytes) else canonical(manifest)
        if media_type is None and isinstance(manifest, dict):
            media_type = manifest.get("mediaType")
        headers = {"Content-Type": media_type} if media_type else {}
        return self.put(f"/v2/{repo}/manifests/{reference}", data=body, headers=headers)

    def push_manifest(
        self, repo: str, reference: str, manifest: dict[str, Any] | bytes, media_type: str | None = None
    ) -> str:
        response = self.put_manifest(repo, reference, manifest, media_type)
        assert response.status_code == 201, (response.status_code, response.get_data()[:500])
        return response.headers["Docker-Content-Digest"]

    def push_image(
        self,
        repo: str,
        reference: str | None = None,
        *,
        layers: int = 1,
        media_type: str = OCI_MANIFEST,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        config_media_type: str | None = None,
        annotations: dict[str, str] | None = None,
        seed: bytes | None = None,
    ) -> tuple[str, bytes]:
        """Push a config, `layers` layers and an image manifest; returns (digest, manifest bytes)."""
        docker = media_type == DOCKER_MANIFEST
        seed = seed if seed is not None else os.urandom(8)
        config_bytes = canonical({"architecture": "amd64", "os": "linux", "seed": seed.hex()})
        self.push_blob(repo, config_bytes)
        layer_descriptors = []
        for i in range(layers):
            layer = seed + bytes([i]) * 64
            self.push_blob(repo, layer)
            layer_descriptors.append(descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer))
        config_type = config_media_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
        document = image_manifest(
            descriptor(config_type, config_bytes),
            layer_descriptors,
            media_type=media_type,
            artifact_type=artifact_type,
            subject=subject,
            annotations=annotations,
        )
        body = canonical(document)
        digest = self.push_manifest(repo, reference or digest_of(body), body, media_type)
        assert digest == digest_of(body)
        return digest, body

    def tags(self, repo: str, **query: str) -> TestResponse:
        return self.get(f"/v2/{repo}/tags/list", query_string=query or None)

    def tag_names(self, repo: str) -> list[str]:
        response = self.tags(repo)
        if response.status_code == 404:
            return []
        assert response.status_code == 200, response.get_data()
        return list(response.get_json()["tags"])


def run_together(source: Any, count: int, work: Any) -> list[Any]:
    """Run `work(index, client)` in `count` threads released at the same moment; return the results.

    `source` is any test client with `clone()` (each thread gets its own)."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        client = source.clone()
        barrier.wait(timeout=30)
        return work(index, client)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def serialise_aws_calls(monkeypatch: Any) -> None:
    """Make moto handle one AWS call at a time, as real DynamoDB and S3 are atomic per call.

    moto itself is not thread-safe (a Query can iterate a table another thread writes to); the
    app's requests still interleave between calls, the granularity its conditions are built for."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


@contextmanager
def dynamodb_calls(thread_name: str | None = None) -> Iterator[list[str]]:
    """The DynamoDB operations this thread makes inside the block: what a request costs (an event
    subscriber's writes on its worker thread are not counted). With `thread_name`, those of the
    threads whose name contains it instead (a server's request threads)."""
    calls: list[str] = []
    with _dynamodb_spy(thread_name, lambda operation, _params: calls.append(operation)):
        yield calls


@contextmanager
def dynamodb_requests(thread_name: str | None = None) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """As `dynamodb_calls`, with each call's parameters: (operation, parameters)."""
    requests: list[tuple[str, dict[str, Any]]] = []
    with _dynamodb_spy(thread_name, lambda operation, params: requests.append((operation, params))):
        yield requests


@contextmanager
def _dynamodb_spy(thread_name: str | None, record: Callable[[str, dict[str, Any]], None]) -> Iterator[None]:
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    me = threading.get_ident()

    def counted(client: Any, operation: str, params: Any) -> Any:
        mine = threading.get_ident() == me if thread_name is None else thread_name in threading.current_thread().name
        if client.meta.service_model.service_name == "dynamodb" and mine:
            record(operation, params)
        return original(client, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
