"""/api/v2.0/projects/{p}/repositories/{r}/artifacts: Harbor's artifacts, tags, accessories, additions.

Thin: the route decorator authorises (from the table) and answers; each handler parses the path
and query, makes one service call and builds Harbor's JSON shapes. Repository names arrive
URL-encoded twice (`a%252Fb`, see names.py). Lists page with Harbor's `page`/`page_size` and answer
`X-Total-Count` and `Link`; the `next` link also carries a `cursor`, which lets the next page start
where this one ended (constant work per page; see stores/artifacts.py for what a bare page number
costs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from chalice.app import Response
from pydantic import BaseModel, ConfigDict

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API, iso, listing
from chalicelib.api.mgmt._route import Created, Routes
from chalicelib.api.mgmt.names import decode_repository_name
from chalicelib.api.mgmt.paging import Page, page_headers, parse_page
from chalicelib.api.mgmt.query import AllOf, Exact, InvalidQuery, Query, parse_q, query_bool
from chalicelib.api.mgmt.wire import ZERO_TIME, shape
from chalicelib.core import mediatypes as mt
from chalicelib.core.artifacts import HIDDEN_ACCESSORIES, Accessory, Artifact, Tag, artifact_id
from chalicelib.core.bounds import Id
from chalicelib.core.catalog import Repository
from chalicelib.core.identity import Project
from chalicelib.core.reference import project_of
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalicelib.services.artifacts import Include, Listing, Matcher, PageRequest

routes = Routes(__name__)
bp = routes.blueprint
_FLAGS = ("with_tag", "with_label", "with_scan_overview", "with_sbom_overview", "with_signature",
          "with_immutable_status", "with_accessory", "with_inherited_accessory")  # fmt: skip
_Q_FIELDS: dict[str, type] = {"digest": str, "type": str, "media_type": str, "tags": str, "labels": int,
                              "push_time": datetime, "pull_time": datetime}  # fmt: skip


class TagReq(BaseModel):
    """Harbor's Tag model: only `name` is used; the read-only fields a client may echo are ignored."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    id: Id | None = None
    repository_id: Id | None = None
    artifact_id: Id | None = None
    push_time: str | None = None
    pull_time: str | None = None
    immutable: bool | None = None
    signed: bool | None = None


# Routes.

_REPO = "/projects/{project}/repositories/{repository}/artifacts"
_ART = f"{_REPO}/{{reference}}"


def _copy_source(request: HttpRequest) -> Project:
    """The project a copy's `from=<project>/<repository>@<digest|:tag>` reads from."""
    from chalicelib.services.artifacts import parse_copy_source  # noqa: PLC0415 (services load on first use)

    source, _ = parse_copy_source(request.arg("from"))
    return services().projects.resolve(project_of(source), True)


@routes.get(_REPO)
def list_artifacts(request: HttpRequest, project: Project) -> Response:
    repository = _repository(request, project)
    flags, page, request_page, matches = _list_args(request)
    found = services().artifacts.list_page(repository, request_page, _include(flags), matches)
    records = _views(found, flags, project.project_id, _accepted(request))
    return json_response(records, headers=_page_links(request, _path(request), page, found.total, found.next_cursor))


@routes.post(_REPO, also_in=_copy_source)
def copy_artifact(request: HttpRequest, project: Project) -> Created:
    from chalicelib.services.artifacts import parse_copy_source  # noqa: PLC0415 (services load on first use)

    source, reference = parse_copy_source(request.arg("from"))
    repo = decode_repository_name(request.params["repository"])
    digest = services().artifacts.copy(project, repo, source, reference)
    return Created(f"{_path(request)}/{digest}")


@routes.get(_ART)
def get_artifact(request: HttpRequest, project: Project) -> dict[str, Any]:
    repository = _repository(request, project)
    flags = _flags(request)
    found = services().artifacts.get(repository, _reference(request), _include(flags))
    return _views(found, flags, project.project_id, _accepted(request))[0]


@routes.delete(_ART)
def delete_artifact(request: HttpRequest, project: Project) -> None:
    services().artifacts.delete(_repository(request, project).name, _reference(request))


