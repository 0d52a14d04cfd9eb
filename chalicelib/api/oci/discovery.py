"""Tags list, catalog and referrers, each paginated with `n`/`last` and a `Link` header."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, empty_response, json_response
from chalicelib.api.oci._http import next_link, page_size
from chalicelib.core import mediatypes as mt
from chalicelib.core.models import Moved
from chalicelib.services.repositories import referrer_index
from chalicelib.wiring import services


def list_tags(request: HttpRequest) -> Response:
    name = request.params["name"]
    registry = services()
    limit = page_size(request.arg("n"), registry.settings.page_max_entries)
    # In a proxy-cache project the upstream's tags are merged in (services/proxy_cache.py).
    listed = registry.proxy.tags(name, limit, request.arg("last"))
    if isinstance(listed, Moved):
        return empty_response(301, {"Location": listed.location})
    tags, more = listed
    headers = {"Link": next_link(f"/v2/{name}/tags/list", limit, tags[-1])} if more else {}
    return json_response({"name": name, "tags": tags}, headers=headers)


def catalog(request: HttpRequest) -> Response:
    registry = services()
    limit = page_size(request.arg("n"), registry.settings.page_max_entries)
    names, more = registry.repositories.catalog(limit, request.arg("last"))
    headers = {"Link": next_link("/v2/_catalog", limit, names[-1])} if more else {}
    return json_response({"repositories": names}, headers=headers)


def referrers(request: HttpRequest) -> Response:
    artifact_type = request.arg("artifactType")
    # In a proxy-cache project with `proxy_referrer_api` the upstream is asked (services/proxy_cache.py).
    descriptors = services().proxy.referrers(request.params["name"], request.params["digest"], artifact_type)
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    return json_response(referrer_index(descriptors), headers=headers)
