"""`python -m chalicelib.cli push` against the app over real HTTP on moto, with the Lambda body cap.

The registry runs with REGISTRY_MAX_BODY_BYTES=4194304 (the AWS stages' cap), served by a threaded
HTTP server in this process; the push command talks to it like to any registry.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli import credentials
from chalicelib.cli.push import MIB, PushError, PushOptions, PushResult, push
from chalicelib.cli.references import parse
from chalicelib.cli.registry import RegistryClient, RegistryResponseError
from chalicelib.cli.sources import OCI_LAYER_TAR, open_source
from tests.functional.conftest import ADMIN
from tests.functional.helpers import OCI_INDEX, OCI_MANIFEST, random_bytes
from tests.functional.helpers import digest_of as sha256
from tests.functional.push_support import (
    Image,
    Served,
    image_layout,
    legacy_docker_save,
    make_image,
    tar_directory,
    write_layout,
)

CAP = 4 * MIB
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = PushOptions(backoff_seconds=0.01)


@pytest.fixture
def served(registry: Any, wsgi_app: Any) -> Iterator[Served]:
    registry.configure(max_body_bytes=CAP)
    server = Served(wsgi_app)
    try:
        yield server
    finally:
        server.close()


def client(served: Served, repository: str, *, creds: credentials.Credentials | None = None) -> RegistryClient:
    user = creds or credentials.Credentials(*ADMIN)
    return RegistryClient(served.host, user, [f"repository:{repository}:pull,push"], plain_http=True)


def push_layout(served: Served, layout: Path, repository: str, tag: str = "v1", **options: Any) -> PushResult:
    source = open_source(parse(f"oci:{layout}:v1"))
    chosen = PushOptions(**{"backoff_seconds": 0.01, **options})
    return push(source, client(served, repository), repository, tag, options=chosen)


def pulled_blob(served: Served, repository: str, digest: str) -> bytes:
    """The blob as a client reads it back (GET, then the 307 to the presigned object)."""
    return b"".join(client(served, repository).read_blob(repository, digest, 0))


def pulled_manifest(served: Served, repository: str, reference: str) -> tuple[str, bytes]:
    return client(served, repository).get_manifest(repository, reference)


def assert_pulls_back(served: Served, repository: str, tag: str, image: Image) -> None:
    assert pulled_manifest(served, repository, tag) == (OCI_MANIFEST, image.manifest)
    for digest, data in image.blobs().items():
        assert pulled_blob(served, repository, digest) == data, digest


@pytest.fixture
def big_image() -> Image:
    # 8 MiB + 1 byte: three chunks under the cap, the last one a single byte.
    return make_image([random_bytes(2 * CAP + 1), random_bytes(3000)])


def test_layout_push_stays_within_the_cap(served: Served, big_image: Image, tmp_path: Path) -> None:
    layout = image_layout(tmp_path / "layout", big_image)
    result = push_layout(served, layout, "library/chunked")  # asks for 16 MiB chunks
    assert set(result.outcomes.values()) == {"uploaded"}
    sizes = served.faults.patch_sizes()
    assert max(sizes) == CAP  # the advertised OCI-Chunk-Max-Length, not the 16 MiB asked for
    assert sorted(sizes) == sorted([CAP, CAP, 1, 3000, len(big_image.config)])
    assert result.manifests == [big_image.digest]
    assert_pulls_back(served, "library/chunked", "v1", big_image)


@pytest.mark.parametrize("where", ["request", "answer", "drop"])
def test_a_lost_chunk_resumes_from_the_sessions_range(
    served: Served, big_image: Image, tmp_path: Path, where: str
) -> None:
    """The layer's second PATCH fails: a 502 for a chunk lost on the way in (the registry holds
    4 MiB, so that chunk is sent again), a 502 or a dropped connection after the registry stored it
    (it holds 8 MiB, so the push goes on after it)."""
    image = make_image([big_image.layers[0]])
    layout = image_layout(tmp_path / "layout", image)
    served.faults.lose[3] = where  # the config is PATCH 1 (one worker: blobs in order), then the layer
    result = push_layout(served, layout, "library/resumed", jobs=1)
    assert result.resumes == 1
    layer_ranges = [r for r in served.faults.patch_ranges() if r != f"0-{len(image.config) - 1}"]
    again = [f"{CAP}-{2 * CAP - 1}"] if where == "request" else []
    assert (where == "drop") == (served.faults.dropped == 1)
    assert layer_ranges == [f"0-{CAP - 1}", f"{CAP}-{2 * CAP - 1}", *again, f"{2 * CAP}-{2 * CAP}"]
    gets = [path for method, path, _, _ in served.faults.requests if method == "GET" and "/blobs/uploads/" in path]
    assert len(gets) == 1  # the one status read that found where to go on
    assert pulled_blob(served, "library/resumed", sha256(big_image.layers[0])) == big_image.layers[0]


def test_a_session_the_registry_forgot_starts_the_blob_again(served: Served, big_image: Image, tmp_path: Path) -> None:
    image = make_image([big_image.layers[0]])
    served.faults.lose[3] = "forget"  # the layer's second chunk finds its session gone
    result = push_layout(served, image_layout(tmp_path / "layout", image), "library/restarted", jobs=1)
    assert (result.restarts, result.resumes) == (1, 0)
    layer_ranges = [r for r in served.faults.patch_ranges() if r != f"0-{len(image.config) - 1}"]
    assert layer_ranges == [f"0-{CAP - 1}", f"{CAP}-{2 * CAP - 1}", f"0-{CAP - 1}", f"{CAP}-{2 * CAP - 1}",
                            f"{2 * CAP}-{2 * CAP}"]  # fmt: skip
    assert pulled_blob(served, "library/restarted", sha256(image.layers[0])) == image.layers[0]


def test_gives_up_after_its_retries(served: Served, tmp_path: Path) -> None:
    image = make_image([random_bytes(CAP + 10)])
    layout = image_layout(tmp_path / "layout", image)
    served.faults.lose.update(dict.fromkeys(range(1, 20), "request"))
    with pytest.raises(PushError, match="gave up after 2 retries"):
        push_layout(served, layout, "library/broken", jobs=1, retries=2)
    with pytest.raises(RegistryResponseError, match="404 MANIFEST_UNKNOWN"):
        pulled_manifest(served, "library/broken", "v1")


def test_blobs_in_another_repository_are_mounted_not_sent(served: Served, big_image: Image, tmp_path: Path) -> None:
    layout = image_layout(tmp_path / "layout", big_image)
    push_layout(served, layout, "library/first")
    sent_before = len(served.faults.patch_sizes())
    result = push_layout(served, layout, "library/second", mount_from=("library/first",))
    assert set(result.outcomes.values()) == {"mounted"}
    assert len(served.faults.patch_sizes()) == sent_before  # not one byte sent again
    assert_pulls_back(served, "library/second", "v1", big_image)
    again = push_layout(served, layout, "library/second", tag="v2")
    assert set(again.outcomes.values()) == {"exists"}


def test_a_registry_source_on_the_same_host_is_mounted(served: Served, big_image: Image, tmp_path: Path) -> None:
    push_layout(served, image_layout(tmp_path / "layout", big_image), "library/origin")
    origin = RegistryClient(
        served.host, credentials.Credentials(*ADMIN), ["repository:library/origin:pull"], plain_http=True
    )
    source = open_source(parse(f"docker://{served.host}/library/origin:v1"), origin)
    dest = client(served, "library/copy")  # the push adds the pull scope on library/origin itself
    result = push(source, dest, "library/copy", "v1", options=FAST)
    assert set(result.outcomes.values()) == {"mounted"}
    assert_pulls_back(served, "library/copy", "v1", big_image)


def test_a_registry_source_elsewhere_is_read_and_uploaded(served: Served, tmp_path: Path) -> None:
    """Pulled blob by blob over the distribution API (GET, 307, object) and pushed in chunks."""
    image = make_image([random_bytes(5 * MIB)])
    push_layout(served, image_layout(tmp_path / "layout", image), "library/upstream")
    upstream = RegistryClient(served.host, credentials.Credentials(*ADMIN), [], plain_http=True)
    source = open_source(parse(f"docker://{served.host}/library/upstream:v1"), upstream)
    # Another project and no mount candidate: every byte is read from the source and sent again.
    dest = client(served, "library/mirror")
    result = push(source, dest, "library/mirror", "v1", options=PushOptions(mount_from=()))
    assert result.outcomes[sha256(image.layers[0])] in {"uploaded", "mounted"}
    assert_pulls_back(served, "library/mirror", "v1", image)


def test_an_index_is_pushed_children_first_and_a_shared_layer_once(served: Served, tmp_path: Path) -> None:
    shared = random_bytes(5 * MIB)
    amd, arm = make_image([shared, b"amd"], arch="amd64"), make_image([shared, b"arm"], arch="arm64")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": len(img.manifest),
         "platform": {"os": "linux", "architecture": arch}} for img, arch in ((amd, "amd64"), (arm, "arm64"))
    ]}).encode()  # fmt: skip
    blobs = amd.blobs() | arm.blobs() | {amd.digest: amd.manifest, arm.digest: arm.manifest}
    layout = write_layout(tmp_path / "layout", {"v1": (OCI_INDEX, index)}, blobs)
    result = push_layout(served, layout, "library/multi")
    assert result.manifests == [amd.digest, arm.digest, sha256(index)]
    finished = [h for m, p, h, _ in served.faults.requests if m == "PUT" and "/blobs/uploads/" in p]
    assert len(finished) == len(result.outcomes) == 5  # the shared layer, two small layers, two configs
    assert served.faults.patch_sizes().count(CAP) == 1  # the shared layer's first chunk, sent once
    puts = [
        path.rsplit("/", 1)[1]
        for method, path, _, _ in served.faults.requests
        if method == "PUT" and "/manifests/" in path
    ]
    assert puts == [amd.digest, arm.digest, "v1"]
    assert pulled_manifest(served, "library/multi", "v1") == (OCI_INDEX, index)
    assert_pulls_back(served, "library/multi", amd.digest, amd)


def test_legacy_docker_save_archive(served: Served, tmp_path: Path) -> None:
    """Layers go as the uncompressed tars they are, with their diff_ids as digests; the config as is."""
    layers = [random_bytes(6 * MIB), random_bytes(2000)]
    image = make_image(layers)
    archive = legacy_docker_save(tmp_path / "app.tar", image.config, layers, "app:v1")
    source = open_source(parse(f"docker-archive:{archive}:app:v1"))
    result = push(source, client(served, "library/saved"), "library/saved", "v1", options=FAST)
    media_type, body = pulled_manifest(served, "library/saved", "v1")
    manifest = json.loads(body)
    assert (media_type, sha256(body)) == (OCI_MANIFEST, result.digest)
    assert manifest["config"]["digest"] == sha256(image.config)
    # the symlinked last layer resolves to its target's bytes
    assert [(x["mediaType"], x["digest"]) for x in manifest["layers"]] == [(OCI_LAYER_TAR, sha256(x)) for x in layers]
    for data in [image.config, *layers]:
        assert pulled_blob(served, "library/saved", sha256(data)) == data


def test_oci_docker_save_archive_by_name(served: Served, big_image: Image, tmp_path: Path) -> None:
    """Docker 25+ nests an OCI layout in the archive; images are picked by their containerd name."""
    archive = tar_directory(image_layout(tmp_path / "layout", big_image), tmp_path / "app.tar")
    source = open_source(parse(f"docker-archive:{archive}:app:v1"))
    push(source, client(served, "library/saved-oci"), "library/saved-oci", "v1", options=FAST)
    assert_pulls_back(served, "library/saved-oci", "v1", big_image)


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", "push", "--plain-http", "--quiet", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def helper_env(tmp_path: Path, served: Served) -> dict[str, str]:
    """A Docker config naming `docker-credential-test`, a helper script on PATH that knows the
    admin's password for the served host only; Bearer tokens only (no Basic on /v2)."""
    from tests.functional.conftest import ADMIN as admin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-test"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'if [ "$server" = "{served.host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{admin[0]}","Secret":"{admin[1]}"}}\' "$server"\n'
        "else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {served.host: "test"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "DOCKER_CONFIG": str(config_dir)}


def test_cli_with_a_credential_helper_and_bearer_tokens(
    served: Served, registry: Any, helper_env: dict[str, str], tmp_path: Path
) -> None:
    registry.configure(max_body_bytes=CAP, v2_basic_auth=False)
    image = make_image([random_bytes(5 * MIB)])
    layout = image_layout(tmp_path / "layout", image)
    done = _run_cli(f"oci:{layout}:v1", f"{served.host}/library/helped:v1", env=helper_env)
    assert done.returncode == 0, done.stderr
    assert "1 uploaded" not in done.stdout and "2 uploaded" in done.stdout, done.stdout
    assert any(path == "/service/token" for _, path, _, _ in served.faults.requests)
    uploads = [h for m, p, h, _ in served.faults.requests if m == "PATCH"]
    assert uploads and all(h["authorization"].startswith("Bearer ") for h in uploads)
    assert_pulls_back(served, "library/helped", "v1", image)


def test_cli_credentials_from_creds_store_and_auths(served: Served, helper_env: dict[str, str], tmp_path: Path) -> None:
    config = Path(helper_env["DOCKER_CONFIG"]) / "config.json"
    layout = image_layout(tmp_path / "layout", make_image([b"small layer"]))
    config.write_text(json.dumps({"credsStore": "test"}))
    assert _run_cli(f"oci:{layout}:v1", f"{served.host}/library/store:v1", env=helper_env).returncode == 0
    # The helper knows nothing of this name: `auths` is the fallback, and a wrong password is refused.
    token = __import__("base64").b64encode(b"admin:wrong").decode()
    config.write_text(json.dumps({"auths": {f"http://{served.host}": {"auth": token}}}))
    refused = _run_cli(f"oci:{layout}:v1", f"{served.host}/library/store:v2", env=helper_env)
    assert refused.returncode == 1
    assert "push failed" in refused.stderr and "401" in refused.stderr, refused.stderr


def test_credential_lookup_order(tmp_path: Path, helper_env: dict[str, str], served: Served, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", helper_env["PATH"])
    config = tmp_path / "config.json"
    encoded = __import__("base64").b64encode(b"alice:from-auths").decode()
    config.write_text(json.dumps({"auths": {"other.example:5000": {"auth": encoded}}, "credsStore": "test"}))
    # credsStore answers for the served host; for another host it knows none, so auths answers.
    assert credentials.lookup(served.host, config) == credentials.Credentials(*ADMIN)
    assert credentials.lookup("other.example:5000", config) == credentials.Credentials("alice", "from-auths")
    assert credentials.lookup("third.example", config).anonymous
    assert "from-auths" not in repr(credentials.lookup("other.example:5000", config))
