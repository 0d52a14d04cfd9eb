"""What a caller may hand on: nobody grants a right it does not hold itself.

Every route that grants permissions (a robot's permissions on create and update, a member's role)
asks here. A robot's grants are patterns (`*` for any resource, action or project), so "holds" is
pattern containment, not membership in a finite list: a wanted `*` resource is held only through a
`*` of the caller's own, because `*` also covers resources no list here names. A `deny` the caller
carries anywhere inside the wanted scope defeats the grant: the new robot would otherwise be
allowed what its creator is refused there. Pure functions: no I/O.
"""

from __future__ import annotations

from chalicelib.core.identity import Robot, RobotAccess, RobotPermission

ANY = "*"


def robot_holds(robot: Robot, wanted: RobotPermission, access: RobotAccess) -> bool:
    """Whether `robot` holds everything `access` would grant at `wanted`'s kind and namespace."""
    allowed = False
    for grant in robot.permissions:
        if grant.kind != wanted.kind:
            continue
        # A grant on the wanted namespace (or on every project) confers; one on a single project
        # inside a wanted `*` confers nothing but its denies still restrict the caller there.
        covers = grant.namespace in (wanted.namespace, ANY)
        if not covers and wanted.namespace != ANY:
            continue
        for held in grant.access:
            if held.effect == "deny":
                if _overlaps(held.resource, access.resource) and _overlaps(held.action, access.action):
                    return False
            elif covers and held.resource in (access.resource, ANY) and held.action in (access.action, ANY):
                allowed = True
    return allowed


def _overlaps(held: str, wanted: str) -> bool:
    return ANY in (held, wanted) or held == wanted
