"""podman against `make serve`, daemonless and isolated: its own --root/--runroot (vfs) and config files in tmp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .support import Layout, RegistryServer, check, repo_name

pytestmark = pytest.mark.e2e


def creds(registry: RegistryServer) -> list[str]:
    return ["--tls-verify=false", "--creds", registry.creds]


def inspect(podman: Any, ref: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(podman("image", "inspect", ref))[0]
    return info


def test_podman_push_remove_pull(registry: RegistryServer, images: dict[str, Any], podman: Any, tmp_path: Path) -> None:
    tiny = Layout(images["dir"] / images["tiny"]["layout"])
    manifest = tiny.json_blob(images["tiny"]["digest"])
    image_id = manifest["config"]["digest"].split(":", 1)[1]  # podman's image id is the config digest

    podman("pull", "-q", f"oci:{tiny.path}:latest")
    assert inspect(podman, image_id)["Id"] == image_id

    repo = repo_name("podman/tiny")
    dest = registry.ref(repo, "v1")
    podman("tag", image_id, dest)
    digestfile = tmp_path / "digest"
    podman("push", "-q", *creds(registry), "--digestfile", str(digestfile), dest)
    pushed = digestfile.read_text().strip()
    r = registry.get_manifest(repo, "v1")
    assert r.status_code == 200, r.text
    assert r.headers.get("Docker-Content-Digest") == pushed
    remote = json.loads(r.content)
    assert remote["config"]["digest"] == manifest["config"]["digest"]
    assert len(remote["layers"]) == len(manifest["layers"])

    podman("rmi", "-f", image_id)
    assert podman("images", "-q").strip() == ""

    podman("pull", "-q", *creds(registry), dest)
    info = inspect(podman, dest)
    assert info["Id"] == image_id
    assert info["Digest"] == pushed
    assert f"{registry.ref(repo)}@{pushed}" in info["RepoDigests"]
    assert info["Labels"] == {"harness.case": "tiny"}
    # the same layer content (uncompressed diff id) as the source image
    assert info["RootFS"]["Layers"] == tiny.json_blob(manifest["config"]["digest"])["rootfs"]["diff_ids"]


def test_podman_pulls_platform_from_index(registry: RegistryServer, images: dict[str, Any], podman: Any) -> None:
    multi = Layout(images["dir"] / images["multiarch"]["layout"])
    repo = repo_name("podman/multiarch")
    check(["skopeo", "copy", "--all", "--preserve-digests", *registry.skopeo_dest(),
           f"oci:{multi.path}:latest", "docker://" + registry.ref(repo, "v1")])  # fmt: skip
    for child in images["multiarch"]["children"]:
        arch = child["platform"]["architecture"]
        ref = registry.ref(repo, "v1")
        podman("pull", "-q", *creds(registry), "--arch", arch, "--os", "linux", ref)
        info = inspect(podman, ref)
        config_digest = multi.json_blob(child["digest"])["config"]["digest"]
        assert info["Id"] == config_digest.split(":", 1)[1]
        assert info["Architecture"] == arch
        assert info["Digest"] == images["multiarch"]["digest"]
        assert any(d.endswith("@" + child["digest"]) for d in info["RepoDigests"]), info["RepoDigests"]
