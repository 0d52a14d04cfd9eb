"""Pull-based replication applies every filter to a remote source, as Harbor does, over HTTP on moto
against the in-process upstream (`tests/upstream_double.py`): `label` with `matches` and
`excludes` on a `harbor` source (its artifact API names the labels) and on a `docker-registry`
one (no labels: `matches` selects nothing, `excludes` everything), and `resource` (`image` leaves
a non-image artifact where it is; `artifact` copies it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.jobs import test_replication_api
from tests.functional.jobs.test_replication_api import Replication
from tests.upstream_double import OCI_MANIFEST, Upstream, canonical

rep = test_replication_api.rep  # the fixture: the replication machine on moto, and a local project `rep`


@pytest.fixture
def upstream(rep: Replication) -> Iterator[Upstream]:
    rep.configure(egress_allow_networks="127.0.0.1/32")
    double = Upstream(auth="none")
    try:
        yield double
    finally:
        double.stop()


def _content(upstream: Upstream) -> None:
    """rep/app: v1 labelled a and b, v2 labelled a, v3 unlabelled, and `bundle`, not an image."""
    for tag, labels in (("v1", ["a", "b"]), ("v2", ["a"]), ("v3", [])):
        digest, _ = upstream.add_image("rep/app", tag, [os.urandom(64)], seed=tag)
        upstream.labels[digest] = labels
    config = {**upstream.add_blob(b'{"kind":"bundle"}'), "mediaType": "application/vnd.example.bundle.config.v1+json"}
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                "layers": [upstream.add_blob(os.urandom(32))]}  # fmt: skip
    upstream.add_manifest("rep/app", canonical(document), OCI_MANIFEST, "bundle")


def _source(rep: Replication, upstream: Upstream, registry_type: str) -> int:
    from chalicelib.core.registries import Registry
    from chalicelib.stores.registries import RegistryStore

    return RegistryStore().create(Registry(0, f"up-{registry_type}", registry_type, upstream.url)).id


def _pull(rep: Replication, source: int, name: str, *filters: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run a pull-based policy with these filters; the execution and the local tags of rep/app after it."""
    policy_id = rep.create(name=name, dest_registry=None, src_registry={"id": source}, dest_namespace="",
                           filters=[{"type": "name", "value": "rep/**"}, *filters])  # fmt: skip
    done = rep.wait(rep.start(policy_id))
    listed = rep.get("/v2/rep/app/tags/list")
    tags = sorted(listed.get_json()["tags"]) if listed.status_code == 200 else []
    for tag in tags:  # the next policy starts from nothing
        digest = rep.head(f"/v2/rep/app/manifests/{tag}").headers.get("Docker-Content-Digest")
        if digest:
            rep.delete(f"/v2/rep/app/manifests/{digest}")
    return done, tags


def test_a_harbor_sources_labels_select_as_harbor_selects(rep: Replication, upstream: Upstream) -> None:
    _content(upstream)
    source = _source(rep, upstream, "harbor")
    done, tags = _pull(rep, source, "labels-all", {"type": "label", "value": ["a", "b"]})
    assert (done["status"], tags) == ("Succeed", ["v1"])
    # `excludes`: every artifact not carrying all of them (v2 carries only a: kept, as in Harbor).
    done, tags = _pull(rep, source, "labels-not", {"type": "label", "value": ["a", "b"], "decoration": "excludes"})
    assert (done["status"], tags) == ("Succeed", ["bundle", "v2", "v3"])
    done, tags = _pull(rep, source, "label-a", {"type": "label", "value": ["a"], "decoration": "matches"},
                       {"type": "tag", "value": "v2"})  # fmt: skip
    assert tags == ["v2"]


def test_a_registry_without_labels_is_filtered_as_harbor_filters_it(rep: Replication, upstream: Upstream) -> None:
    _content(upstream)
    source = _source(rep, upstream, "docker-registry")
    # No artifact there carries a label: `matches` selects nothing, and the execution is empty.
    done, tags = _pull(rep, source, "labels", {"type": "label", "value": ["a"]})
    assert (done["status"], tags) == ("Succeed", [])
    assert rep.call("GET", f"/replication/executions/{done['id']}/tasks").get_json() == []
    done, tags = _pull(rep, source, "no-labels", {"type": "label", "value": ["a"], "decoration": "excludes"})
    assert (done["status"], tags) == ("Succeed", ["bundle", "v1", "v2", "v3"])


def test_the_resource_filter_keeps_images_or_every_artifact(rep: Replication, upstream: Upstream) -> None:
    _content(upstream)
    source = _source(rep, upstream, "docker-registry")
    done, tags = _pull(rep, source, "images", {"type": "resource", "value": "image"})
    assert (done["status"], tags) == ("Succeed", ["v1", "v2", "v3"])
    tasks = rep.call("GET", f"/replication/executions/{done['id']}/tasks").get_json()
    [bundle] = [t for t in tasks if t["src_resource"] == "rep/app:[bundle]"]
    assert bundle["status"] == "Succeed"
    log = rep.call("GET", f"/replication/executions/{done['id']}/tasks/{bundle['id']}/log").get_data(as_text=True)
    assert "is not selected by the filters" in log
    done, tags = _pull(rep, source, "artifacts", {"type": "resource", "value": "artifact"})
    assert (done["status"], tags) == ("Succeed", ["bundle", "v1", "v2", "v3"])
    # From a `harbor` source too.
    done, tags = _pull(rep, _source(rep, upstream, "harbor"), "harbor-images", {"type": "resource", "value": "image"})
    assert (done["status"], tags) == ("Succeed", ["v1", "v2", "v3"])