@routes.get(f"{_ART}/tags")
def list_tags(request: HttpRequest, project: Project) -> Response:
    repository = _repository(request, project)
    page = parse_page(request.arg("page"), request.arg("page_size"))
    name_query = parse_q(request.arg("q"), {"name": str})
    immutable = _bool(request, "with_immutable_status", default=False)
    path = _path(request, f"/{request.params['reference']}/tags")
    if not name_query.is_empty or request.arg("sort"):
        # Filtered or re-sorted: every tag of the artifact (bounded), paged in memory.
        found, every = services().artifacts.all_tags(repository.name, _reference(request), immutable)
        views = [_tag_view(t, found, repository.repository_id, every.immutable) for t in every.items]
        return listing(request, path, views, q_fields={"name": str}, sort_fields=("name", "push_time", "id"))
    from chalicelib.services.artifacts import PageRequest  # noqa: PLC0415 (services load on first use)

    request_page = PageRequest(page.page, page.size, _cursor(request, page))
    found, result = services().artifacts.tags(repository.name, _reference(request), request_page, immutable)
    headers = _page_links(request, path, page, result.total, result.next_cursor)
    views = [_tag_view(t, found, repository.repository_id, result.immutable) for t in result.items]
    return json_response(views, headers=headers)


@routes.post(f"{_ART}/tags", body=TagReq)
def create_tag(request: HttpRequest, body: TagReq, project: Project) -> Created:
    services().artifacts.add_tag(_repository(request, project).name, _reference(request), body.name)
    return Created(f"{_path(request, '/' + request.params['reference'])}/tags/{body.name}")


@routes.delete(f"{_ART}/tags/{{tag_name}}")
def delete_tag(request: HttpRequest, project: Project) -> None:
    repository = _repository(request, project)
    services().artifacts.delete_tag(repository.name, _reference(request), request.params["tag_name"])


@routes.get(f"{_ART}/accessories")
def list_accessories(request: HttpRequest, project: Project) -> Response:
    repository = _repository(request, project)
    views = [_accessory_view(a) for a in services().artifacts.accessories(repository.name, _reference(request))]
    path = _path(request, f"/{request.params['reference']}/accessories")
    return listing(request, path, views, q_fields={"type": str, "digest": str},
                   sort_fields=("creation_time", "size", "type"))  # fmt: skip


@routes.get(f"{_ART}/additions/{{addition}}")
def get_addition(request: HttpRequest, project: Project) -> Response:
    repository = _repository(request, project)
    if request.params["addition"].lower() == "vulnerabilities":  # Harbor: its own route, any artifact
        artifact = services().artifacts.resolve(repository.name, _reference(request))
        return json_response(services().scans.vulnerabilities(artifact, _accepted(request)))
    result = services().artifacts.addition(repository.name, _reference(request), request.params["addition"])
    return Response(body=result.content, status_code=200, headers={"Content-Type": result.content_type})


@routes.get("/projects/{project}/artifacts")
def list_project_artifacts(request: HttpRequest, project: Project) -> Response:
    latest = _bool(request, "latest_in_repository", default=False)
    flags, page, request_page, matches = _list_args(request)
    found = services().artifacts.list_project(project, request_page, _include(flags), matches, latest)
    records = _views(found, flags, project.project_id, _accepted(request))
    path = f"/projects/{request.params['project']}/artifacts"
    return json_response(records, headers=_page_links(request, path, page, found.total, None))


# Handlers' helpers.


def _repository(request: HttpRequest, project: Project) -> Repository:
    """The repository of the path in `project` (full name and integer id)."""
    return services().artifacts.repository(project, decode_repository_name(request.params["repository"]))


def _path(request: HttpRequest, suffix: str = "") -> str:
    """This list's path as clients send it (the repository encoded twice again), for `Link`."""
    repo = quote(request.params["repository"], safe="")
    return f"/projects/{request.params['project']}/repositories/{repo}/artifacts{suffix}"


def _reference(request: HttpRequest) -> str:
    reference = request.params["reference"]
    if not reference or len(reference) > 256:
        raise BadRequest("reference must be a digest or a tag")
    return reference


def _list_args(request: HttpRequest) -> tuple[dict[str, bool], Page, PageRequest, Matcher | None]:
    """What both artifact lists take: flags, page, sort, cursor and the `q` filter."""
    from chalicelib.services.artifacts import PageRequest  # noqa: PLC0415 (services load on first use)

    flags = _flags(request)
    page = parse_page(request.arg("page"), request.arg("page_size"))
    request_page = PageRequest(page.page, page.size, _cursor(request, page), _sort(request.arg("sort")))
    return flags, page, request_page, _matcher(parse_q(request.arg("q"), _Q_FIELDS))


