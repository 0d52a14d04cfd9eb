"""oras-py against `make serve`: artifacts with custom media types, chunked uploads, referrers (OCI 1.1)."""

from __future__ import annotations

import json
import random
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import requests

from .support import (
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Layout,
    RegistryServer,
    canon,
    check,
    repo_name,
    require_tool,
    sha256,
)

# oras-py is imported by the tests that use it: at collection its jsonschema import alone compiles
# dozens of grammars, in every pytest-xdist worker.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_spec("oras") is None, reason="oras-py is in requirements-dev.txt; run `make install`"),
]

CONFIG_TYPE = "application/vnd.example.e2e.config.v1+json"
PAYLOAD_TYPE = "application/vnd.example.e2e.payload.v1"
SIGNATURE_TYPE = "application/vnd.example.e2e.signature.v1"
SBOM_TYPE = "application/vnd.example.e2e.sbom.v1"
INDEX_TYPE = "application/vnd.example.e2e.bundle.v1"
TITLE = "org.opencontainers.image.title"


@pytest.fixture
def client(registry: RegistryServer) -> Any:
    """A new client per test, i.e. per repository.

    The default "token" backend runs the Bearer token flow with these credentials when challenged, but
    oras-py 0.2.43 then keeps that one token for every later request and refreshes it only on a 403: after a
    401 `insufficient_scope` (distribution's and Harbor's answer for a token of another repository) it
    retries with the same token and fails. So one client never spans two repositories.
    """
    from oras.client import OrasClient

    c = OrasClient(hostname=registry.hostport, insecure=True)
    user, _, password = registry.creds.partition(":")
    c.auth.set_basic_auth(user, password)
    return c


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("oras-src")
    rng = random.Random("e2e-oras")
    content = {
        "notes.txt": b"an artifact pushed by oras-py in the e2e tests\n",
        "payload.bin": rng.randbytes(300_000),
        "config.json": canon({"e2e": "oras", "n": rng.getrandbits(32)}),
        "sbom.json": canon({"kind": "sbom", "packages": ["a", "b"]}),
        "empty.json": EMPTY_JSON,
    }
    for name, data in content.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in content}


def push_files(client: Any, target: str, files: dict[str, Path], **kw: Any) -> requests.Response:
    return client.push(
        target=target,
        files=[f"{files['notes.txt']}:text/plain", f"{files['payload.bin']}:{PAYLOAD_TYPE}"],
        manifest_config=f"{files['config.json']}:{CONFIG_TYPE}",
        manifest_annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        disable_path_validation=True,
        quiet=True,
        **kw,
    )


def assert_pushed(registry: RegistryServer, repo: str, tag: str, r: requests.Response) -> tuple[str, bytes]:
    """The PUT answered 201 with the digest of the bytes sent, and GET returns those bytes."""
    assert r.status_code == 201, f"PUT manifest: {r.status_code} {r.text}"
    sent = r.request.body if isinstance(r.request.body, bytes) else str(r.request.body).encode()
    digest = sha256(sent)
    assert r.headers.get("Docker-Content-Digest") == digest
    got = registry.get_manifest(repo, tag)
    assert got.status_code == 200, got.text
    assert got.content == sent
    assert got.headers.get("Docker-Content-Digest") == digest
    return digest, sent


