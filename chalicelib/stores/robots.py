"""Robot accounts (Harbor v2 robots); keys in `keys.py`. Secrets are stored hashed only."""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import Robot, RobotAccess, RobotPermission
from chalicelib.errors import Conflict
from chalicelib.stores import keys
from chalicelib.stores.named_entities import NamedEntityStore
from chalicelib.stores.tables import RobotRow


class RobotStore(NamedEntityStore[Robot]):
    def __init__(self, clock: Clock = system_clock) -> None:
        super().__init__(RobotRow, "ROBOT", keys.robot_pk, keys.ROBOTS_LIST, _to_robot, clock=clock)

    def create(self, robot: Robot) -> Robot:
        """Insert a robot with a new id; Conflict if the name is taken."""
        return self._insert(
            robot.name, level=robot.level, permissions=_dump_permissions(robot.permissions),
            secret_hash=robot.secret_hash, description=robot.description, duration=robot.duration,
            expires_at=robot.expires_at, disabled=robot.disabled, creator=robot.creator,
        )  # fmt: skip

    def update(self, robot: Robot, *, revoke_tokens: bool = False) -> None:
        """Write the mutable fields (description, permissions, duration, expiry, disable, secret);
        `revoke_tokens` bumps the token version in the same write (an ADD: never written back)."""
        revoke = [RobotRow.token_version.add(1)] if revoke_tokens else []
        try:
            RobotRow(keys.robot_pk(robot.name), keys.ENTITY_SK).update(
                actions=[
                    *revoke,
                    RobotRow.description.set(robot.description),
                    RobotRow.permissions.set(_dump_permissions(robot.permissions)),
                    RobotRow.duration.set(robot.duration),
                    RobotRow.expires_at.set(robot.expires_at),
                    RobotRow.disabled.set(robot.disabled),
                    RobotRow.secret_hash.set(robot.secret_hash),
                    RobotRow.updated_at.set(int(self._clock())),
                ],
                condition=RobotRow.pk.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"robot {robot.name!r} no longer exists") from None
            raise

    def delete(self, robot: Robot) -> None:
        self._delete(robot.name, robot.robot_id)


def _dump_permissions(permissions: tuple[RobotPermission, ...]) -> str:
    return json.dumps(
        [
            {
                "kind": p.kind,
                "namespace": p.namespace,
                "access": [{"resource": a.resource, "action": a.action, "effect": a.effect} for a in p.access],
            }
            for p in permissions
        ]
    )


def _load_permissions(text: str) -> tuple[RobotPermission, ...]:
    raw: list[dict[str, Any]] = json.loads(text or "[]")
    return tuple(
        RobotPermission(
            kind=p["kind"],
            namespace=p["namespace"],
            access=tuple(RobotAccess(a["resource"], a["action"], a.get("effect", "allow")) for a in p["access"]),
        )
        for p in raw
    )


def _to_robot(row: RobotRow) -> Robot:
    return Robot(
        robot_id=int(row.robot_id),
        name=row.pk.removeprefix(keys.ROBOT_PREFIX),
        level="system" if row.level == "system" else "project",
        permissions=_load_permissions(row.permissions),
        secret_hash=row.secret_hash,
        description=row.description,
        duration=int(row.duration),
        expires_at=int(row.expires_at),
        disabled=bool(row.disabled),
        creator=row.creator,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
        token_version=int(row.token_version or 0),
    )