def _matcher(query: Query) -> Matcher | None:
    """`q` as a predicate; Harbor's `tags=*` means "has a tag" and `tags=nil` "has none";
    `labels=<id>` or `labels=(<id> <id>)` keeps artifacts carrying every label listed (Harbor
    refuses any other form of `labels`)."""
    if query.is_empty:
        return None
    term = query.get("tags")
    special = term.value if isinstance(term, Exact) and term.value in ("*", "nil") else None
    rest = Query({k: v for k, v in query.terms.items() if k != "tags" or special is None})
    labels = query.get("labels")
    if labels is not None and not isinstance(labels, Exact | AllOf):
        raise InvalidQuery("q: labels takes a label id or a list of ids that must all be present: labels=(1 2)")

    def matches(artifact: Artifact, tags: list[Tag], label_ids: list[int]) -> bool:
        if special is not None and bool(tags) != (special == "*"):
            return False
        return rest.matches(_q_record(artifact, tags, label_ids))

    from chalicelib.services.artifacts import Matcher  # noqa: PLC0415 (services load on first use)

    return Matcher(matches, uses_tags=term is not None, uses_labels=labels is not None)


# Query parameters.


def _flags(request: HttpRequest) -> dict[str, bool]:
    return {name: _bool(request, name, default=name == "with_tag") for name in _FLAGS}


def _bool(request: HttpRequest, name: str, *, default: bool) -> bool:
    return query_bool(name, request.arg(name), default=default)


def _sort(value: str | None) -> bool:
    """Only push time is indexed: `sort=push_time` (oldest first) or `-push_time` (the default)."""
    if value is None or value.strip() in ("", "-push_time"):
        return False
    if value.strip() in ("push_time", "+push_time"):
        return True
    raise InvalidQuery(f"sort: only push_time or -push_time is supported, got {value[:64]!r}")


def _cursor(request: HttpRequest, page: Page) -> str | None:
    """The store's cursor, if the request's `cursor` was issued for this very page and size
    (`<page>.<size>.<key>`); a client that changed `page` by hand gets that page, by number."""
    value = request.arg("cursor")
    if value is None:
        return None
    number, size, key = [*value.split(".", 2), "", ""][:3]
    if not key or len(value) > 2048 or not (number + size).isascii() or not number.isdigit() or not size.isdigit():
        raise BadRequest("cursor is not valid")
    return key if (int(number), int(size)) == (page.page, page.size) else None


def _page_links(request: HttpRequest, path: str, page: Page, total: int, cursor: str | None) -> dict[str, str]:
    """Harbor's headers; the `next` link also carries the cursor that starts the next page."""
    others = {k: v[-1] for k, v in request.query.items() if k not in ("page", "page_size", "cursor") and v}
    base = f"{API}{path}"
    headers = page_headers(base, others, page, total)
    if cursor and "Link" in headers:
        plain = {**others, "page": str(page.page + 1), "page_size": str(page.size)}
        with_cursor = {**plain, "cursor": f"{page.page + 1}.{page.size}.{cursor}"}
        headers["Link"] = headers["Link"].replace(
            f"{base}?{urlencode(sorted(plain.items()))}>", f"{base}?{urlencode(sorted(with_cursor.items()))}>"
        )
    return headers


def _q_record(artifact: Artifact, tags: list[Tag], label_ids: list[int]) -> dict[str, Any]:
    return {
        "digest": artifact.digest,
        "type": artifact.kind,
        "media_type": artifact.media_type,
        "tags": [t.name for t in tags],
        "labels": label_ids,
        "push_time": datetime.fromtimestamp(artifact.push_time, UTC),
        "pull_time": datetime.fromtimestamp(artifact.pull_time, UTC) if artifact.pull_time else None,
    }


# Views (Harbor's models).


def _include(flags: dict[str, bool]) -> Include:
    from chalicelib.services.artifacts import Include  # noqa: PLC0415 (services load on first use)

    return Include(
        tags=flags["with_tag"],
        accessories=flags["with_accessory"] or flags["with_signature"],
        labels=flags["with_label"],
        immutable=flags["with_tag"] and flags["with_immutable_status"],
    )


def _accepted(request: HttpRequest) -> tuple[str, ...]:
    """The report MIME types `X-Accept-Vulnerabilities` asks for (Harbor's default when absent)."""
    from chalicelib.core.scans import accepted_reports  # noqa: PLC0415 (scan code loads on first use)

    return accepted_reports(request.header("x-accept-vulnerabilities"))


def _views(found: Listing, flags: dict[str, bool], project_id: int, accepted: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_artifact_view(a, found, flags, project_id, accepted) for a in found.items]


def _scan_views(a: Artifact, flags: dict[str, bool], accepted: tuple[str, ...]) -> dict[str, Any]:
    """Harbor's `scan_overview` (the first accepted report MIME type with a report: one key) and
    `sbom_overview`, from the summaries on the artifact's row (an index: its children's, merged)."""
    from chalicelib.core import scans  # noqa: PLC0415 (scan code loads on first use)

    if not (flags["with_scan_overview"] or flags["with_sbom_overview"]):
        return {}
    summaries = services().scans.summaries(a) if (a.scans or a.children) else {}
    out: dict[str, Any] = {}
    if flags["with_scan_overview"]:
        found = scans.pick(summaries, accepted)
        out["scan_overview"] = {found.mime_type: scans.native_summary(found)} if found is not None else {}
    if flags["with_sbom_overview"] and scans.SBOM_REPORT in summaries:
        out["sbom_overview"] = scans.sbom_overview(summaries[scans.SBOM_REPORT])
    return out


