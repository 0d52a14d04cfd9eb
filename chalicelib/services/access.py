"""Authentication and authorisation: who is calling, and may they do this.

Every check on `/v2`, `/service/token` and `/api/v2.0` goes through here, so the permission matrix
(`auth/rbac.py`) is enforced the same way everywhere:
- Basic credentials are a user's password or a robot's secret. The stored hash is read on every
  request (so a disabled robot or a changed password takes effect at once); only the expensive
  argon2 verification is skipped when the same secret was verified against the same hash recently.
- Bearer tokens are verified locally (signature, issuer, audience, time window): no AWS call.
- A project permission comes from, in order: system administrator, robot grants, membership role,
  and the public-project read set. A token grants the intersection of what was asked and what the
  caller may really do.
- `require_project` and `require_system` are Harbor's RequireProjectAccess and RequireSystemAccess:
  the /api/v2.0 route decorator calls them with each route's table entry, before the service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.auth import secrets as credentials
from chalicelib.auth.rbac import (
    PUBLIC_PROJECT_PERMISSIONS,
    ROLE_PERMISSIONS,
    TOKEN_ACTIONS,
    Permission,
    Role,
    role_allows,
)
from chalicelib.auth.scopes import Access, Scope
from chalicelib.auth.tokens import Claims, InvalidToken, IssuedToken, TokenIssuer, TokenVerifier
from chalicelib.core.identity import ANONYMOUS, Member, Principal, Project, Robot, User
from chalicelib.core.reference import project_of
from chalicelib.errors import BadRequest, Forbidden, NotFound, Unauthorized
from chalicelib.observability import logger
from chalicelib.services.signin_throttle import SignInThrottle

if TYPE_CHECKING:
    from chalicelib.auth.tokens import SigningKey
    from chalicelib.services.configuration import ConfigurationService
    from chalicelib.stores.projects import ProjectStore
    from chalicelib.stores.robots import RobotStore
    from chalicelib.stores.users import UserStore


class _VerifiedSecrets:
    """Remembers (name, secret, stored hash) triples that verified, for `ttl` seconds."""

    def __init__(self, ttl: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, secret: str, stored: str) -> str:
        return hashlib.sha256(f"{name}\0{secret}\0{stored}".encode()).hexdigest()

    def seen(self, name: str, secret: str, stored: str) -> bool:
        key = self._key(name, secret, stored)
        with self._lock:
            expiry = self._entries.get(key)
            return expiry is not None and expiry > self._clock()

    def remember(self, name: str, secret: str, stored: str) -> None:
        if self._ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries = {k: v for k, v in self._entries.items() if v > now}
            self._entries[self._key(name, secret, stored)] = now + self._ttl


class AccessService:
    def __init__(
        self,
        users: UserStore,
        robots: RobotStore,
        projects: ProjectStore,
        configuration: ConfigurationService,
        signing_key: Callable[[], SigningKey],
        *,
        issuer: str,
        service: str,
        credential_cache_seconds: int,
        throttle: SignInThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._users = users
        self._robots = robots
        self._projects = projects
        self._configuration = configuration
        self._load_key = signing_key
        self._loaded: tuple[SigningKey, TokenVerifier] | None = None
        self._loading = threading.Lock()
        self._issuer = issuer
        self.service = service
        self._clock = clock
        self._verified = _VerifiedSecrets(credential_cache_seconds, clock)
        self._throttle = throttle or SignInThrottle(0, 0, 1)

    def _signing(self) -> tuple[SigningKey, TokenVerifier]:
        """The signing key and its verifier, loaded (or generated) on first use: a process that never
        issues or checks a token (the standalone relay) never reads a key file or a secret."""
        loaded = self._loaded
        if loaded is None:
            with self._loading:
                loaded = self._loaded
                if loaded is None:
                    key = self._load_key()
                    verifier = TokenVerifier({key.kid: key.private_key.public_key()}, self._issuer, self.service,
                                             self._clock)  # fmt: skip
                    loaded = self._loaded = (key, verifier)
        return loaded

    @property
    def _key(self) -> SigningKey:
        return self._signing()[0]

    def prepare(self) -> None:
        """Load the signing key now rather than on the first token (checking an RSA key on load
        took ~100 ms): for a server that starts ahead of its requests."""
        self._signing()

    # Authentication.

    def authenticate(self, authorization: str | None, source: str | None = None) -> tuple[Principal, Claims | None]:
        """The caller from an Authorization header; bad credentials are a 401, none is anonymous.
        `source` (the client's address) counts failed sign-ins per address."""
        if not authorization:
            return ANONYMOUS, None
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            username, secret = _decode_basic(value.strip())
            return self.login(username, secret, source), None
        if scheme.lower() == "bearer":
            claims = self.verify_token(value.strip())
            return self._token_principal(claims), claims
        raise Unauthorized("unsupported authorization scheme")

    def login(self, username: str, secret: str, source: str | None = None) -> Principal:
        """Check a user's password or a robot's secret; any failure is the same 401, and too many
        failures of one name or from one source a 429 for a while (`SignInThrottle`)."""
        self._throttle.check(username, source)
        prefix = self._configuration.robot_name_prefix()
        principal = self._robot_login(username[len(prefix) :], secret) if username.startswith(prefix) else None
        if principal is None and not username.startswith(prefix):
            principal = self._user_login(username, secret)
        if principal is None:
            self._throttle.failed(username, source)
            raise Unauthorized("invalid username or password")
        self._throttle.succeeded(username)
        return principal

    def _user_login(self, username: str, password: str) -> Principal | None:
        user = self._users.get(username) if _may_exist(username) else None
        if user is None or not user.password_hash:
            credentials.verify_unknown_password(password)  # as slow as a real check: no name oracle
            return None
        if not self._verified.seen(username, password, user.password_hash):
            if not credentials.verify_password(password, user.password_hash):
                return None
            self._verified.remember(username, password, user.password_hash)
        return _user_principal(user)

    def _robot_login(self, name: str, secret: str) -> Principal | None:
        robot = self._robots.get(name) if _may_exist(name) else None
        if robot is None or robot.disabled or robot.expired(int(self._clock())):
            return None
        if not credentials.verify_secret(secret, robot.secret_hash):
            return None
        return self.robot_principal(robot)

    def robot_prefix(self) -> str:
        return self._configuration.robot_name_prefix()

    def robot_principal(self, robot: Robot) -> Principal:
        prefix = self._configuration.robot_name_prefix()
        return Principal(kind="robot", name=f"{prefix}{robot.name}", robot=robot)

    def verify_token(self, token: str) -> Claims:
        try:
            return self._signing()[1].verify(token)
        except InvalidToken as exc:
            # Why a token failed is for the log: telling the client helps only a forger.
            logger.info("bearer token refused", reason=exc.reason)
            raise Unauthorized("invalid token") from None

    @staticmethod
    def _token_principal(claims: Claims) -> Principal:
        if not claims.subject:
            return ANONYMOUS
        return Principal(kind="user", name=claims.subject)

    # Authorisation.

    def project_allows(self, principal: Principal, project: str, permission: Permission) -> tuple[bool, Project | None]:
        """Whether the caller holds `permission` in `project`, and the project (None if absent)."""
        found, member = self._projects.project_and_member(project, principal.user_id)
        if found is None:
            return principal.sysadmin, None
        return _evaluate(principal, found, member, permission), found

    def allows(self, principal: Principal, project: Project, member: Member | None, permission: Permission) -> bool:
        """The decision for a project and membership the caller already read (listing many projects)."""
        return _evaluate(principal, project, member, permission)

    def project_permissions(self, principal: Principal, project: str) -> list[Permission]:
        """Everything the caller may do in `project` (one read), sorted."""
        found, member = self._projects.project_and_member(project, principal.user_id)
        if found is None:
            return []
        every = sorted(ROLE_PERMISSIONS[Role.PROJECT_ADMIN])
        return [p for p in every if _evaluate(principal, found, member, p)]

    def system_allows(self, principal: Principal, permission: Permission) -> bool:
        if principal.sysadmin:
            return True
        return principal.kind == "robot" and principal.robot_allows(None, permission)

    def require_project(self, principal: Principal, project: Project, permission: Permission) -> None:
        """Harbor's RequireProjectAccess: 401 for anonymous, 403 otherwise; 404 (the project is not
        disclosed) only to a caller with no right at all in it. A robot granted some access in the
        project (`repository:push` without `tag:create`) sees it, so it is told 403 as Harbor does."""
        found, member = self._projects.project_and_member(project.name, principal.user_id)
        if found is not None and _evaluate(principal, found, member, permission):
            return
        if found is None and principal.sysadmin:
            return
        if not principal.authenticated:
            raise Unauthorized("log in to access this project")
        if found is None or not any(_evaluate(principal, found, member, p) for p in _EVERY_PROJECT_PERMISSION):
            raise NotFound(f"project {project.name} not found")
        raise Forbidden(f"not allowed to {permission.action} {permission.resource} in project {project.name}")

    def require_system(self, principal: Principal, permission: Permission) -> None:
        """Harbor's RequireSystemAccess: 401 for anonymous, 403 for a caller without the permission."""
        if self.system_allows(principal, permission):
            return
        if not principal.authenticated:
            raise Unauthorized("log in first")
        raise Forbidden(f"only system administrators may {permission.action} {permission.resource}")

    # Tokens.

    def grant(self, principal: Principal, scopes: list[Scope]) -> list[Access]:
        """What a token may carry: for each scope, the actions the caller really has (maybe none).

        The projects of every repository scope and the caller's memberships in them are read
        together (one BatchGetItem), strongly consistently, on every request: a removed member or a
        changed role is refused by the next token request."""
        repositories = [scope.name for scope in scopes if scope.type == "repository"]
        read = self._projects.projects_and_memberships(
            list(dict.fromkeys(project_of(r) for r in repositories)), principal.user_id
        ) if repositories else {}  # fmt: skip
        granted: list[Access] = []
        for scope in scopes:
            if scope.type == "registry" and scope.name == "catalog":
                allowed = ["*"] if principal.sysadmin and "*" in scope.actions else []
                granted.append(Access("registry", "catalog", allowed))
            elif scope.type == "repository":
                found, member = read[project_of(scope.name)]
                granted.append(Access("repository", scope.name, _repository_actions(principal, found, member)))
            else:
                granted.append(Access(scope.type, scope.name, []))
        return granted

    def issue_token(
        self, principal: Principal, service: str | None, scopes: list[Scope]
    ) -> tuple[IssuedToken, list[Access]]:
        """A signed token carrying what the caller may do of what it asked, and that grant."""
        ttl = self._configuration.token_expiration_minutes() * 60
        issuer = TokenIssuer(self._key, self._issuer, self.service, ttl, self._clock)
        subject = principal.name if principal.authenticated else ""
        granted = self.grant(principal, scopes)
        return issuer.issue(subject, self.audience(service), granted), granted

    def audience(self, service: str | None) -> str:
        """The configured service is the only audience a token gets: a client naming another (say
        `harbor-registry#refresh`, a refresh token's audience) is refused, not obeyed."""
        if service and service != self.service:
            raise BadRequest("unknown service", {"service": service[:128]})
        return self.service

    def issue_refresh_token(self, principal: Principal, service: str | None) -> str:
        """A token that can only be exchanged for access tokens (OAuth2 refresh), bound to the
        account's id and token version: a password change, disabling or refreshing a robot's
        secret, or deleting the account revokes it. It lives `REFRESH_TTL_SECONDS` from the
        sign-in, and a refresh returns the same token, so a chain of refreshes ends then too."""
        self.audience(service)
        issuer = TokenIssuer(self._key, self._issuer, self.service, REFRESH_TTL_SECONDS, self._clock)
        return issuer.issue(principal.name, _refresh_audience(self.service), [], _binding(principal)).token

    def refresh(self, token: str, service: str | None) -> Principal:
        """The account a refresh token was issued to, re-read: it must be the same account (not a
        new one of the same name), at the same token version, still enabled and unexpired."""
        self.audience(service)
        verifier = TokenVerifier({self._key.kid: self._key.private_key.public_key()}, self._issuer,
                                 _refresh_audience(self.service), self._clock)  # fmt: skip
        try:
            claims = verifier.verify(token)
        except InvalidToken as exc:
            logger.info("refresh token refused", reason=exc.reason)
            raise Unauthorized("invalid refresh token") from None
        principal = self._bound_account(claims)
        if principal is None:
            logger.info("refresh token refused", reason="account gone, changed or disabled")
            raise Unauthorized("invalid refresh token")
        return principal

    def _bound_account(self, claims: Claims) -> Principal | None:
        kind, account_id, account, version = (claims.extra.get(k) for k in ("kind", "uid", "acct", "ver"))
        if not isinstance(account, str) or not isinstance(account_id, int) or not isinstance(version, int):
            return None  # an access token, or a refresh token from before accounts were bound
        if kind == "robot":
            robot = self._robots.get(account)
            if robot is None or robot.disabled or robot.expired(int(self._clock())):
                return None
            same = (robot.robot_id, robot.token_version) == (account_id, version)
            return self.robot_principal(robot) if same else None
        user = self._users.get(account) if kind == "user" else None
        if user is None or (user.user_id, user.token_version) != (account_id, version):
            return None
        return _user_principal(user)


REFRESH_TTL_SECONDS = 7 * 86_400
_EVERY_PROJECT_PERMISSION = sorted(ROLE_PERMISSIONS[Role.PROJECT_ADMIN])


def _binding(principal: Principal) -> dict[str, str | int]:
    """The account a refresh token belongs to: kind, id, stored name and token version."""
    if principal.robot is not None:
        robot = principal.robot
        return {"kind": "robot", "uid": robot.robot_id, "acct": robot.name, "ver": robot.token_version}
    if principal.kind == "user" and principal.user_id is not None:
        return {"kind": "user", "uid": principal.user_id, "acct": principal.name, "ver": principal.token_version}
    raise Unauthorized("sign in with a password or secret to get a refresh token")


def _may_exist(name: str) -> bool:
    """Longer names are no account (users: 255 characters, robots about 400), and DynamoDB would
    refuse them as keys (2 KB): a sign-in with one is a plain 401, never a failed lookup."""
    return 0 < len(name.encode()) <= _MAX_NAME_BYTES


_MAX_NAME_BYTES = 1024


def _user_principal(user: User) -> Principal:
    return Principal(kind="user", name=user.username, user_id=user.user_id, sysadmin=user.sysadmin,
                     token_version=user.token_version)  # fmt: skip


def _repository_actions(principal: Principal, project: Project | None, member: Member | None) -> list[str]:
    if project is None:
        return []  # a project that does not exist grants nothing, even to an administrator
    return [
        action
        for action, permission in TOKEN_ACTIONS.items()
        # scanner-pull bypasses pull policies: only a robot granted it explicitly holds it.
        if (action != "scanner-pull" or principal.kind == "robot") and _evaluate(principal, project, member, permission)
    ]


def _refresh_audience(service: str) -> str:
    return f"{service}#refresh"


def _evaluate(principal: Principal, project: Project, member: Member | None, permission: Permission) -> bool:
    if principal.sysadmin:
        return True
    if principal.kind == "robot":
        return principal.robot_allows(project.name, permission)
    if member is not None and role_allows(member.role, permission):
        return True
    return project.public and permission in PUBLIC_PROJECT_PERMISSIONS


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username:
        raise Unauthorized("malformed Basic credentials")
    return username, secret
