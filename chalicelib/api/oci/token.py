"""/service/token: the Docker token service (GET with Basic or anonymous, OAuth2 POST form).

The grant is never an error: a caller asking for more than it may do gets a token carrying only
what it may do (possibly nothing); only bad credentials are refused (401).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from chalice.app import Blueprint, Response

from chalicelib.api.edge import HttpRequest, guarded, json_response, request_from
from chalicelib.auth.scopes import parse_scopes
from chalicelib.core.identity import ANONYMOUS, Principal
from chalicelib.errors import BadRequest, Unauthorized
from chalicelib.observability import logger
from chalicelib.wiring import services

bp = Blueprint(__name__)
_MAX_SCOPES = 32


@bp.route("/service/token", methods=["GET"], content_types=["*/*"])
def get_token() -> Response:
    return guarded(_get_token, request_from(bp.current_request))


# `*/*` alone: it takes form bodies too, and `chalice deploy` refuses a route that mixes binary
# (`*/*`, every type is binary here) with non-binary content types.
@bp.route("/service/token", methods=["POST"], content_types=["*/*"])
def post_token() -> Response:
    return guarded(_post_token, request_from(bp.current_request))


def _get_token(request: HttpRequest) -> Response:
    access = services().access
    principal, _ = access.authenticate(_basic_only(request.header("authorization")), request.source)
    scopes = parse_scopes(request.query.get("scope", []))
    if len(scopes) > _MAX_SCOPES:
        raise BadRequest(f"at most {_MAX_SCOPES} scopes per token")
    if not principal.authenticated and not scopes:
        # `docker login` asks for a token without a scope: with no credentials that is a failed login.
        raise Unauthorized("credentials are required for a token without a scope")
    service = request.arg("service")
    issued, _granted = access.issue_token(principal, service, scopes)
    body: dict[str, object] = dict(issued.to_response())
    if request.arg("offline_token") == "true" and principal.authenticated:
        body["refresh_token"] = access.issue_refresh_token(principal, service)
    logger.info("token issued", extra={"subject": principal.name, "scopes": [str(s) for s in scopes]})
    return json_response(body)


def _post_token(request: HttpRequest) -> Response:
    form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    access = services().access
    grant_type, service = form.get("grant_type"), form.get("service")
    if not form.get("client_id"):
        raise BadRequest("client_id is required")
    principal: Principal = ANONYMOUS
    if grant_type == "password":
        principal = access.login(form.get("username", ""), form.get("password", ""), request.source)
    elif grant_type == "refresh_token":
        principal = access.refresh(form.get("refresh_token", ""), service)
    else:
        raise BadRequest("grant_type must be 'password' or 'refresh_token'")
    scopes = parse_scopes([form.get("scope", "")])
    if len(scopes) > _MAX_SCOPES:
        raise BadRequest(f"at most {_MAX_SCOPES} scopes per token")
    issued, granted = access.issue_token(principal, service, scopes)
    body: dict[str, object] = {
        "access_token": issued.token,
        "scope": " ".join(f"{a.type}:{a.name}:{','.join(a.actions)}" for a in granted if a.actions),
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at_rfc3339,
    }
    if grant_type == "refresh_token":
        # The same token back: a refresh never extends the chain beyond the sign-in's lifetime.
        body["refresh_token"] = form.get("refresh_token", "")
    elif form.get("access_type") == "offline":
        body["refresh_token"] = access.issue_refresh_token(principal, service)
    return json_response(body)


def _basic_only(header: str | None) -> str | None:
    if header and not header.lower().startswith("basic "):
        raise Unauthorized("the token service takes Basic credentials or none")
    return header
