"""Local users (Harbor's database auth mode); keys in `keys.py`."""

from __future__ import annotations

from pynamodb.transactions import TransactWrite

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import User
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    IdRow,
    ListEntry,
    UserRow,
    batch_get_raw,
    connection,
    create_with_id,
    name_by_id,
    next_id,
)

_FIELDS = ("email", "realname", "comment", "sysadmin")  # a password goes through `set_password`


class UserStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def create(self, user: User) -> User:
        """Insert a user with a new id; Conflict if the username is taken."""
        now = int(self._clock())
        user_id = next_id("user")
        row = UserRow(
            keys.user_pk(user.username), keys.ENTITY_SK, user_id=user_id, email=user.email, realname=user.realname,
            comment=user.comment, password_hash=user.password_hash, sysadmin=user.sysadmin, created_at=now,
            updated_at=now, gsi1pk=keys.USERS_LIST, gsi1sk=user.username,
        )  # fmt: skip
        create_with_id(row, "USER", user.username, f"user {user.username!r} already exists")
        return _to_user(row)

    def get(self, username: str) -> User | None:
        try:
            return _to_user(UserRow.get(keys.user_pk(username), keys.ENTITY_SK))
        except UserRow.DoesNotExist:
            return None

    def get_by_id(self, user_id: int) -> User | None:
        name = name_by_id("USER", user_id)
        return self.get(name) if name else None

    def names(self) -> list[str]:
        """Every username, sorted (one Query on the list index)."""
        return [row.gsi1sk for row in ListEntry.listing.query(keys.USERS_LIST)]

    def get_many(self, usernames: list[str]) -> list[User]:
        items = batch_get_raw([(keys.user_pk(n), keys.ENTITY_SK) for n in usernames])
        users = {u.username: u for u in (_to_user(UserRow.from_raw_data(i)) for i in items)}
        return [users[n] for n in usernames if n in users]

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
        with TransactWrite(connection=connection()) as tx:
            tx.delete(UserRow(keys.user_pk(user.username), keys.ENTITY_SK))
            tx.delete(IdRow(keys.id_pk("USER", user.user_id), keys.ENTITY_SK))


def _to_user(row: UserRow) -> User:
    return User(
        user_id=int(row.user_id),
        username=row.pk.removeprefix("USER#"),
        email=row.email,
        realname=row.realname,
        comment=row.comment,
        sysadmin=bool(row.sysadmin),
        password_hash=row.password_hash,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
        token_version=int(row.token_version or 0),
    )
