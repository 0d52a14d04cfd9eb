"""The /api/v2.0 route decorator: one short function per route and method.

`Routes(__name__)` wraps a Chalice blueprint; `@routes.get("/projects/{project}/members")` registers
a handler for one method. Around the handler, once for every route:
- the caller is identified (Basic credentials; registry tokens are refused here, as in Harbor);
- the JSON body is parsed into the declared pydantic model (`body=`, bounded and strict) and the
  query string into the declared model (`query=`); malformed input is a 400 naming the field;
- the route's entry in `permissions.RULES` is checked against the caller before the handler runs
  (the project comes from the `{project}` segment, or from the route's `locate` function);
- the handler's answer becomes the response: a dict or list is shaped by the Harbor model
  registered for the route (omit-empty), `Page` is a filtered, sorted, paged list with
  `X-Total-Count` and `Link`, `Created` a 201 with `Location`, `None` an empty 200;
- typed errors become Harbor's error envelope (`edge.guarded`), with `X-Request-Id`.

Handlers receive the request and, by name, what they declare: `body`, `query` and `project` (the
project the rule was checked in).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel

from chalicelib.api.edge import HttpRequest, guarded, json_response, request_from
from chalicelib.api.mgmt import permissions
from chalicelib.api.mgmt._edge import API, body, created, identified, listing, ok, validated
from chalicelib.api.mgmt.names import is_resource_name
from chalicelib.api.mgmt.permissions import Rule, Scope
from chalicelib.api.mgmt.wire import HarborModel, shape
from chalicelib.auth.rbac import PUBLIC_PROJECT_PERMISSIONS
from chalicelib.core.identity import Project
from chalicelib.errors import ProjectNotFound, Unauthorized
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalicelib.api.mgmt.wire.routes import ResponseModel

Locate = Callable[[HttpRequest], Project | None]
"""Finds the project a rule is checked in; None means the system scope (`PROJECT_OR_SYSTEM`)."""


@dataclass(frozen=True)
class Created:
    """201 with `Location` (under /api/v2.0) and, for some routes, a JSON body."""

    location: str
    payload: Any = None


@dataclass(frozen=True)
class Page:
    """A Harbor list: `q` filtering on `q_fields`, sorting on `sort_fields`, paging, and `fill`
    completing only the returned page (fields too costly to compute for every record)."""

    records: list[dict[str, Any]]
    q_fields: Mapping[str, type] | None = None
    sort_fields: tuple[str, ...] = ()
    fill: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None


Reply = Response | Created | Page | dict[str, Any] | list[Any] | None


def project_in_path(request: HttpRequest) -> Project:
    """The `{project}` segment: a name or a numeric id (`X-Is-Resource-Name: true` forces a name)."""
    value = request.params["project"]
    return services().projects.resolve(value, is_resource_name(value, request.header("x-is-resource-name")))


def project_named_in_path(request: HttpRequest) -> Project:
    """The `{project}` segment of repository and artifact routes: always a name (Harbor's
    `project_name`)."""
    return services().projects.resolve(request.params["project"], force_name=True)


@dataclass
class Routes:
    """The routes of one /api/v2.0 resource module; `blueprint` is what `app.py` registers."""

    import_name: str
    blueprint: Blueprint = field(init=False)

    def __post_init__(self) -> None:
        self.blueprint = Blueprint(self.import_name)

    def get(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("GET", path, **options)

    def head(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("HEAD", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        return self.route("DELETE", path, **options)

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        locate: Locate | None = None,
        also_in: Callable[[HttpRequest], Project] | None = None,
    ) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        rule = permissions.RULES.get((method, path))
        if rule is None:
            raise LookupError(f"{method} {path} has no entry in permissions.RULES")
        if (rule.also is None) != (also_in is None):
            raise LookupError(f"{method} {path}: a rule's second permission and `also_in` go together")
        if locate is None and rule.scope in _LOCATED:
            if "{project}" not in path:
                raise LookupError(f"{method} {path}: a project rule needs the {{project}} segment or `locate`")
            locate = project_in_path
        blueprint = self.blueprint

        def decorate(handler: Callable[..., Reply]) -> Callable[..., Response]:
            wants = set(inspect.signature(handler).parameters)
            endpoint = _Endpoint(handler, rule, locate, also_in, body, query, wants, method, path)

            def view(**params: str) -> Response:
                request = request_from(blueprint.current_request).with_params(params)
                return guarded(endpoint.serve, request)

            view.__name__ = handler.__name__
            view.__doc__ = handler.__doc__
            view.rule = rule  # type: ignore[attr-defined]  # read by the route-table test
            blueprint.route(f"{API}{path}", methods=[method], content_types=["*/*"])(view)
            return view

        return decorate


@dataclass(frozen=True)
class _Endpoint:
    handler: Callable[..., Reply]
    rule: Rule
    locate: Locate | None
    also_in: Callable[[HttpRequest], Project] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    wants: set[str]
    method: str
    path: str

    @cached_property
    def answer(self) -> ResponseModel | None:
        """The Harbor model of this route's JSON answer, looked up on its first answer."""
        return _response_model(self.method, self.path)

    def serve(self, request: HttpRequest) -> Response:
        request = identified(request)
        try:
            return self._serve(request)
        except ProjectNotFound:
            # An anonymous caller gets the same 401 for a project that does not exist as for a
            # private one (Harbor's answer too), so probing names or ids cannot tell which exist.
            if request.principal.authenticated:
                raise
            raise Unauthorized("log in to access this project") from None

    def _serve(self, request: HttpRequest) -> Response:
        if not request.principal.authenticated and not _anonymous_may(self.rule):
            # Before parsing anything: a bad body or a lookup would tell an anonymous caller more
            # than "log in" (which ids exist), and Harbor answers such a caller 401 first too.
            raise Unauthorized("log in first")
        arguments: dict[str, Any] = {}
        if self.query is not None:
            arguments["query"] = validated(self.query, {k: v[-1] for k, v in request.query.items() if v})
        if self.body is not None:
            arguments["body"] = body(request, self.body)
        project = authorise(request, self.rule, self.locate)
        if self.rule.also is not None and self.also_in is not None:
            services().access.require_project(request.principal, self.also_in(request), self.rule.also)
        if "project" in self.wants:
            arguments["project"] = project
        return self._respond(request, self.handler(request, **arguments))

    def _respond(self, request: HttpRequest, reply: Reply) -> Response:
        if isinstance(reply, Response):
            return reply
        if reply is None:
            return ok()
        if isinstance(reply, Created):
            return created(f"{API}{reply.location}", self._shaped(reply.payload))
        if isinstance(reply, Page):
            fill = reply.fill

            def shaped(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [self._shaped(item) for item in (fill(page) if fill else page)]

            path = self.path.format(**request.params)
            return listing(request, path, reply.records, q_fields=reply.q_fields, sort_fields=reply.sort_fields,
                           fill=shaped)  # fmt: skip
        if isinstance(reply, list):
            return json_response([self._shaped(item) for item in reply])
        return json_response(self._shaped(reply))

    def _shaped(self, item: Any) -> Any:
        model: type[HarborModel] | None = self.answer.model if self.answer else None
        return shape(model, item) if model is not None and isinstance(item, dict) else item


def authorise(request: HttpRequest, rule: Rule, locate: Locate | None) -> Project | None:
    """Check the route's rule for the caller; the project it was checked in, if any."""
    principal, access = request.principal, services().access
    if rule.scope is Scope.PUBLIC:
        return None
    if not principal.authenticated and rule.scope in (Scope.SIGNED_IN, Scope.PROJECT_OR_SIGNED_IN):
        raise Unauthorized("log in first")
    if rule.permission is None:
        return None
    if rule.own and _own_account(request):
        return None
    where = locate(request) if locate is not None and rule.scope is not Scope.SYSTEM else None
    if where is None and rule.scope in (Scope.PROJECT_OR_SIGNED_IN, Scope.PROJECT_OR_PUBLIC):
        return None
    if where is None:
        access.require_system(principal, rule.permission)
    else:
        access.require_project(principal, where, rule.permission)
    return where


def _anonymous_may(rule: Rule) -> bool:
    """Whether an anonymous caller can ever pass `rule`: open routes, and project reads that a
    public project grants everyone."""
    if rule.scope in (Scope.PUBLIC, Scope.PROJECT_OR_PUBLIC):
        return True
    if rule.scope in (Scope.SIGNED_IN, Scope.SYSTEM, Scope.PROJECT_OR_SIGNED_IN):
        return False
    return rule.permission in PUBLIC_PROJECT_PERMISSIONS


def _own_account(request: HttpRequest) -> bool:
    principal = request.principal
    if principal.robot is not None:
        return str(principal.robot.robot_id) == request.params.get("robot_id")
    return principal.user_id is not None and str(principal.user_id) == request.params.get("user_id")


_LOCATED = (Scope.PROJECT, Scope.PROJECT_OR_SYSTEM, Scope.PROJECT_OR_SIGNED_IN, Scope.PROJECT_OR_PUBLIC)
_TEMPLATE = re.compile(r"\{[^/}]+\}")


def _response_model(method: str, path: str) -> ResponseModel | None:
    """The Harbor model of the route's JSON answer (`wire.routes`), matched with `{...}` ignored."""
    return _responses().get((method, _TEMPLATE.sub("{}", path)))


@lru_cache(maxsize=1)
def _responses() -> dict[tuple[str, str], ResponseModel]:
    """`wire.routes` keyed by method and template with `{...}` ignored (the first entry wins).

    Built on the first JSON answer, not when the routes are declared: the Lambda handler's import
    (its cold start) then neither loads the response models nor matches every route against them.
    """
    from chalicelib.api.mgmt.wire.routes import RESPONSES  # noqa: PLC0415 (see the docstring)

    index: dict[tuple[str, str], ResponseModel] = {}
    for (verb, template), answer in RESPONSES.items():
        index.setdefault((verb, _TEMPLATE.sub("{}", template)), answer)
    return index
