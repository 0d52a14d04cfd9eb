"""/api/v2.0/security: Harbor's security hub (system `security-hub` read and list).

`q` on `/security/vul` takes Harbor's keys: exact matches on `cve_id`, `severity`, `status`,
`repository_name`, `project_id`, `package`, `tag`, `digest`, and a range on `cvss_score_v3`
(`[min~max]`). As in Harbor, any other key, and any other kind of term (fuzzy, lists), is a 400.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Response

from chalicelib.api.edge import HttpRequest, json_response
from chalicelib.api.mgmt._edge import API
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.paging import page_headers, parse_page
from chalicelib.api.mgmt.query import Exact, InvalidQuery, Range, parse_q, query_bool
from chalicelib.core import securityhub as hub
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint

_Q_KEYS: dict[str, type] = {
    "cve_id": str, "severity": str, "status": str, "repository_name": str, "project_id": int, "package": str,
    "tag": str, "digest": str, "cvss_score_v3": float,
}  # fmt: skip


@routes.get("/security/summary")
def security_summary(request: HttpRequest) -> dict[str, Any]:
    return services().securityhub.summary(
        with_cve=query_bool("with_dangerous_cve", request.arg("with_dangerous_cve"), default=False),
        with_artifact=query_bool("with_dangerous_artifact", request.arg("with_dangerous_artifact"), default=False),
    )


def _filter(text: str | None) -> hub.VulFilter:
    query = parse_q(text, _Q_KEYS)
    exact: dict[str, str | int] = {}
    score: tuple[float | None, float | None] | None = None
    tag: str | None = None
    for key, term in query.terms.items():
        if key == "cvss_score_v3":
            if not isinstance(term, Range):
                raise InvalidQuery(f"keyword: {key}, the query type is not allowed")
            score = (_number(term.min), _number(term.max))
            continue
        if not isinstance(term, Exact) or isinstance(term.value, bool):
            raise InvalidQuery(f"keyword: {key}, the query type is not allowed")
        if key == "tag":
            tag = str(term.value)
        else:
            exact[key] = term.value if isinstance(term.value, int) else str(term.value)
    return hub.VulFilter(exact, score, tag)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@routes.get("/security/vul")
def list_vulnerabilities(request: HttpRequest) -> Response:
    wanted = _filter(request.arg("q"))
    page = parse_page(request.arg("page"), request.arg("page_size"))
    found = services().securityhub.vulnerabilities(
        wanted, page.offset, page.size,
        tune_count=query_bool("tune_count", request.arg("tune_count"), default=False),
        with_tag=query_bool("with_tag", request.arg("with_tag"), default=False),
    )  # fmt: skip
    others = {k: v[-1] for k, v in request.query.items() if k not in ("page", "page_size") and v}
    headers = page_headers(f"{API}/security/vul", others, page, found.total)
    return json_response(found.items, headers=headers)