def assert_pulled(client: Any, target: str, files: dict[str, Path], out: Path) -> None:
    pulled = client.pull(target=target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == ["notes.txt", "payload.bin"]
    for name in ("notes.txt", "payload.bin"):
        assert (out / name).read_bytes() == files[name].read_bytes(), f"{name} differs after the round trip"


def test_artifact_with_custom_config_roundtrip(
    registry: RegistryServer, client: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    repo = repo_name("oras/artifact")
    r = push_files(client, registry.ref(repo, "v1"), files)
    _, sent = assert_pushed(registry, repo, "v1", r)

    manifest = json.loads(sent)
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    assert [(x["mediaType"], x["annotations"][TITLE]) for x in manifest["layers"]] == [
        ("text/plain", "notes.txt"),
        (PAYLOAD_TYPE, "payload.bin"),
    ]
    cfg = registry.http("GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}")
    assert cfg.status_code == 200
    assert cfg.content == files["config.json"].read_bytes()

    assert_pulled(client, registry.ref(repo, "v1"), files, tmp_path / "out")
    assert client.get_tags(registry.ref(repo)) == ["v1"]


def test_chunked_upload_roundtrip(
    registry: RegistryServer, client: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    """POST, PATCH with Content-Range in 64 KiB chunks, PUT ?digest= (oras-py's do_chunked)."""
    repo = repo_name("oras/chunked")
    r = push_files(client, registry.ref(repo, "v1"), files, do_chunked=True, chunk_size=64 * 1024)
    assert_pushed(registry, repo, "v1", r)
    assert_pulled(client, registry.ref(repo, "v1"), files, tmp_path / "out")


@pytest.fixture(scope="module")
def subject(registry: RegistryServer, images: dict[str, Any]) -> dict[str, Any]:
    """The tiny image, pushed with skopeo: the subject of the referrers below."""
    require_tool("skopeo")
    repo = repo_name("oras/app")
    lay = Layout(images["dir"] / images["tiny"]["layout"])
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(),
           f"oci:{lay.path}:latest", "docker://" + registry.ref(repo, "v1")])  # fmt: skip
    digest = images["tiny"]["digest"]
    return {"repo": repo, "mediaType": OCI_MANIFEST, "digest": digest, "size": len(lay.blob(digest))}


def referrers(registry: RegistryServer, repo: str, digest: str, artifact_type: str | None = None) -> requests.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    r = registry.http("GET", f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, f"GET referrers {repo} {digest} {params}: {r.status_code} {r.text}"
    assert r.headers.get("Content-Type", "").startswith(OCI_INDEX)
    body = r.json()
    assert body.get("schemaVersion") == 2
    assert body.get("mediaType") == OCI_INDEX
    assert isinstance(body.get("manifests"), list)
    return r


def by_digest(r: requests.Response) -> dict[str, dict[str, Any]]:
    return {m["digest"]: m for m in r.json()["manifests"]}


def without_empty_annotations(desc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in desc.items() if not (k == "annotations" and not v)}


def put_manifest(registry: RegistryServer, repo: str, doc: dict[str, Any]) -> tuple[requests.Response, str, bytes]:
    body = canon(doc)
    digest = sha256(body)
    r = registry.http("PUT", f"/v2/{repo}/manifests/{digest}", data=body, headers={"Content-Type": doc["mediaType"]})
    return r, digest, body


def test_referrers(registry: RegistryServer, client: Any, files: dict[str, Path], subject: dict[str, Any]) -> None:
    from oras import oci as oras_oci

    repo = subject["repo"]
    subj = oras_oci.Subject(mediaType=subject["mediaType"], digest=subject["digest"], size=subject["size"])
    subj_desc = {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]}
    empty = {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": 2}

    # A: oras-py push with subject; no artifactType field, so the config media type is the artifact type.
    r = client.push(
        target=registry.ref(repo, "signature"),
        files=[f"{files['notes.txt']}:text/plain"],
        manifest_config=f"{files['config.json']}:{SIGNATURE_TYPE}",
        subject=subj,
        disable_path_validation=True,
        quiet=True,
    )
    sig_digest, sig_body = assert_pushed(registry, repo, "signature", r)
    assert "artifactType" not in json.loads(sig_body)
    assert r.headers.get("OCI-Subject") == subject["digest"]

    # B: an OCI 1.1 artifact manifest (artifactType, empty config) through oras-py's lower-level API.
    container = client.get_container(registry.ref(repo, "sbom"))
    sbom_layer = oras_oci.NewLayer(str(files["sbom.json"]), media_type="application/spdx+json")
    sbom_layer["annotations"] = {TITLE: "sbom.json"}
    for path, desc in ((files["empty.json"], empty), (files["sbom.json"], sbom_layer)):
        up = client.upload_blob(str(path), container, desc)
        assert up.status_code in (200, 201), up.text
    sbom_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": empty,
        "layers": [sbom_layer],
        "subject": subj_desc,
        "annotations": {"org.example.kind": "sbom"},
    }
    r = client.upload_manifest(sbom_manifest, container)
    sbom_digest, sbom_body = assert_pushed(registry, repo, "sbom", r)
    assert r.headers.get("OCI-Subject") == subject["digest"]

    # C: an image index referrer, pushed by digest with plain HTTP.
    bundle = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": INDEX_TYPE,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sig_digest, "size": len(sig_body)}],
        "subject": subj_desc,
    }
    r, bundle_digest, bundle_body = put_manifest(registry, repo, bundle)
    assert r.status_code == 201, r.text
    assert r.headers.get("Docker-Content-Digest") == bundle_digest
    assert r.headers.get("OCI-Subject") == subject["digest"]

    # D: a referrer of the same digest in another repository (its subject is not even there) stays there.
    other = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM_TYPE, "config": empty,
             "layers": [empty], "subject": subj_desc}  # fmt: skip
    other_repo = repo_name("oras/other")
    up = registry.http("POST", f"/v2/{other_repo}/blobs/uploads/?digest={empty['digest']}", data=EMPTY_JSON,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert up.status_code == 201, f"monolithic POST upload: {up.status_code} {up.text}"
    r, other_digest, _ = put_manifest(registry, other_repo, other)
    assert r.status_code == 201, r.text

    # All referrers, unfiltered.
    r = referrers(registry, repo, subject["digest"])
    assert "OCI-Filters-Applied" not in r.headers
    got = by_digest(r)
    assert set(got) == {sig_digest, sbom_digest, bundle_digest}, r.text
    sig_annotations = json.loads(sig_body).get("annotations")
    assert without_empty_annotations(got[sig_digest]) == {
        "mediaType": OCI_MANIFEST,
        "digest": sig_digest,
        "size": len(sig_body),
        "artifactType": SIGNATURE_TYPE,
        **({"annotations": sig_annotations} if sig_annotations else {}),
    }
    assert got[sbom_digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom_digest,
        "size": len(sbom_body),
        "artifactType": SBOM_TYPE,
        "annotations": {"org.example.kind": "sbom"},
    }
    assert got[bundle_digest] == {
        "mediaType": OCI_INDEX,
        "digest": bundle_digest,
        "size": len(bundle_body),
        "artifactType": INDEX_TYPE,
    }
    assert set(by_digest(referrers(registry, other_repo, subject["digest"]))) == {other_digest}

    # Filtered by artifactType.
    r = referrers(registry, repo, subject["digest"], SBOM_TYPE)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert set(by_digest(r)) == {sbom_digest}
    r = referrers(registry, repo, subject["digest"], SIGNATURE_TYPE)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert set(by_digest(r)) == {sig_digest}
    r = referrers(registry, repo, subject["digest"], "application/vnd.example.none")
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert r.json()["manifests"] == []

    # A digest nobody refers to: an empty index, never 404; a malformed digest: 400.
    assert referrers(registry, repo, sha256(b"nobody refers to this")).json()["manifests"] == []
    bad = registry.http("GET", f"/v2/{repo}/referrers/sha256:xyz")
    assert bad.status_code == 400, bad.text

    # Deleting a referrer removes it from the list.
    d = registry.http("DELETE", f"/v2/{repo}/manifests/{sbom_digest}")
    assert d.status_code == 202, d.text
    assert set(by_digest(referrers(registry, repo, subject["digest"]))) == {sig_digest, bundle_digest}
