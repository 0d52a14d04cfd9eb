"""Garbage collection end to end: skopeo fills a `make serve` registry, GC runs through the API, and the
blob FILES (`FileObjectStore`, `<data dir>/objects/blobs/sha256/<hex>`) are checked on disk.

The functional tests run GC on moto's S3; only here does it list and delete through the local file store,
with the Step Functions definition executed by the local runner, exactly as a developer's `make serve`.
The module has its own server: the GC time window must be 0 so that blobs pushed a moment ago are
collectable (the shared server keeps Harbor's 2 hours), and GC deletes across all projects, which would
race with the other modules' pushes on the shared server.

Scenario: images A, B, C1, C2 (repository `library/e2e/gc/app`) and O (project `gce2e-other`) all share
one base layer; each has its own config and one layer of its own. A is deleted through the artifacts
API, C1 loses its tag when C2 is pushed under the same tag (GC's `delete_untagged` removes it). A dry run
must predict the real run's counts; the real run removes exactly A's and C1's own blobs; a second run
frees nothing; after a restart on the same data dir the history is still listed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import secrets
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .support import (
    ADMIN,
    API,
    OCI_MANIFEST,
    Layout,
    RegistryServer,
    api_get,
    artifacts_path,
    assert_same_blobs,
    canon,
    check,
    poll,
    repo_name,
    require_tool,
    sha256,
)

pytestmark = pytest.mark.e2e

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# Harbor's job statuses (src/jobservice/job/status.go) and those its `Final()` is true for.
FINAL = {"Success", "Error", "Stopped"}
STATUSES = FINAL | {"Pending", "Scheduled", "Running"}
OTHER_PROJECT = "gce2e-other"
APP = repo_name("gc/app")
OTHER = f"{OTHER_PROJECT}/app"
IMAGES = ("a", "b", "c1", "c2", "o")
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


# An OCI layout whose images share a base layer (the harness's images share nothing).


def _layer(name: str, content: bytes) -> tuple[bytes, str]:
    """A gzip'ed tar with one file, the same bytes on every run; and its diff id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), sha256(raw.getvalue())


