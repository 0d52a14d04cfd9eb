"""The artifact catalogue (/api/v2.0) as real clients fill it, against `make serve`.

skopeo pushes a multi-arch index and plain images, oras-py pushes signature-like referrers; the
artifacts API is then read and its values checked against what was pushed: types, sizes computed from
the bytes sent, digests, platforms, additions, accessories, pull times, immutable tags and the audit
log. Every test uses its own repositories (the immutability test its own project), so they run in any
order. Artifact `labels`, tag `immutable` and `repository_id` are not asserted (filled elsewhere).
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.util import find_spec
from typing import Any
from urllib.parse import quote

import pytest
import requests

from .conftest import PULL_WINDOW
from .support import (
    API,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    ZERO_TIME,
    Layout,
    RegistryServer,
    api_get,
    artifacts_path,
    check,
    oras_client_for,
    poll,
    repo_name,
    require_tool,
    run,
    sha256,
)

# oras-py is imported by the tests that use it: at collection its jsonschema import alone compiles
# dozens of grammars, in every pytest-xdist worker.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_spec("oras") is None, reason="oras-py is in requirements-dev.txt; run `make install`"),
]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
HARBOR_SBOM = "application/vnd.goharbor.harbor.sbom.v1"
SPDX = "application/spdx+json"
GUEST = 3  # Harbor's role id


@pytest.fixture(scope="module", autouse=True)
def _skopeo() -> None:
    require_tool("skopeo")


def layout(images: dict[str, Any], case: str) -> Layout:
    return Layout(images["dir"] / images[case]["layout"])


def push(registry: RegistryServer, src: Layout, repo: str, tag: str, *extra: str) -> None:
    check(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(), *extra,
           f"oci:{src.path}:latest", "docker://" + registry.ref(repo, tag)])  # fmt: skip


def image_size(src: Layout, digest: str) -> int:
    """Harbor's size of an image: manifest + config + layers, as stored in the layout."""
    doc = src.json_blob(digest)
    return len(src.blob(digest)) + doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])


