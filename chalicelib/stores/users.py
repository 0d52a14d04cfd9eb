"""Local users (Harbor's database auth mode); keys in `keys.py`."""

from __future__ import annotations

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import User
from chalicelib.stores import keys
from chalicelib.stores.named_entities import NamedEntityStore
from chalicelib.stores.tables import UserRow

_FIELDS = ("email", "realname", "comment", "sysadmin")  # a password goes through `set_password`


class UserStore(NamedEntityStore[User]):
    def __init__(self, clock: Clock = system_clock) -> None:
        super().__init__(UserRow, "USER", keys.user_pk, keys.USERS_LIST, _to_user, clock=clock)

    def create(self, user: User) -> User:
        """Insert a user with a new id; Conflict if the username is taken."""
        return self._insert(
            user.username, email=user.email, realname=user.realname, comment=user.comment,
            password_hash=user.password_hash, sysadmin=user.sysadmin,
        )  # fmt: skip

    def set_password(self, username: str, password_hash: str) -> None:
        """A new password hash, and the token version bumped in the same write (an ADD, which a
        concurrent update never writes back): refresh tokens issued before stop working."""
        UserRow(keys.user_pk(username), keys.ENTITY_SK).update(
            actions=[UserRow.password_hash.set(password_hash), UserRow.token_version.add(1),
                     UserRow.updated_at.set(int(self._clock()))],
            condition=UserRow.pk.exists(),
        )  # fmt: skip

    def update(self, username: str, **fields: object) -> None:
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"not user fields: {sorted(unknown)}")
        actions = [getattr(UserRow, name).set(value) for name, value in fields.items()]
        UserRow(keys.user_pk(username), keys.ENTITY_SK).update(
            actions=[*actions, UserRow.updated_at.set(int(self._clock()))], condition=UserRow.pk.exists()
        )

    def delete(self, user: User) -> None:
        self._delete(user.username, user.user_id)


def _to_user(row: UserRow) -> User:
    return User(
        user_id=int(row.user_id),
        username=row.pk.removeprefix(keys.USER_PREFIX),
        email=row.email,
        realname=row.realname,
        comment=row.comment,
        sysadmin=bool(row.sysadmin),
        password_hash=row.password_hash,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
        token_version=int(row.token_version or 0),
    )