def _write_blob(root: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = sha256(data)
    (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def build_layout(root: Path) -> dict[str, dict[str, Any]]:
    """One layout, a ref per image; returns per image its manifest digest and its own config and layer."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    # Incompressible layers (seeded, so the same every run) that outweigh manifests and configs.
    base_gz, base_id = _layer("base.bin", random.Random("base").randbytes(256 * 1024))
    base = _write_blob(root, base_gz, OCI_LAYER_GZ)
    out: dict[str, dict[str, Any]] = {"base": {"digest": base["digest"]}}
    refs = []
    for n, name in enumerate(IMAGES, 1):
        own_gz, own_id = _layer(f"{name}.bin", random.Random(name).randbytes(32 * 1024 * n))
        own = _write_blob(root, own_gz, OCI_LAYER_GZ)
        config = _write_blob(root, canon({"architecture": "amd64", "os": "linux",
                                          "config": {"Labels": {"gce2e.image": name}},
                                          "rootfs": {"type": "layers", "diff_ids": [base_id, own_id]}}),
                             OCI_CONFIG)  # fmt: skip
        manifest = _write_blob(root, canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                            "layers": [base, own]}), OCI_MANIFEST)  # fmt: skip
        refs.append({**manifest, "annotations": {REF_NAME: name}})
        out[name] = {"digest": manifest["digest"], "own": {config["digest"], own["digest"]}}
    (root / "index.json").write_bytes(canon({"schemaVersion": 2, "manifests": refs}))
    return out


# The registry side.


def push(server: RegistryServer, src: Layout, name: str, repo: str, tag: str) -> None:
    check(["skopeo", "copy", "--preserve-digests", *server.skopeo_dest(),
           f"oci:{src.path}:{name}", "docker://" + server.ref(repo, tag)])  # fmt: skip


def pull_check(server: RegistryServer, src: Layout, repo: str, tag: str, digest: str, out: Path) -> None:
    check(["skopeo", "copy", *server.skopeo_src(), "docker://" + server.ref(repo, tag), f"oci:{out}:{tag}"])
    pulled = Layout(out)
    assert pulled.ref(tag)["digest"] == digest
    assert_same_blobs(src, pulled, src.reachable(digest))


def blob_file(server: RegistryServer, digest: str) -> Path:
    return server.data_dir / "objects" / "blobs" / "sha256" / digest.split(":")[1]


def run_gc(server: RegistryServer, **parameters: Any) -> dict[str, Any]:
    """Trigger a manual GC through the API, wait for it to end; its record with `job_parameters` parsed."""
    body = {"schedule": {"type": "Manual"}, "parameters": {"delete_untagged": True, "workers": 2, **parameters}}
    r = server.http("POST", f"{API}/system/gc/schedule", json=body)
    assert r.status_code == 201, f"POST /system/gc/schedule: {r.status_code} {r.text}"
    location = r.headers["Location"]
    assert location.startswith(f"{API}/system/gc/"), location
    gc_id = int(location.rsplit("/", 1)[1])

    def ended() -> dict[str, Any] | None:
        record: dict[str, Any] = api_get(server, f"{API}/system/gc/{gc_id}")
        assert record["job_status"] in STATUSES, record
        return record if record["job_status"] in FINAL else None

    record = poll(ended, timeout=120, interval=0.5)
    assert record, f"GC {gc_id} did not end in 120 s: {api_get(server, f'{API}/system/gc/{gc_id}')}"
    assert record["id"] == gc_id
    assert record["job_status"] == "Success", record
    assert record["job_kind"] == "MANUAL"
    record["params"] = json.loads(record["job_parameters"])
    return record


def gc_log(server: RegistryServer, gc_id: int) -> list[str]:
    r = server.http("GET", f"{API}/system/gc/{gc_id}/log")
    assert r.status_code == 200, f"GET /system/gc/{gc_id}/log: {r.status_code} {r.text}"
    return [line for line in r.text.splitlines() if line.strip()]


def used(server: RegistryServer, project: str) -> int:
    return int(api_get(server, f"{API}/projects/{project}/summary")["quota"]["used"]["storage"])


def held_bytes(src: Layout, images: dict[str, dict[str, Any]], *names: str) -> int:
    """Bytes of the shared base layer plus each named image's manifest, config and own layer."""
    digests = {images["base"]["digest"]}
    for name in names:
        digests |= images[name]["own"] | {images[name]["digest"]}
    return sum(len(src.blob(d)) for d in digests)


def leave_strays(server: RegistryServer) -> list[Path]:
    """Files no row accounts for, as a crash between writing bytes and their row leaves them: a blob
    object (content named by its digest) and the staging of an upload session that does not exist.
    Dated an hour back, so they are older than any window start."""
    data = random.Random("stray").randbytes(48 * 1024)
    blob = blob_file(server, sha256(data))
    staging = server.data_dir / "objects" / "uploads" / "gce2e-no-such-session" / "chunk-0"
    staging.parent.mkdir(parents=True)
    for path, body in ((blob, data), (staging, data[:1000])):
        path.write_bytes(body)
        past = time.time() - 3600
        os.utime(path, (past, past))
    return [blob, staging]


@pytest.fixture(scope="module")
def gc_server(e2e_tmp: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(e2e_tmp / "gc-data", e2e_tmp / "gc-server.log", REGISTRY_GC_TIME_WINDOW_HOURS="0")
    server.start()
    yield server
    if server in RegistryServer.live:
        server.stop()


@pytest.fixture(scope="module")
def world(gc_server: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every image pushed; A deleted through the API, C1 untagged by pushing C2 under its tag."""
    root = tmp_path_factory.mktemp("gc-layout") / "layout"
    images = build_layout(root)
    src = Layout(root)
    r = gc_server.http("POST", f"{API}/projects", json={"project_name": OTHER_PROJECT, "metadata": {"public": "false"}})
    assert r.status_code == 201, f"create project: {r.status_code} {r.text}"
    for name in ("a", "b", "c1"):
        push(gc_server, src, name, APP, {"c1": "c"}.get(name, name))
    push(gc_server, src, "o", OTHER, "o")
    push(gc_server, src, "c2", APP, "c")  # C1 keeps no tag
    assert gc_server.get_manifest(APP, "c").headers["Docker-Content-Digest"] == images["c2"]["digest"]
    r = gc_server.http("DELETE", artifacts_path(APP, f"/{images['a']['digest']}"))
    assert r.status_code == 200, f"DELETE artifact A: {r.status_code} {r.text}"
    assert gc_server.get_manifest(APP, images["a"]["digest"]).status_code == 404
    assert gc_server.get_manifest(APP, images["c1"]["digest"]).status_code == 200  # untagged, still there
    return {"src": src, "images": images}


def test_bad_requests_get_harbor_errors_and_start_nothing(gc_server: RegistryServer) -> None:
    """Through `make serve`'s adapter as well: every refusal is a 4xx with Harbor's envelope, no job starts."""
    url = f"{gc_server.url}{API}/system/gc"
    history = api_get(gc_server, f"{API}/system/gc")
    password = "Gce2e-Pw1-" + secrets.token_hex(6)
    user = {"username": "gce2e-dev", "password": password, "email": "gce2e-dev@example.com", "realname": "gc e2e"}
    r = gc_server.http("POST", f"{API}/users", json=user)
    assert r.status_code == 201, f"create user: {r.status_code} {r.text}"

    def schedule(body: Any) -> requests.Response:
        return gc_server.http("POST", f"{url}/schedule", json=body)

    def manual(**parameters: Any) -> requests.Response:
        return schedule({"schedule": {"type": "Manual"}, "parameters": parameters})

    def as_user(method: str, path: str, auth: tuple[str, str] | None) -> requests.Response:
        return requests.request(method, url + path, json={"schedule": {"type": "Manual"}}, auth=auth, timeout=60)

    cases: list[tuple[str, requests.Response, int]] = [
        ("malformed JSON", gc_server.http("POST", f"{url}/schedule", data=b'{"schedule": {', headers=JSON), 400),
        ("no body", gc_server.http("POST", f"{url}/schedule", headers=JSON), 400),
        ("not an object", schedule([1, 2]), 400),
        ("unknown type", schedule({"schedule": {"type": "Often"}}), 400),
        ("bad cron", schedule({"schedule": {"type": "Custom", "cron": "x"}}), 400),
        *((f"workers={w!r}", manual(workers=w), 400) for w in (0, 11, "2", True, 10**30)),
        ("dry_run not a bool", manual(dry_run="yes"), 400),
        ("unknown parameter", manual(purge=True), 400),
        ("no credentials", as_user("POST", "/schedule", None), 401),
        ("wrong password", as_user("POST", "/schedule", (ADMIN, "wrong")), 401),
        ("not an admin runs", as_user("POST", "/schedule", ("gce2e-dev", password)), 403),
        ("not an admin lists", as_user("GET", "", ("gce2e-dev", password)), 403),
        ("bad id", gc_server.http("GET", f"{url}/abc"), 400),
        ("huge id", gc_server.http("GET", f"{url}/{10**40}"), 400),
        ("no such id", gc_server.http("GET", f"{url}/987654"), 404),
        ("no such log", gc_server.http("GET", f"{url}/987654/log"), 404),
        ("bad q", gc_server.http("GET", url, params={"q": "nope=~("}), 400),
        ("huge page_size", gc_server.http("GET", url, params={"page_size": 10**9}), 400),
    ]
    for what, got, status in cases:
        assert got.status_code == status, f"{what}: {got.status_code} {got.text}"
        assert got.json()["errors"][0]["code"], f"{what}: {got.text}"
    assert api_get(gc_server, f"{API}/system/gc") == history


def test_dry_run_predicts_the_real_run_and_only_unreferenced_blob_files_go(
    gc_server: RegistryServer, world: dict[str, Any], tmp_path: Path
) -> None:
    images, src = world["images"], world["src"]
    doomed = images["a"]["own"] | images["c1"]["own"]
    kept = {images["base"]["digest"]} | {d for n in ("b", "c2", "o") for d in images[n]["own"]}
    for digest in doomed | kept:
        assert blob_file(gc_server, digest).is_file(), f"blob file of {digest} missing before GC"

    # Harbor's project usage: every blob the project holds once, manifests included; A's went with its delete.
    assert used(gc_server, "library") == held_bytes(src, images, "b", "c1", "c2")
    assert used(gc_server, OTHER_PROJECT) == held_bytes(src, images, "o")
    strays = leave_strays(gc_server)
    stray_bytes = sum(p.stat().st_size for p in strays)

    dry = run_gc(gc_server, dry_run=True)
    assert dry["params"]["dry_run"] is True
    assert dry["params"]["orphan_objects"] == len(strays), dry["params"]
    for digest in doomed | kept:  # a dry run deletes nothing
        assert blob_file(gc_server, digest).is_file(), f"the dry run deleted the blob file of {digest}"
    assert all(p.is_file() for p in strays), "the dry run deleted a stray file"
    assert gc_server.get_manifest(APP, images["c1"]["digest"]).status_code == 200

    assert used(gc_server, "library") == held_bytes(src, images, "b", "c1", "c2")  # the dry run changed nothing
    real = run_gc(gc_server, dry_run=False)
    assert used(gc_server, "library") == held_bytes(src, images, "b", "c2")
    assert used(gc_server, OTHER_PROJECT) == held_bytes(src, images, "o")
    assert real["id"] > dry["id"]
    for key in ("freed_space", "purged_blobs", "purged_manifests"):
        assert dry["params"][key] == real["params"][key], f"{key}: dry run {dry['params']}, real run {real['params']}"
    assert real["params"]["purged_manifests"] == 1  # C1; A was deleted by the client
    # Small manifests live in the table, not as objects: the bytes freed are the doomed configs and layers,
    # and the stray files.
    assert real["params"]["freed_space"] == sum(len(src.blob(d)) for d in doomed) + stray_bytes
    assert real["params"]["orphan_objects"] == len(strays), real["params"]
    assert not [p for p in strays if p.exists()], "GC left stray files no row accounts for"
    assert real["params"]["purged_blobs"] == len(doomed), real["params"]

    for digest in doomed:
        assert not blob_file(gc_server, digest).exists(), f"GC left the blob file of {digest}"
    for digest in kept:
        assert blob_file(gc_server, digest).is_file(), f"GC deleted the blob file of {digest}, still in use"
    assert gc_server.get_manifest(APP, images["c1"]["digest"]).status_code == 404

    for name, repo, tag in (("b", APP, "b"), ("c2", APP, "c"), ("o", OTHER, "o")):
        pull_check(gc_server, src, repo, tag, images[name]["digest"], tmp_path / name)

    again = run_gc(gc_server)
    assert again["params"]["freed_space"] == 0, again
    assert again["params"]["purged_blobs"] == 0, again
    assert again["params"]["purged_manifests"] == 0, again
    for digest in kept:
        assert blob_file(gc_server, digest).is_file()

    for record in (dry, real, again):
        lines = gc_log(gc_server, record["id"])
        assert len(lines) >= 3, lines
        assert any("freed_space=" in line for line in lines), lines
    history = {h["id"]: h for h in api_get(gc_server, f"{API}/system/gc", page_size=100)}
    for record in (dry, real, again):  # the list shows what the item does
        listed = history[record["id"]]
        assert (listed["job_status"], json.loads(listed["job_parameters"])) == ("Success", record["params"]), listed


def test_gc_history_survives_a_restart(gc_server: RegistryServer, world: dict[str, Any], tmp_path: Path) -> None:
    predicted = run_gc(gc_server, dry_run=True)  # at least one run, whichever tests ran before
    before = {h["id"]: h["job_status"] for h in api_get(gc_server, f"{API}/system/gc", page_size=100)}
    assert set(before.values()) <= FINAL  # nothing runs while the server stops
    log = gc_server.stop()  # SIGTERM; asserts the state was saved
    assert "Traceback" not in log, log[-3000:]

    again = RegistryServer(gc_server.data_dir, gc_server.log_path, port=gc_server.port,
                           password=gc_server.password, **gc_server.extra_env).start()  # fmt: skip
    try:
        after = {h["id"]: h["job_status"] for h in api_get(again, f"{API}/system/gc", page_size=100)}
        assert after == before
        for gc_id in before:
            assert gc_log(again, gc_id), f"GC {gc_id} lost its log in the restart"
        images, src = world["images"], world["src"]
        assert again.get_manifest(APP, "b").headers.get("Docker-Content-Digest") == images["b"]["digest"]
        assert blob_file(again, images["base"]["digest"]).is_file()
        # Job ids go on from where they were (a reused id would overwrite a run's record and log).
        later = run_gc(again)
        assert later["id"] > max(before), (later["id"], before)
        for key in ("freed_space", "purged_blobs", "purged_manifests"):  # 0 after the test above, else A and C1
            assert later["params"][key] == predicted["params"][key], (key, predicted["params"], later["params"])
        for tag in ("b", "c"):
            pull_check(again, src, APP, tag, images[{"c": "c2"}.get(tag, tag)]["digest"], tmp_path / tag)
    finally:
        log = again.stop()
    assert "Traceback" not in log, log[-3000:]
