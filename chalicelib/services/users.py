"""Local users: creation, profile, passwords and the system-administrator flag (Harbor db_auth)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chalicelib.auth import secrets as credentials
from chalicelib.core.identity import Principal, User
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

if TYPE_CHECKING:
    from chalicelib.services.access import AccessService
    from chalicelib.stores.projects import ProjectStore
    from chalicelib.stores.users import UserStore

ADMIN_USERNAME = "admin"
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,254}$", re.IGNORECASE)
_RULE = "8-128 characters with at least one upper-case letter, one lower-case letter and one digit"
_PASSWORD_RULE = f"password must be {_RULE}"


class UserService:
    def __init__(self, users: UserStore, access: AccessService, memberships: ProjectStore) -> None:
        self._users = users
        self._access = access
        self._memberships = memberships

    def ensure_admin(self, password: str) -> bool:
        """Create `admin` (a system administrator) if absent; True if it was created now."""
        if self._users.get(ADMIN_USERNAME) is not None:
            return False
        try:
            self._users.create(User(0, ADMIN_USERNAME, realname="system admin", sysadmin=True,
                                    password_hash=credentials.hash_password(password)))  # fmt: skip
        except Conflict:
            return False
        return True

    def create(self, username: str, password: str, *, email: str, realname: str, comment: str) -> User:
        if not _USERNAME_RE.fullmatch(username) or username.startswith(self._robot_prefix()):
            raise BadRequest("invalid username", {"username": username[:64]})
        if not credentials.validate_secret_strength(password):
            raise BadRequest(_PASSWORD_RULE)
        return self._users.create(User(0, username, email=email, realname=realname, comment=comment,
                                       password_hash=credentials.hash_password(password)))  # fmt: skip

    def get(self, user_id: int) -> User:
        user = self._users.get_by_id(user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def current(self, caller: Principal) -> User:
        if caller.kind != "user" or caller.user_id is None:
            raise Unauthorized("log in as a user")
        user = self._users.get_by_id(caller.user_id)
        if user is None:
            raise Unauthorized("the user no longer exists")
        return user

    def list_users(self) -> list[User]:
        return self._users.get_many(self._users.names())

    def search(self, fragment: str) -> list[User]:
        """Usernames containing `fragment` (any logged-in user may look them up to add members)."""
        if not fragment:
            raise BadRequest("username is required")
        names = [n for n in self._users.names() if fragment.lower() in n.lower()]
        return self._users.get_many(names)

    def update_profile(self, user_id: int, email: str | None, realname: str | None, comment: str | None) -> None:
        user = self.get(user_id)
        changes = {k: v for k, v in {"email": email, "realname": realname, "comment": comment}.items() if v is not None}
        if changes:
            self._users.update(user.username, **changes)

    def change_password(self, caller: Principal, user_id: int, old: str | None, new: str) -> None:
        user = self.get(user_id)
        # Changing one's own password (or not being an administrator) needs the old one.
        own_or_not_admin = not caller.sysadmin or caller.user_id == user.user_id
        if own_or_not_admin and (old is None or not credentials.verify_password(old, user.password_hash)):
            raise Forbidden("the old password is wrong")
        if not credentials.validate_secret_strength(new):
            raise BadRequest(_PASSWORD_RULE)
        if credentials.verify_password(new, user.password_hash):
            raise BadRequest("the new password must differ from the old one")
        # Refresh tokens issued before the change stop working (access tokens run out on their own).
        self._users.set_password(user.username, credentials.hash_password(new))

    def set_sysadmin(self, caller: Principal, user_id: int, flag: bool) -> None:
        # The flag grants everything, so only a caller holding everything may hand it out: a
        # system robot holds a list of permissions, never the flag, whatever `user` grants it has.
        if not caller.sysadmin:
            raise Forbidden("only a system administrator can change the system administrator flag")
        user = self.get(user_id)
        if user.username == ADMIN_USERNAME and not flag:
            raise Forbidden("the admin user stays a system administrator")
        self._users.update(user.username, sysadmin=flag)

    def delete(self, caller: Principal, user_id: int) -> None:
        user = self.get(user_id)
        if user.username == ADMIN_USERNAME or caller.user_id == user.user_id:
            raise Forbidden("the admin user and the caller's own account cannot be deleted")
        self._users.delete(user)
        self._memberships.remove_user_everywhere(user.user_id)

    def _robot_prefix(self) -> str:
        return self._access.robot_prefix()
