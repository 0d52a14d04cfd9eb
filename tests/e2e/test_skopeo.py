"""skopeo against `make serve`: push and pull OCI layouts byte-exact, inspect, list-tags, delete."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .support import (
    OCI_INDEX,
    OCI_MANIFEST,
    Layout,
    RegistryServer,
    assert_same_blobs,
    check,
    gunzip_sha256,
    repo_name,
    require_tool,
    run,
    sha256,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


def layout(images: dict[str, Any], case: str) -> Layout:
    return Layout(images["dir"] / images[case]["layout"])


def push(src: Layout, tag: str, registry: RegistryServer, repo: str, dest_tag: str, *extra: str) -> None:
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(), *extra,
           f"oci:{src.path}:{tag}", "docker://" + registry.ref(repo, dest_tag)])  # fmt: skip


def pull(registry: RegistryServer, repo: str, ref: str, out: Path, out_tag: str, *extra: str) -> Layout:
    check(["skopeo", "copy", *registry.skopeo_src(), *extra,
           "docker://" + registry.ref(repo, ref), f"oci:{out}:{out_tag}"])  # fmt: skip
    return Layout(out)


def inspect_raw(registry: RegistryServer, repo: str, ref: str) -> bytes:
    p = subprocess.run(
        ["skopeo", "inspect", "--raw", *registry.skopeo_plain(), "docker://" + registry.ref(repo, ref)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, f"skopeo inspect --raw {repo}@{ref} failed: {p.stderr.decode()}"
    return p.stdout


@pytest.fixture(scope="module")
def pushed_tiny(registry: RegistryServer, images: dict[str, Any]) -> dict[str, Any]:
    src = layout(images, "tiny")
    repo = repo_name("skopeo/tiny")
    push(src, "latest", registry, repo, "v1")
    return {"repo": repo, "tag": "v1", "digest": images["tiny"]["digest"], "layout": src}


def test_tiny_push_inspect_pull_byte_exact(
    registry: RegistryServer, pushed_tiny: dict[str, Any], tmp_path: Path
) -> None:
    src: Layout = pushed_tiny["layout"]
    repo, digest = pushed_tiny["repo"], pushed_tiny["digest"]
    manifest = src.blob(digest)

    assert inspect_raw(registry, repo, "v1") == manifest
    assert inspect_raw(registry, repo, digest) == manifest
    r = registry.get_manifest(repo, "v1")
    assert r.status_code == 200, r.text
    assert r.content == manifest
    assert r.headers.get("Docker-Content-Digest") == digest
    assert r.headers.get("Content-Type") == OCI_MANIFEST

    info = json.loads(check(["skopeo", "inspect", *registry.skopeo_plain(), "docker://" + registry.ref(repo, "v1")]))
    assert info["Digest"] == digest
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Labels"] == {"harness.case": "tiny"}
    assert info["Layers"] == [layer["digest"] for layer in json.loads(manifest)["layers"]]
    assert "v1" in info["RepoTags"]

    pulled = pull(registry, repo, "v1", tmp_path / "pulled", "v1")
    assert pulled.ref("v1")["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


def test_list_tags(registry: RegistryServer, pushed_tiny: dict[str, Any]) -> None:
    repo = pushed_tiny["repo"]
    # registry -> registry copies: a pull and a push that finds every blob already there
    for tag in ("v2", "latest"):
        check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_src(), *registry.skopeo_dest(),
               "docker://" + registry.ref(repo, "v1"), "docker://" + registry.ref(repo, tag)])  # fmt: skip
    out = json.loads(check(["skopeo", "list-tags", *registry.skopeo_plain(), "docker://" + registry.ref(repo)]))
    assert out["Repository"] == registry.ref(repo)
    assert {"v1", "v2", "latest"} <= set(out["Tags"]), out
    for tag in ("v2", "latest"):
        assert registry.get_manifest(repo, tag).headers.get("Docker-Content-Digest") == pushed_tiny["digest"]


def test_multiarch_index_roundtrip(registry: RegistryServer, images: dict[str, Any], tmp_path: Path) -> None:
    src = layout(images, "multiarch")
    repo = repo_name("skopeo/multiarch")
    index_digest = images["multiarch"]["digest"]
    children = images["multiarch"]["children"]
    push(src, "latest", registry, repo, "v1", "--all")

    index = src.blob(index_digest)
    assert inspect_raw(registry, repo, "v1") == index
    r = registry.get_manifest(repo, "v1")
    assert r.content == index
    assert r.headers.get("Content-Type") == OCI_INDEX
    assert r.headers.get("Docker-Content-Digest") == index_digest
    for child in children:
        assert inspect_raw(registry, repo, child["digest"]) == src.blob(child["digest"])

    pulled = pull(registry, repo, "v1", tmp_path / "all", "v1", "--all", "--preserve-digests")
    assert pulled.ref("v1")["digest"] == index_digest
    want = src.reachable(index_digest)
    assert len(want) == 7  # index, 2 manifests, 2 configs, 2 layers
    assert_same_blobs(src, pulled, want)

    # Without --all skopeo resolves the index to one platform.
    arm = next(c for c in children if c["platform"]["architecture"] == "arm64")
    one = pull(registry, repo, "v1", tmp_path / "arm64", "arm64", "--override-arch", "arm64", "--override-os", "linux")
    assert one.ref("arm64")["digest"] == arm["digest"]
    assert_same_blobs(src, one, src.reachable(arm["digest"]))


def test_delete_manifest_by_digest(registry: RegistryServer, images: dict[str, Any]) -> None:
    src = layout(images, "tiny")
    repo = repo_name("skopeo/delete-me")
    digest = images["tiny"]["digest"]
    push(src, "latest", registry, repo, "v1")
    push(src, "latest", registry, repo, "v2")
    assert inspect_raw(registry, repo, digest) == src.blob(digest)

    check(["skopeo", "delete", *registry.skopeo_plain(), "docker://" + registry.ref(repo, digest)])

    for ref in (digest, "v1", "v2"):
        p = run(["skopeo", "inspect", "--raw", *registry.skopeo_plain(), "docker://" + registry.ref(repo, ref)])
        assert p.returncode != 0, f"skopeo inspect {repo}@{ref} still succeeds after the delete:\n{p.stdout}"
        assert registry.get_manifest(repo, ref).status_code == 404
    r = registry.http("GET", f"/v2/{repo}/tags/list")
    # Either the repository is gone or it lists no tag of the deleted manifest.
    assert r.status_code == 404 or not {"v1", "v2"} & set(r.json().get("tags") or []), r.text


def test_medium_known_size_roundtrip(registry: RegistryServer, images: dict[str, Any], tmp_path: Path) -> None:
    src = layout(images, "medium")
    repo = repo_name("skopeo/medium")
    digest = images["medium"]["digest"]
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(),
           f"oci:{src.path}:latest", "docker://" + registry.ref(repo, "v1")])  # fmt: skip
    # Each layer went up to the upload relay as one PATCH of known length (not mounted or skipped).
    patched = sorted(int(h.get("content-length", -1)) for h in registry.relay_requests("PATCH", repo))
    layer_sizes = sorted(layer["size"] for layer in src.json_blob(digest)["layers"])
    assert set(layer_sizes) <= set(patched), f"layers {layer_sizes} not uploaded; PATCH lengths: {patched}"

    assert inspect_raw(registry, repo, "v1") == src.blob(digest)
    pulled = pull(registry, repo, "v1", tmp_path / "pulled", "v1", "--preserve-digests")
    assert pulled.ref("v1")["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


def test_medium_recompressed_streaming_push(
    registry: RegistryServer, harness: Path, images: dict[str, Any], tmp_path: Path
) -> None:
    """`--dest-compress-format zstd` recompresses on the fly: every layer is a PATCH of unknown length.

    Fresh random data (a new seed) so no blob can be reused from the registry or skopeo's blob-info cache.
    """
    fresh = tmp_path / "images"
    check([sys.executable, harness / "make-images", fresh, "--only", "medium", "--medium-mb",
           str(images["medium_mb"]), "--seed", f"e2e-zstd-{time.time_ns()}"])  # fmt: skip
    src = Layout(fresh / "medium")
    src_manifest = src.json_blob(src.ref("latest")["digest"])
    repo = repo_name("skopeo/medium-zstd")
    check(["skopeo", "copy", *registry.skopeo_dest(), "--dest-compress-format", "zstd",
           f"oci:{src.path}:latest", "docker://" + registry.ref(repo, "v1")])  # fmt: skip
    patches = registry.relay_requests("PATCH", repo)
    streamed = [h for h in patches if h.get("transfer-encoding") == "chunked"]
    assert len(streamed) >= 3, f"expected the 3 layers as chunked PATCHes of unknown length: {patches}"

    raw = inspect_raw(registry, repo, "v1")
    manifest = json.loads(raw)
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+zstd"] * 3
    assert manifest["config"] == src_manifest["config"]  # the config (with the diff_ids) travels unchanged

    pulled = pull(registry, repo, "v1", tmp_path / "pulled", "v1", "--preserve-digests")
    digest = pulled.ref("v1")["digest"]
    assert digest == sha256(raw)
    assert pulled.blob(digest) == raw
    assert pulled.bad_blobs() == []
    assert pulled.blob(manifest["config"]["digest"]) == src.blob(src_manifest["config"]["digest"])
    for layer in manifest["layers"]:
        assert pulled.blob_path(layer["digest"]).stat().st_size == layer["size"]

    # The uncompressed content is what the source layers held.
    diff_ids = src.json_blob(src_manifest["config"]["digest"])["rootfs"]["diff_ids"]
    assert [gunzip_sha256(src.blob(layer["digest"])) for layer in src_manifest["layers"]] == diff_ids
    if shutil.which("zstd"):
        got = []
        for layer in manifest["layers"]:
            p = subprocess.run(["zstd", "-dc", pulled.blob_path(layer["digest"])], capture_output=True, check=True)
            got.append(sha256(p.stdout))
        assert got == diff_ids
