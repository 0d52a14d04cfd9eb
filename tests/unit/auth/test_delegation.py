"""Pattern containment of robot grants: what a robot may hand on."""

from __future__ import annotations

import pytest

from chalicelib.auth.delegation import robot_holds
from chalicelib.core.identity import Robot, RobotAccess, RobotPermission


def _robot(*grants: tuple[str, str, list[tuple[str, str, str]]]) -> Robot:
    permissions = tuple(
        RobotPermission(kind, ns, tuple(RobotAccess(r, a, e) for r, a, e in access))  # type: ignore[arg-type]
        for kind, ns, access in grants
    )
    return Robot(robot_id=1, name="r", level="system", permissions=permissions)


def _wanted(kind: str, namespace: str) -> RobotPermission:
    return RobotPermission(kind, namespace, ())  # type: ignore[arg-type]


SYSOPS = _robot(("system", "/", [("*", "create", "allow")]))
PULLER = _robot(
    ("project", "*", [("repository", "pull", "allow"), ("repository", "push", "allow")]),
    ("project", "secret", [("repository", "push", "deny")]),
)


@pytest.mark.parametrize(
    ("robot", "kind", "namespace", "resource", "action", "held"),
    [
        (SYSOPS, "system", "/", "project", "create", True),
        (SYSOPS, "system", "/", "*", "create", True),
        (SYSOPS, "system", "/", "*", "*", False),  # the reported escalation
        (SYSOPS, "system", "/", "user", "delete", False),
        (SYSOPS, "project", "*", "repository", "pull", False),  # no project grant at all
        (PULLER, "project", "app", "repository", "pull", True),
        (PULLER, "project", "*", "repository", "pull", True),
        (PULLER, "project", "app", "repository", "*", False),  # `*` needs the creator's own `*`
        (PULLER, "project", "secret", "repository", "push", False),  # denied there
        (PULLER, "project", "*", "repository", "push", False),  # `*` includes `secret`
        (PULLER, "project", "app", "repository", "push", True),
        (PULLER, "system", "/", "repository", "pull", False),  # project grants are not system ones
    ],
)
def test_robot_holds(robot, kind, namespace, resource, action, held):
    assert robot_holds(robot, _wanted(kind, namespace), RobotAccess(resource, action)) is held


def test_a_deny_of_everything_defeats_any_allow():
    robot = _robot(("project", "*", [("*", "*", "allow"), ("*", "*", "deny")]))
    assert not robot_holds(robot, _wanted("project", "app"), RobotAccess("repository", "pull"))
