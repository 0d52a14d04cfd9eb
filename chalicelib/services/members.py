"""Project members and their roles (users only: groups need LDAP/OIDC, which are not built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.auth.rbac import ROLE_PERMISSIONS, Role
from chalicelib.core.identity import Member, Principal, Project
from chalicelib.errors import BadRequest, Forbidden, NotFound

if TYPE_CHECKING:
    from chalicelib.services.access import AccessService
    from chalicelib.stores.projects import ProjectStore
    from chalicelib.stores.users import UserStore


def role_of(role_id: int) -> Role:
    try:
        return Role(role_id)
    except ValueError:
        raise BadRequest(f"role_id must be one of {[int(r) for r in Role]}") from None


class MemberService:
    def __init__(self, store: ProjectStore, users: UserStore, access: AccessService) -> None:
        self._access = access
        self._store = store
        self._users = users

    def list(self, project: Project, entity_name: str | None) -> list[Member]:
        members = self._store.members(project.name)
        if entity_name:
            members = [m for m in members if entity_name in m.entity_name]
        return sorted(members, key=lambda m: m.member_id)

    def get(self, project: Project, member_id: int) -> Member:
        return self._find(project, member_id)

    def add(self, caller: Principal, project: Project, role_id: int, username: str | None,
            user_id: int | None) -> Member:  # fmt: skip
        role = self._grantable(caller, project, role_id)
        user = self._users.get_by_id(user_id) if user_id is not None else self._users.get(username or "")
        if user is None:
            raise NotFound("user not found", {"username": username, "user_id": user_id})
        return self._store.add_member(project.name, user.user_id, user.username, role)

    def update(self, caller: Principal, project: Project, member_id: int, role_id: int) -> None:
        role = self._grantable(caller, project, role_id)
        member = self._find(project, member_id)
        self._store.set_member_role(project.name, member.entity_id, role)

    def remove(self, project: Project, member_id: int) -> None:
        member = self._find(project, member_id)
        self._store.remove_member(project.name, member.entity_id)

    def _grantable(self, caller: Principal, project: Project, role_id: int) -> Role:
        """The role, if the caller holds everything it gives (a robot with `member:create` alone
        must not make anyone a project administrator)."""
        role = role_of(role_id)
        if caller.sysadmin:
            return role
        held = set(self._access.project_permissions(caller, project.name))
        if not ROLE_PERMISSIONS[role] <= held:
            raise Forbidden(f"cannot give the role {role.harbor_name}, which holds rights the caller does not")
        return role

    def _find(self, project: Project, member_id: int) -> Member:
        for member in self._store.members(project.name):
            if member.member_id == member_id:
                return member
        raise NotFound(f"member {member_id} not found in project {project.name}")