def iso_seconds(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def push_tiny(registry: RegistryServer, images: dict[str, Any], name: str, *tags: str) -> tuple[Layout, str, str]:
    """The harness's tiny image pushed with skopeo to `cat/<name>` under each tag: (layout, repo, digest)."""
    src, repo = layout(images, "tiny"), repo_name(f"cat/{name}")
    for tag in tags:
        push(registry, src, repo, tag)
    return src, repo, images["tiny"]["digest"]


def listed(registry: RegistryServer, repo: str, **params: Any) -> list[dict[str, Any]]:
    got = api_get(registry, artifacts_path(repo), page_size=100, **params)
    assert isinstance(got, list)
    return got


# Multi-arch image (skopeo).


def test_multiarch_index_is_one_image_with_references(registry: RegistryServer, images: dict[str, Any]) -> None:
    src = layout(images, "multiarch")
    repo = repo_name("cat/multiarch")
    index_digest = images["multiarch"]["digest"]
    children = images["multiarch"]["children"]
    push(registry, src, repo, "v1", "--all")

    # One artifact: the index; its platform manifests are hidden from the list, as in Harbor.
    arts = listed(registry, repo, with_tag="true")
    assert [a["digest"] for a in arts] == [index_digest], arts
    art = arts[0]
    child_sizes = {c["digest"]: image_size(src, c["digest"]) for c in children}
    assert art["type"] == "IMAGE"
    assert art["media_type"] == OCI_INDEX
    assert art["manifest_media_type"] == OCI_INDEX
    assert art["repository_name"] == repo
    assert art["size"] == len(src.blob(index_digest)) + sum(child_sizes.values())
    assert "extra_attrs" not in art  # an index has no config of its own (empty: omitted, as Harbor does)
    assert "addition_links" not in art  # none for this type: an empty map is omitted, as Harbor does
    assert [t["name"] for t in art["tags"]] == ["v1"]
    assert art["tags"][0]["artifact_id"] == art["id"]
    assert [(r["child_digest"], r["platform"]) for r in art["references"]] == [
        (c["digest"], c["platform"]) for c in children
    ]
    assert {r["parent_id"] for r in art["references"]} == {art["id"]}
    assert [set(r) for r in art["references"]] == [{"parent_id", "child_id", "child_digest", "platform"}] * 2
    assert art["pull_time"] == ZERO_TIME

    # Getting the index by tag and by digest is the same record.
    by_tag = api_get(registry, artifacts_path(repo, "/v1"))
    assert by_tag["digest"] == index_digest and by_tag["size"] == art["size"]
    assert by_tag["references"] == art["references"]

    # Each child, by digest: an IMAGE with its own platform, creation time and size.
    for child, ref in zip(children, art["references"], strict=True):
        got = api_get(registry, artifacts_path(repo, f"/{child['digest']}"), with_tag="true")
        config = src.json_blob(src.json_blob(child["digest"])["config"]["digest"])
        assert got["id"] == ref["child_id"]
        assert got["type"] == "IMAGE"
        assert got["media_type"] == OCI_CONFIG
        assert got["manifest_media_type"] == OCI_MANIFEST
        assert got["size"] == child_sizes[child["digest"]]
        assert "tags" not in got  # no tags: omitted, as Harbor does
        attrs = got["extra_attrs"]
        assert (attrs["architecture"], attrs["os"]) == (child["platform"]["architecture"], child["platform"]["os"])
        assert attrs["created"] == config["created"] == "2024-01-01T00:00:00Z"
        assert attrs["config"]["Labels"] == {"harness.case": "multiarch"}
        assert attrs["config"]["Cmd"] == ["/bin/sh"]
        assert got["addition_links"]["build_history"]["absolute"] is False

        history = registry.http("GET", artifacts_path(repo, f"/{child['digest']}/additions/build_history"))
        assert history.status_code == 200, history.text
        assert history.headers["Content-Type"].startswith("application/json")
        assert history.json() == [
            {key: entry[key] for key in ("created", "created_by") if key in entry} for entry in config["history"]
        ]

    # An index has no build history of its own.
    bad = registry.http("GET", artifacts_path(repo, f"/{index_digest}/additions/build_history"))
    assert 400 <= bad.status_code < 500 and bad.json()["errors"][0]["code"], bad.text

    # The repository counts one artifact (Harbor counts tagged or unreferenced ones); search finds it.
    project, _, name = repo.partition("/")
    repository = api_get(registry, f"{API}/projects/{project}/repositories/{quote(quote(name, safe=''), safe='')}")
    assert (repository["name"], repository["artifact_count"]) == (repo, 1), repository
    found = api_get(registry, f"{API}/search", q="cat/multiarch")
    assert [(r["repository_name"], r["artifact_count"]) for r in found["repository"]] == [(repo, 1)], found

    # A child the index references cannot be deleted; deleting the index takes its children with it.
    refused = registry.http("DELETE", artifacts_path(repo, f"/{children[0]['digest']}"))
    assert refused.status_code == 412 and refused.json()["errors"][0]["code"] == "VIOLATE_FOREIGN_KEY_CONSTRAINT", (
        refused.text
    )
    assert registry.get_manifest(repo, children[0]["digest"]).status_code == 200
    d = registry.http("DELETE", artifacts_path(repo, "/v1"))
    assert d.status_code == 200, d.text
    for digest in (index_digest, *(c["digest"] for c in children)):
        assert registry.get_manifest(repo, digest).status_code == 404, digest
    assert listed(registry, repo) == []


# Signature-like referrers (oras-py) and their subject.


def test_referrers_are_accessories_of_their_subject_and_go_with_it(
    registry: RegistryServer, images: dict[str, Any], tmp_path: Any
) -> None:
    src, repo, subject_digest = push_tiny(registry, images, "signed", "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(src.blob(subject_digest))}

    client = oras_client_for(registry)
    payloads = {
        "sig": (COSIGN_PAYLOAD, json.dumps({"critical": {"image": {"docker-manifest-digest": subject_digest}}})),
        "sbom": (SPDX, json.dumps({"spdxVersion": "SPDX-2.3", "name": "tiny"})),
    }
    pushed: dict[str, tuple[str, int]] = {}
    for name, (layer_type, text) in payloads.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        (tmp_path / "empty.json").write_bytes(EMPTY_JSON)
        empty = {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": len(EMPTY_JSON)}
        layer = {"mediaType": layer_type, "digest": sha256(path.read_bytes()), "size": path.stat().st_size}
        container = client.get_container(registry.ref(repo, name))
        for blob, desc in ((tmp_path / "empty.json", empty), (path, layer)):
            up = client.upload_blob(str(blob), container, desc)
            assert up.status_code in (200, 201), up.text
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "artifactType": COSIGN_SIG if name == "sig" else HARBOR_SBOM,
                    "config": empty, "layers": [layer], "subject": subject}  # fmt: skip
        body = json.dumps(manifest, separators=(",", ":")).encode()
        # Pushed by digest, untagged, as `cosign sign` and `oras attach` do.
        r = registry.http("PUT", f"/v2/{repo}/manifests/{sha256(body)}", data=body,
                          headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.headers.get("OCI-Subject") == subject_digest
        pushed[name] = (sha256(body), len(body) + empty["size"] + layer["size"])

    # The list shows the subject only, with its accessories when asked.
    arts = listed(registry, repo, with_accessory="true", with_tag="true")
    assert [a["digest"] for a in arts] == [subject_digest], arts
    assert arts[0]["size"] == image_size(src, subject_digest)
    want = {
        pushed["sig"][0]: ("signature.cosign", pushed["sig"][1]),
        pushed["sbom"][0]: ("harbor.sbom", pushed["sbom"][1]),
    }
    got = {x["digest"]: (x["type"], x["size"]) for x in arts[0]["accessories"]}
    assert got == want
    for x in arts[0]["accessories"]:
        assert (x["subject_artifact_digest"], x["subject_artifact_repo"]) == (subject_digest, repo)
        assert x["subject_artifact_id"] == arts[0]["id"]

    accessories = api_get(registry, artifacts_path(repo, f"/{subject_digest}/accessories"))
    assert {x["digest"]: (x["type"], x["size"]) for x in accessories} == want
    only_sigs = api_get(registry, artifacts_path(repo, "/v1/accessories"), q="type=signature.cosign")
    assert [x["digest"] for x in only_sigs] == [pushed["sig"][0]]
    # with_signature marks the subject's tag as signed.
    signed = listed(registry, repo, with_signature="true")
    assert [t["signed"] for t in signed[0]["tags"]] == [True]

    # Deleting the subject through the API takes its accessories with it.
    d = registry.http("DELETE", artifacts_path(repo, f"/{subject_digest}"))
    assert d.status_code == 200, d.text
    for digest in (subject_digest, pushed["sig"][0], pushed["sbom"][0]):
        assert registry.get_manifest(repo, digest).status_code == 404, digest
        gone = registry.http("GET", artifacts_path(repo, f"/{digest}"))
        assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "NOT_FOUND", gone.text
    assert listed(registry, repo) == []


def test_cosign_legacy_signature_tag_is_an_accessory(registry: RegistryServer, images: dict[str, Any]) -> None:
    """cosign's pre-OCI-1.1 layout: the signature is an ordinary manifest tagged `sha256-<hex>.sig`."""
    _, repo, subject_digest = push_tiny(registry, images, "legacy-sig", "v1")
    sig_src = layout(images, "multiarch")  # any other manifest: skopeo resolves the index to linux/amd64
    sig_digest = next(c["digest"] for c in images["multiarch"]["children"] if c["platform"]["architecture"] == "amd64")
    sig_tag = subject_digest.replace("sha256:", "sha256-") + ".sig"
    push(registry, sig_src, repo, sig_tag)
    assert registry.get_manifest(repo, sig_tag).headers.get("Docker-Content-Digest") == sig_digest

    arts = listed(registry, repo, with_accessory="true", with_signature="true")
    assert [a["digest"] for a in arts] == [subject_digest], arts
    assert [(x["digest"], x["type"], x["size"]) for x in arts[0]["accessories"]] == [
        (sig_digest, "signature.cosign", image_size(sig_src, sig_digest))
    ]
    assert [(t["name"], t["signed"]) for t in arts[0]["tags"]] == [("v1", True)]
    assert [a["digest"] for a in listed(registry, repo, q="tags=nil")] == []


# Pull time (skopeo).


def test_pull_by_tag_sets_the_pull_time_of_artifact_and_tag(
    registry: RegistryServer, images: dict[str, Any], tmp_path: Any
) -> None:
    _, repo, digest = push_tiny(registry, images, "pulled", "v1", "v2")
    before = api_get(registry, artifacts_path(repo, "/v1"), with_tag="true")
    assert before["pull_time"] == ZERO_TIME
    assert {t["name"]: t["pull_time"] for t in before["tags"]} == {"v1": ZERO_TIME, "v2": ZERO_TIME}

    started = int(time.time())
    check(["skopeo", "copy", *registry.skopeo_src(), "docker://" + registry.ref(repo, "v1"),
           f"oci:{tmp_path / 'out'}:v1"])  # fmt: skip
    pulled_by = int(time.time()) + 1

    def recorded() -> dict[str, Any] | None:
        art = api_get(registry, artifacts_path(repo, f"/{digest}"), with_tag="true")
        return art if art["pull_time"] != ZERO_TIME else None

    art = poll(recorded, timeout=PULL_WINDOW + 15, interval=1)
    assert art, f"pull_time still unset {PULL_WINDOW + 15}s after the pull"
    assert started <= iso_seconds(art["pull_time"]) <= pulled_by, art["pull_time"]
    tags = {t["name"]: t["pull_time"] for t in art["tags"]}
    assert started <= iso_seconds(tags["v1"]) <= pulled_by, tags
    assert tags["v2"] == ZERO_TIME  # the tag not pulled keeps no pull time
    # push_time is untouched by the pull.
    assert art["push_time"] == before["push_time"]


# Immutable tags (skopeo).


def test_immutable_tag_rule_refuses_a_second_push_to_the_tag(registry: RegistryServer, images: dict[str, Any]) -> None:
    project = f"e2ecat-{secrets.token_hex(4)}"
    r = registry.http("POST", f"{API}/projects", json={"project_name": project, "metadata": {"public": "false"}})
    assert r.status_code == 201, r.text
    rule = {
        "disabled": False,
        "action": "immutable",
        "template": "immutable_template",
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "release-*"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    }
    r = registry.http("POST", f"{API}/projects/{project}/immutabletagrules", json=rule)
    assert r.status_code == 201, r.text
    rules = api_get(registry, f"{API}/projects/{project}/immutabletagrules")
    assert [x["tag_selectors"][0]["pattern"] for x in rules] == ["release-*"]

    repo = f"{project}/app"
    tiny, other = layout(images, "tiny"), layout(images, "multiarch")
    tiny_digest = images["tiny"]["digest"]
    push(registry, tiny, repo, "release-1")  # the first push of a new immutable tag is allowed

    # A second push to the tag (another image: skopeo resolves the index to linux/amd64) is refused.
    p = run(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(),
             f"oci:{other.path}:latest", "docker://" + registry.ref(repo, "release-1")])  # fmt: skip
    assert p.returncode != 0, f"push to an immutable tag succeeded:\n{p.stdout}"
    assert "immutable" in p.stdout.lower() or "412" in p.stdout or "precondition" in p.stdout.lower(), p.stdout

    # The tag stays on its digest, on /v2 and in the API; another tag is still writable.
    assert registry.get_manifest(repo, "release-1").headers.get("Docker-Content-Digest") == tiny_digest
    push(registry, other, repo, "dev")
    arts = {a["digest"]: sorted(t["name"] for t in a["tags"]) for a in listed(registry, repo, with_tag="true")}
    amd64 = next(c["digest"] for c in images["multiarch"]["children"] if c["platform"]["architecture"] == "amd64")
    assert arts == {tiny_digest: ["release-1"], amd64: ["dev"]}
    # Nor can the tag be moved or deleted through the API.
    r = registry.http("POST", artifacts_path(repo, f"/{amd64}/tags"), json={"name": "release-1"})
    assert r.status_code in (409, 412) and r.json()["errors"][0]["code"], r.text
    r = registry.http("DELETE", artifacts_path(repo, f"/{tiny_digest}/tags/release-1"))
    assert r.status_code == 412 and r.json()["errors"][0]["code"] == "PRECONDITION", r.text
    assert registry.get_manifest(repo, "release-1").headers.get("Docker-Content-Digest") == tiny_digest

    # Two clients racing to create a new immutable tag with different images (their blobs are already
    # there, so the manifest PUTs race): one wins, the other is refused, and the tag stays the winner's.
    def racer(src: Layout) -> int:
        return run(["skopeo", "copy", "--preserve-digests", *registry.skopeo_dest(),
                    f"oci:{src.path}:latest", "docker://" + registry.ref(repo, "release-2")]).returncode  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(racer, (tiny, other)))
    assert sorted(code == 0 for code in codes) == [False, True], codes
    winner = tiny_digest if codes[0] == 0 else amd64
    assert registry.get_manifest(repo, "release-2").headers.get("Docker-Content-Digest") == winner
    arts = {a["digest"]: sorted(t["name"] for t in a["tags"]) for a in listed(registry, repo, with_tag="true")}
    assert "release-2" in arts[winner]
    assert sum("release-2" in names for names in arts.values()) == 1, arts


# Audit log.


def test_audit_log_shows_the_clients_pushes_and_pulls(
    registry: RegistryServer, images: dict[str, Any], tmp_path: Any
) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    _, repo, digest = push_tiny(registry, images, "audited", "v1")
    check(["skopeo", "copy", *registry.skopeo_src(), "docker://" + registry.ref(repo, "v1"),
           f"oci:{tmp_path / 'out'}:v1"])  # fmt: skip
    check(["skopeo", "inspect", "--raw", *registry.skopeo_plain(), "docker://" + registry.ref(repo, digest)])
    notes = tmp_path / "notes.txt"
    notes.write_text("pushed by oras-py\n")
    r = oras_client_for(registry).push(target=registry.ref(repo, "notes"), files=[f"{notes}:text/plain"],
                                       disable_path_validation=True, quiet=True)  # fmt: skip
    assert r.status_code == 201, r.text
    d = registry.http("DELETE", artifacts_path(repo, f"/{digest}"))
    assert d.status_code == 200, d.text

    want = {
        ("create", f"{repo}:notes"),
        ("create", f"{repo}:v1"),
        ("pull", f"{repo}:v1"),
        ("pull", f"{repo}@{digest}"),
        ("delete", f"{repo}@{digest}"),
    }

    def entries() -> list[dict[str, Any]] | None:
        got = api_get(registry, f"{API}/audit-logs", q=f"resource=~{repo}", page_size=100)
        return got if want <= {(e["operation"], e["resource"]) for e in got} else None

    got = poll(entries, timeout=30)
    assert got, api_get(registry, f"{API}/audit-logs", q=f"resource=~{repo}", page_size=100)
    for e in got:
        assert e["resource"].startswith(repo), e
        assert e["username"] == "admin" and e["resource_type"] == "artifact", e
        assert iso_seconds(e["op_time"]) >= since.timestamp(), e
    # Newest first (Harbor's default order), and the project's own log has the same entries.
    times = [e["op_time"] for e in got]
    assert times == sorted(times, reverse=True)
    project_log = api_get(registry, f"{API}/projects/library/logs", q=f"resource=~{repo}", page_size=100)
    assert {(e["operation"], e["resource"]) for e in project_log} == {(e["operation"], e["resource"]) for e in got}
    # Exact filters narrow the list.
    pulls = api_get(registry, f"{API}/audit-logs", q=f"operation=pull,resource=~{repo}", page_size=100)
    assert pulls and {e["operation"] for e in pulls} == {"pull"}


# Bad input on the real server: Harbor's envelope and a 4xx, never a 500, and nothing changed.


def test_bad_input_gets_harbors_envelope(registry: RegistryServer, images: dict[str, Any]) -> None:
    _, repo, digest = push_tiny(registry, images, "bad-input", "v1")
    before = listed(registry, repo)
    admin = ("admin", registry.password)
    guest = (f"e2ecat-guest-{secrets.token_hex(4)}", f"Guest-Pw1-{secrets.token_hex(8)}")
    user = {"username": guest[0], "password": guest[1], "email": f"{guest[0]}@example.com", "realname": "guest"}
    assert registry.http("POST", f"{API}/users", json=user).status_code == 201
    member = {"role_id": GUEST, "member_user": {"username": guest[0]}}
    assert registry.http("POST", f"{API}/projects/library/members", json=member).status_code == 201
    # A guest reads the artifact but may not change it.
    r = requests.get(registry.url + artifacts_path(repo, "/v1"), auth=guest, timeout=60)
    assert r.status_code == 200 and r.json()["digest"] == digest, r.text
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", artifacts_path(repo, "/sha256:nothex"), {}, 400),
        ("GET", artifacts_path(repo, "/" + "x" * 300), {}, 400),
        ("GET", artifacts_path(repo, f"/{sha256(b'never pushed')}"), {}, 404),
        ("GET", artifacts_path(repo), {"params": {"page_size": "100000"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"page": "0"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"q": "no-operator"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"q": "unknown_field=1"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"with_tag": "maybe"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"sort": "size"}}, 400),
        ("GET", artifacts_path(repo), {"params": {"cursor": "garbage"}}, 400),
        ("GET", artifacts_path(repo_name("cat/never-pushed")), {}, 404),
        ("GET", artifacts_path(repo, f"/{digest}/additions/values.yaml"), {}, 400),
        ("GET", artifacts_path(repo, f"/{digest}/accessories"), {"params": {"q": "type=~"}}, 400),
        ("POST", artifacts_path(repo, f"/{digest}/tags"), {"data": b"{not json", "auth": admin}, 400),
        ("POST", artifacts_path(repo, f"/{digest}/tags"), {"json": {"name": "bad tag!"}, "auth": admin}, 400),
        ("POST", artifacts_path(repo, f"/{digest}/tags"), {"json": {"name": "x" * 200}, "auth": admin}, 400),
        ("POST", artifacts_path(repo, f"/{digest}/tags"), {"json": {"name": "ok", "extra": 1}, "auth": admin}, 400),
        ("POST", artifacts_path(repo), {"params": {"from": "not-a-reference"}, "auth": admin}, 400),
        ("DELETE", artifacts_path(repo, f"/{digest}"), {"auth": ("admin", "wrong-password")}, 401),
        ("DELETE", artifacts_path(repo, f"/{digest}"), {"auth": None}, 401),
        ("DELETE", artifacts_path(repo, f"/{digest}"), {"auth": guest}, 403),
        ("POST", artifacts_path(repo, f"/{digest}/tags"), {"json": {"name": "by-guest"}, "auth": guest}, 403),
        ("DELETE", artifacts_path(repo, f"/{digest}/tags/v1"), {"auth": guest}, 403),
        ("GET", f"{API}/audit-logs", {"auth": None}, 401),
        ("GET", f"{API}/audit-logs", {"params": {"q": "op_time=yesterday"}, "auth": admin}, 400),
        ("GET", f"{API}/icons/sha256:{'0' * 64}", {"auth": None}, 404),
    ]
    for method, path, kw, status in cases:
        auth = kw.pop("auth", admin)
        r = requests.request(method, registry.url + path, auth=auth, timeout=60, **kw)
        where = f"{method} {path} {kw}"
        assert r.status_code == status, f"{where}: {r.status_code} {r.text[:300]}"
        errors = r.json()["errors"]
        assert errors and errors[0]["code"] and errors[0]["message"], f"{where}: {r.text[:300]}"
    # Nothing was written: the artifact, its single tag and its digest are as pushed.
    after = listed(registry, repo)
    assert after == before and [t["name"] for t in after[0]["tags"]] == ["v1"]
    assert registry.get_manifest(repo, "v1").headers.get("Docker-Content-Digest") == digest
