"""The OCI referrers API of a proxy-cache project (Harbor's `proxy_referrer_api`), over HTTP on moto
against the in-process upstream (`tests/upstream_double.py`): the upstream's referrers with the
`artifactType` filter applied, pages followed, the referrers cached here merged in, an upstream
404 passed on, the last answer served when the upstream is down or unhealthy, the local answer
when the setting is off, and bad input answered with 4xx."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.functional import test_proxy_cache
from tests.functional.conftest import LiveRegistry
from tests.functional.helpers import assert_error
from tests.functional.test_proxy_cache import API, PROJECT, Proxy, _configure, _create_project, _create_registry
from tests.upstream_double import OCI_INDEX, Upstream

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"

basic_proxy = test_proxy_cache.basic_proxy  # the fixture: an upstream and a proxy-cache project of it


@pytest.fixture
def referring(basic_proxy: Proxy) -> Proxy:
    """The proxy-cache project of `basic_proxy`, with `proxy_referrer_api` turned on."""
    _turn_on(basic_proxy.registry)
    return basic_proxy


def _turn_on(registry: LiveRegistry) -> None:
    from chalicelib.wiring import services

    response = registry.put(f"{API}/projects/{PROJECT}", json={"metadata": {"proxy_referrer_api": "true"}})
    assert response.status_code == 200, response.get_data()
    services().proxy.forget(PROJECT)  # the settings are reread every 15 s: now


def _subject_with_referrers(upstream: Upstream) -> tuple[str, str, str]:
    subject, _ = upstream.add_image("team/app", "v1", [os.urandom(100)])
    signature = upstream.add_referrer("team/app", subject, SIGNATURE, seed="sig")
    sbom = upstream.add_referrer("team/app", subject, SBOM, seed="sbom")
    return subject, signature, sbom


def _referrers(proxy: Proxy, subject: str, **query: str) -> list[str]:
    response = proxy.registry.get(f"/v2/{PROJECT}/team/app/referrers/{subject}", query_string=query)
    assert response.status_code == 200, response.get_data()[:500]
    assert response.headers["Content-Type"] == OCI_INDEX
    document = response.get_json(force=True)
    assert document["mediaType"] == OCI_INDEX
    return sorted(d["digest"] for d in document["manifests"])


def _upstream_referrer_calls(upstream: Upstream) -> int:
    return sum(v for (m, p), v in upstream.requests.items() if "/referrers/" in p)


def test_the_upstreams_referrers_are_listed_and_filtered(referring: Proxy) -> None:
    upstream = referring.upstream
    subject, signature, sbom = _subject_with_referrers(upstream)
    assert _referrers(referring, subject) == sorted([signature, sbom])
    response = referring.registry.get(f"/v2/{PROJECT}/team/app/referrers/{subject}",
                                      query_string={"artifactType": SBOM})  # fmt: skip
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    [only] = response.get_json(force=True)["manifests"]
    assert (only["digest"], only["artifactType"], only["annotations"]) == (sbom, SBOM, {"seed": "sbom"})
    # An upstream that ignores the filter (the spec allows it) is filtered here.
    upstream.referrers_filter = False
    assert _referrers(referring, subject, artifactType=SIGNATURE) == [signature]
    # Pages are followed: one answer with everything.
    upstream.referrers_page = 1
    assert _referrers(referring, subject) == sorted([signature, sbom])
    assert _upstream_referrer_calls(upstream) >= 4


def test_endless_upstream_pages_are_not_followed(referring: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.adapters.registry import client

    monkeypatch.setattr(client, "MAX_REFERRER_PAGES", 2)
    upstream = referring.upstream
    subject, _, _ = _subject_with_referrers(upstream)
    upstream.add_referrer("team/app", subject, SBOM, seed="third")
    upstream.referrers_page = 1  # three pages
    assert _referrers(referring, subject) == []  # refused after 2 pages: the local answer
    assert _upstream_referrer_calls(upstream) == 3  # Basic auth's challenge, then two pages: not the third


def test_the_setting_off_answers_locally_without_asking(basic_proxy: Proxy) -> None:
    upstream = basic_proxy.upstream
    subject, _, _ = _subject_with_referrers(upstream)
    assert _referrers(basic_proxy, subject) == []
    assert _upstream_referrer_calls(upstream) == 0
    _turn_on(basic_proxy.registry)  # a metadata update turns it on
    assert len(_referrers(basic_proxy, subject)) == 2


def test_an_upstream_without_the_api_is_a_404(referring: Proxy) -> None:
    upstream = referring.upstream
    subject, _, _ = _subject_with_referrers(upstream)
    upstream.referrers_api = False
    response = referring.registry.get(f"/v2/{PROJECT}/team/app/referrers/{subject}")
    assert_error(response, 404, "NOT_FOUND")


def test_the_referrers_cached_here_are_merged_in(referring: Proxy) -> None:
    upstream = referring.upstream
    subject, signature, sbom = _subject_with_referrers(upstream)
    referring.pull("team/app", signature)  # a client pulled the signature through the cache
    upstream.manifests.pop(("team/app", signature))  # then it went away upstream
    assert _referrers(referring, subject) == sorted([signature, sbom])
    assert _referrers(referring, subject, artifactType=SBOM) == [sbom]


def test_the_last_answer_is_served_when_the_upstream_is_down(referring: Proxy) -> None:
    upstream = referring.upstream
    subject, signature, sbom = _subject_with_referrers(upstream)
    other, _ = upstream.add_image("team/app", "v2", [os.urandom(50)])
    other_signature = upstream.add_referrer("team/app", other, SIGNATURE, seed="other")
    assert _referrers(referring, subject) == sorted([signature, sbom])
    referring.pull("team/app", other_signature)
    upstream.referrers_broken = True  # 500: the answer kept from the last call
    assert _referrers(referring, subject) == sorted([signature, sbom])
    upstream.stop()
    assert _referrers(referring, subject) == sorted([signature, sbom])
    # Never asked before: what the cache holds (the pulled signature), not an error.
    assert _referrers(referring, other) == [other_signature]
    assert _referrers(referring, subject, artifactType=SIGNATURE) == []  # this filter was never asked


def test_an_unhealthy_registry_is_not_asked(referring: Proxy) -> None:
    from chalicelib.stores.registries import RegistryStore
    from chalicelib.wiring import services

    upstream = referring.upstream
    subject, signature, sbom = _subject_with_referrers(upstream)
    assert _referrers(referring, subject) == sorted([signature, sbom])
    calls = _upstream_referrer_calls(upstream)
    RegistryStore().set_status(referring.registry_id, "unhealthy")
    services().proxy._registry_cache.clear()  # the 15 s reread, now
    assert _referrers(referring, subject) == sorted([signature, sbom])
    fresh, _ = upstream.add_image("team/app", "v3", [os.urandom(10)])
    upstream.add_referrer("team/app", fresh, SIGNATURE)
    assert _referrers(referring, fresh) == []
    assert _upstream_referrer_calls(upstream) == calls


def test_the_repository_filter_applies(registry: LiveRegistry, tmp_path: Path) -> None:
    _configure(registry, tmp_path)
    upstream = Upstream()
    try:
        registry_id = _create_registry(registry, upstream)
        _create_project(registry, registry_id, proxy_referrer_api="true", proxy_cache_filter_pattern="other/**")
        subject, _, _ = _subject_with_referrers(upstream)
        response = registry.get(f"/v2/{PROJECT}/team/app/referrers/{subject}")
        assert_error(response, 404, "NAME_UNKNOWN")
        assert _upstream_referrer_calls(upstream) == 0
    finally:
        upstream.stop()


@pytest.mark.parametrize(
    ("digest", "status"),
    [
        ("sha256:zz", 400),
        ("md5:" + "a" * 32, 400),
        ("sha256:" + "A" * 64, 400),
        ("nodigest", 400),
        ("sha256:" + "a" * 65, 400),
        ("%00", 400),
    ],
)
def test_bad_digests_are_400(referring: Proxy, digest: str, status: int) -> None:
    response = referring.registry.get(f"/v2/{PROJECT}/team/app/referrers/{digest}")
    assert response.status_code == status, (digest, response.get_data()[:300])
    assert _upstream_referrer_calls(referring.upstream) == 0


@pytest.mark.parametrize(
    "path",
    [
        f"/v2/{PROJECT}/Team/App/referrers/sha256:{'a' * 64}",
        f"/v2/{PROJECT}/team//app/referrers/sha256:{'a' * 64}",
        f"/v2/{PROJECT}/team/app/referrers/",
        f"/v2/{PROJECT}/team/app/referrers/sha256:{'a' * 64}/extra",
    ],
)
def test_bad_names_are_4xx(referring: Proxy, path: str) -> None:
    response = referring.registry.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.get_data()[:300])


def test_credentials_are_checked_before_the_upstream_is_asked(referring: Proxy) -> None:
    subject, _, _ = _subject_with_referrers(referring.upstream)
    path = f"/v2/{PROJECT}/team/app/referrers/{subject}"
    assert referring.registry.get(path, auth=None).status_code == 401
    assert referring.registry.get(path, auth=("admin", "wrong-password")).status_code == 401
    assert _upstream_referrer_calls(referring.upstream) == 0