def _artifact_view(a: Artifact, found: Listing, flags: dict[str, bool], project_id: int,
                   accepted: tuple[str, ...]) -> dict[str, Any]:  # fmt: skip
    """Harbor's Artifact model; `labels` is filled only with `with_label=true` (Harbor's default is
    false) and each tag's `immutable` only with `with_immutable_status=true`."""
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)
    from chalicelib.processors.icon import display_icon  # noqa: PLC0415 (processors load on first use)

    key = (a.repository, a.digest)
    accessories = found.accessories.get(key)
    repository_id = found.repository_ids[a.repository]
    project, _, repo = a.repository.partition("/")
    encoded = quote(quote(repo, safe=""), safe="")
    links: dict[str, Any] = {}
    if a.kind == "IMAGE" and a.manifest_media_type in mt.IMAGE_MANIFESTS:
        href = f"{API}/projects/{project}/repositories/{encoded}/artifacts/{a.digest}/additions/build_history"
        links["build_history"] = {"href": href, "absolute": False}
    view: dict[str, Any] = {
        "id": a.id,
        "type": a.kind,
        "media_type": a.media_type,
        "manifest_media_type": a.manifest_media_type,
        "artifact_type": a.artifact_type or (a.media_type if a.manifest_media_type in mt.IMAGE_MANIFESTS else ""),
        "project_id": project_id,
        "repository_id": repository_id,
        "repository_name": a.repository,
        "digest": a.digest,
        "size": a.size,
        "icon": display_icon(a.kind, a.icon),
        "push_time": iso(a.push_time),
        "pull_time": iso(a.pull_time) if a.pull_time else ZERO_TIME,
        "extra_attrs": a.extra_attrs,
        "annotations": a.annotations,
        "references": _references(a),
        "addition_links": links,
        "labels": found.labels.get(key, []),
    }
    if flags["with_tag"]:
        signed = None
        if flags["with_signature"]:
            signed = any(x.type in HIDDEN_ACCESSORIES and x.type.startswith("signature.") for x in accessories or [])
        view["tags"] = [_tag_view(t, a, repository_id, found.immutable, signed=signed) for t in found.tags.get(key, [])]
    if flags["with_accessory"]:
        view["accessories"] = [_accessory_view(x) for x in accessories or []]
    view.update(_scan_views(a, flags, accepted))
    return shape(wire.Artifact, view)


def _references(a: Artifact) -> list[dict[str, Any]] | None:
    if a.manifest_media_type not in mt.INDEXES:
        return None
    parent = a.id
    out = []
    for d in a.descriptors or [{"digest": c} for c in a.children]:
        ref: dict[str, Any] = {"parent_id": parent, "child_id": artifact_id(a.repository, d["digest"]),
                               "child_digest": d["digest"]}  # fmt: skip
        for key in ("platform", "annotations", "urls"):
            if isinstance(d.get(key), dict | list):
                ref[key] = d[key]
        out.append(ref)
    return out


def _tag_view(t: Tag, a: Artifact, repository_id: int, immutable: frozenset[tuple[str, str]], *,
              signed: bool | None = None) -> dict[str, Any]:  # fmt: skip
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    view: dict[str, Any] = {
        "id": t.id,
        "repository_id": repository_id,
        "artifact_id": a.id,
        "name": t.name,
        "push_time": iso(t.push_time),
        "pull_time": iso(t.pull_time) if t.pull_time else ZERO_TIME,
        "immutable": (t.repository, t.name) in immutable,
    }
    if signed is not None:
        view["signed"] = signed
    return shape(wire.Tag, view)


def _accessory_view(x: Accessory) -> dict[str, Any]:
    from chalicelib.api.mgmt.wire import models as wire  # noqa: PLC0415 (response models load on first use)

    return shape(
        wire.Accessory,
        {
            "id": artifact_id(x.subject_repository, x.digest),
            "artifact_id": artifact_id(x.subject_repository, x.digest),
            "subject_artifact_id": artifact_id(x.subject_repository, x.subject),
            "subject_artifact_repo": x.subject_repository,
            "subject_artifact_digest": x.subject,
            "size": x.size,
            "digest": x.digest,
            "type": x.type,
            "icon": "",
            "creation_time": iso(x.push_time),
        },
    )
