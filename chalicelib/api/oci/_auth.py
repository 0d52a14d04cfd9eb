"""Authorisation of /v2 requests: the caller, the action a route needs, and the 401 challenge.

With a bearer token the decision uses only the token's grants (no AWS call); with Basic credentials
(when allowed on /v2) it asks the access service, which reads the project and membership rows.
"""

from __future__ import annotations

from chalicelib.api.edge import HttpRequest
from chalicelib.auth.rbac import PULL, PUSH, READ_CATALOG, TOKEN_ACTIONS, Permission
from chalicelib.auth.scopes import challenge
from chalicelib.core.reference import project_of
from chalicelib.errors import Denied, NameUnknown, Unauthorized
from chalicelib.wiring import services

CATALOG = "catalog"
# A permission's action word in a token scope, and the scope a client should ask for when refused.
_TOKEN_WORDS = {permission: word for word, permission in TOKEN_ACTIONS.items()}
_SCOPE_ACTIONS = {PULL: "pull", PUSH: "pull,push"}


def identify(request: HttpRequest) -> HttpRequest:
    """Attach the caller; bad credentials are a 401 carrying the Bearer challenge."""
    registry = services()
    header = request.header("authorization")
    if header and header.lower().startswith("basic") and not registry.settings.v2_basic_auth:
        raise Unauthorized("Basic credentials are not accepted on /v2; use a token", challenge=_challenge(request))
    try:
        principal, claims = registry.access.authenticate(header, request.source)
    except Unauthorized as exc:
        raise Unauthorized(exc.message, challenge=_challenge(request)) from None
    return request.with_caller(principal, claims)


def allowed(request: HttpRequest, repository: str, needed: Permission) -> bool:
    """Does the caller hold `needed` (one of the token actions) on `repository`?"""
    if request.claims is not None:
        return _TOKEN_WORDS[needed] in request.claims.actions_for("repository", repository)
    ok, project = services().access.project_allows(request.principal, project_of(repository), needed)
    if project is None and ok:
        # An administrator reaching a project that does not exist: say so instead of a vague denial.
        raise _missing_project(repository)
    return ok


def require_caller(request: HttpRequest) -> None:
    """The version check (`/v2/`) wants any identified caller: anonymous is told how to log in."""
    if not (request.principal.authenticated or request.claims is not None):
        raise Unauthorized("authentication required", challenge=_challenge(request))


def require(request: HttpRequest, repository: str | None, needed: Permission) -> None:
    """Raise the right refusal: 401 with a challenge for anonymous and token callers, else 403.

    `needed` is `READ_CATALOG` (no repository) or one of the token actions' permissions."""
    if needed == READ_CATALOG or repository is None:
        ok = _catalog_allowed(request)
        scope = "registry:catalog:*"
    else:
        ok = allowed(request, repository, needed)
        action = _TOKEN_WORDS[needed]
        scope = f"repository:{repository}:{_SCOPE_ACTIONS.get(needed, action)}"
    if ok:
        return
    if repository and request.claims is not None and request.claims.subject:
        _explain_missing_project(repository)
    known = request.principal.authenticated or (request.claims is not None and bool(request.claims.subject))
    if repository and known:
        _explain_missing_project(repository)
        # Harbor's v2auth answers a logged-in caller without the right with a 401 and this text, which
        # its tests and scripts look for in docker's and podman's output.
        raise Unauthorized(f"unauthorized to access repository: {repository}, action: {_TOKEN_WORDS[needed]}",
                           {"scope": scope},
                           challenge=_challenge(request, scope, "insufficient_scope"))  # fmt: skip
    if not request.principal.authenticated or request.claims is not None:
        error = "insufficient_scope" if request.claims is not None else None
        raise Unauthorized("authentication required", {"scope": scope} if scope else None,
                           challenge=_challenge(request, scope, error))  # fmt: skip
    raise Denied("requested access to the resource is denied", {"scope": scope})


def _explain_missing_project(repository: str) -> None:
    """A logged-in caller refused because the project does not exist is told so (Harbor does too)."""
    if not services().projects.exists(project_of(repository)):
        raise _missing_project(repository)


def _missing_project(repository: str) -> NameUnknown:
    project = project_of(repository)
    return NameUnknown(f"project {project} does not exist; create it first", {"project": project})


def _catalog_allowed(request: HttpRequest) -> bool:
    if request.claims is not None:
        return "*" in request.claims.actions_for("registry", CATALOG)
    return services().access.system_allows(request.principal, READ_CATALOG)


def _challenge(request: HttpRequest, scope: str | None = None, error: str | None = None) -> str:
    registry = services()
    realm = f"{request.base_url(registry.settings.external_url)}/service/token"
    return challenge(realm, registry.settings.token_service, scope, error)
