"""/api/v2.0/audit-logs and /api/v2.0/projects/{project}/logs: Harbor's (legacy) audit log lists;
/auditlog-exts, /projects/{project}/auditlog-exts and /auditlog-exts/events: Harbor 2.13's extended
log, the same rows with an operation description and result (every recorded operation succeeded).

Paging, `q` and `sort` are pushed down to the store (a time window, field conditions, newest or
oldest first) rather than applied to a list in memory, because an audit log grows without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.paging import page_headers, parse_page, parse_sort
from chalicelib.api.mgmt.query import AnyOf, Exact, Fuzzy, InvalidQuery, Query, Range, parse_q
from chalicelib.core.audit import FILTER_FIELDS, AuditEntry, AuditFilter
from chalicelib.core.identity import Project
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
_Q_FIELDS: dict[str, type] = {**dict.fromkeys(FILTER_FIELDS, str), "op_time": datetime}
# (filter, offset, size, newest_first) -> (total, entries on the page)
Lister = Callable[[AuditFilter, int, int, bool], tuple[int, list[AuditEntry]]]


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    op_time = datetime.fromtimestamp(entry.op_time_ms / 1000, UTC)
    return {
        "id": entry.log_id,
        "username": entry.username,
        "resource": entry.resource,
        "resource_type": entry.resource_type,
        "operation": entry.operation,
        "op_time": f"{op_time:%Y-%m-%dT%H:%M:%S}.{entry.op_time_ms % 1000:03d}Z",
    }


def ext_view(entry: AuditEntry) -> dict[str, Any]:
    """Harbor's AuditLogExt: the legacy fields plus the description and the result."""
    return {**entry_view(entry), "operation_description": entry.operation_description, "operation_result": True}


def audit_filter(query: Query) -> AuditFilter:
    """The parsed `q` as a store filter; forms the store cannot answer are a 400, not ignored."""
    flt = AuditFilter()
    for key, term in query.terms.items():
        if key == "op_time":
            flt = _time_window(flt, term)
        elif isinstance(term, Exact):
            flt.exact[key] = str(term.value)
        elif isinstance(term, Fuzzy):
            flt.fuzzy[key] = term.value
        elif isinstance(term, AnyOf):
            flt.any_of[key] = tuple(str(v) for v in term.values)
        else:
            raise InvalidQuery(f'q: "{key}" takes an exact value, ~substring or {{a b}} list')
    return flt


def _time_window(flt: AuditFilter, term: object) -> AuditFilter:
    if isinstance(term, Range):
        since = _ms(term.min) if isinstance(term.min, datetime) else None
        until = _ms(term.max) + 999 if isinstance(term.max, datetime) else None
    elif isinstance(term, Exact) and isinstance(term.value, datetime):
        since = _ms(term.value)
        until = since + 999
    else:
        raise InvalidQuery('q: "op_time" takes a time or a range [from~to]')
    return AuditFilter(since, until, flt.exact, flt.fuzzy, flt.any_of)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def _respond(request: HttpRequest, path: str, lister: Lister,
             view: Callable[[AuditEntry], dict[str, Any]] = entry_view) -> Response:  # fmt: skip
    page = parse_page(request.arg("page"), request.arg("page_size"))
    flt = audit_filter(parse_q(request.arg("q"), _Q_FIELDS))
    sort = parse_sort(request.arg("sort"), ("op_time",))
    newest_first = not sort or sort[0][1]
    total, entries = lister(flt, page.offset, page.size, newest_first)
    others = {k: v[-1] for k, v in request.query.items() if k not in ("page", "page_size") and v}
    return json_response([view(e) for e in entries], headers=page_headers(f"{API}{path}", others, page, total))


def _all(request: HttpRequest, path: str, view: Callable[[AuditEntry], dict[str, Any]]) -> Response:
    """Every entry the caller may see: all of them for a system reader, else its projects'."""
    audit, caller = services().audit, request.principal
    return _respond(
        request,
        path,
        lambda flt, offset, size, newest: audit.list_all(caller, flt, offset, size, newest_first=newest),
        view,
    )


def _in_project(request: HttpRequest, project: Project, leaf: str,
                view: Callable[[AuditEntry], dict[str, Any]]) -> Response:  # fmt: skip
    audit = services().audit
    return _respond(
        request,
        f"/projects/{request.params['project']}/{leaf}",
        lambda flt, offset, size, newest: audit.list_project(project, flt, offset, size, newest_first=newest),
        view,
    )


@routes.get("/audit-logs")
def audit_logs(request: HttpRequest) -> Response:
    return _all(request, "/audit-logs", entry_view)


@routes.get("/auditlog-exts")
def audit_log_exts(request: HttpRequest) -> Response:
    return _all(request, "/auditlog-exts", ext_view)


@routes.get("/auditlog-exts/events")
def audit_log_event_types(request: HttpRequest) -> list[dict[str, str]]:
    return [{"event_type": t} for t in services().audit.event_types()]


@routes.get("/projects/{project}/logs")
def project_logs(request: HttpRequest, project: Project) -> Response:
    return _in_project(request, project, "logs", entry_view)


@routes.get("/projects/{project}/auditlog-exts")
def project_log_exts(request: HttpRequest, project: Project) -> Response:
    return _in_project(request, project, "auditlog-exts", ext_view)
