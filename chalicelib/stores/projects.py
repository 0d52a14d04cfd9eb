"""Projects, their members and their storage quota; keys in `keys.py`.

Quota accounting follows Harbor: a blob counts once per project. `associate_blob` writes the
project-blob row and adds its size to the project's usage in one transaction whose condition
keeps usage within the limit, so concurrent pushes can never overshoot it and usage always equals
the sum of the project's distinct blobs.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.models import BatchWrite
from pynamodb.transactions import TransactWrite

from chalicelib.auth.rbac import Role
from chalicelib.core.clock import Clock, system_clock
from chalicelib.core.identity import UNLIMITED, Member, Project
from chalicelib.errors import Conflict, NotFound
from chalicelib.stores import keys
from chalicelib.stores.named_entities import NamedEntityStore
from chalicelib.stores.tables import (
    BlobRefRow,
    IdRow,
    MemberRow,
    ProjectBlobRow,
    ProjectRow,
    RegistryRow,
    batch_get_raw,
    cancellation_codes,
    connection,
    delete_where,
    next_id,
    raw_storage_limit,
    write_transaction,
)

# A DynamoDB transaction holds 100 items: the project row, its id row, a proxy-cache project's
# registry count, and this many more.
_TRANSACTION_ROWS = 97


class QuotaExceededError(Exception):
    """Adding a blob would take the project past its storage limit."""

    def __init__(self, project: Project, adding: int) -> None:
        super().__init__(project.name)
        self.project = project
        self.adding = adding


class ProjectStore(NamedEntityStore[Project]):
    def __init__(self, clock: Clock = system_clock) -> None:
        super().__init__(ProjectRow, "PROJECT", keys.project_pk, keys.PROJECTS_LIST, _to_project, clock=clock)

    # Projects.

    def create(self, project: Project) -> Project:
        """Insert a project with a new id; Conflict if the name is taken. A proxy-cache project
        (`registry_id`) also counts itself on its registry's row in the same transaction, on
        condition that the registry exists (NotFound otherwise), so a registry is never deleted
        while a project uses it (`stores/registries.py`)."""
        attributes: dict[str, Any] = {
            "owner_id": project.owner_id, "owner_name": project.owner_name, "metadata": dict(project.metadata),
            "cve_allowlist": json.dumps(project.cve_allowlist), "storage_limit": project.storage_limit,
            "storage_used": 0, "storage_free": project.storage_limit,
        }  # fmt: skip
        if not project.registry_id:
            return self._insert(project.name, **attributes)
        now = int(self._clock())
        row = ProjectRow(keys.project_pk(project.name), keys.ENTITY_SK, project_id=next_id("project"),
                         created_at=now, updated_at=now, gsi1pk=keys.PROJECTS_LIST, gsi1sk=project.name,
                         registry_id=project.registry_id, **attributes)  # fmt: skip
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(row, condition=ProjectRow.pk.does_not_exist())
                tx.save(IdRow(keys.id_pk("PROJECT", int(row.project_id)), keys.ENTITY_SK, name=project.name))
                tx.update(RegistryRow(keys.registry_pk(project.registry_id), keys.ENTITY_SK),
                          actions=[RegistryRow.project_refs.add(1)], condition=RegistryRow.pk.exists())  # fmt: skip
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise NotFound(f"registry {project.registry_id} not found") from None
            raise Conflict(f"project {project.name!r} already exists") from exc
        return _to_project(row)

    def update(
        self, name: str, *, metadata: dict[str, str] | None = None, cve_allowlist: dict[str, Any] | None = None,
        storage_limit: int | None = None, remove_metadata: str | None = None,
    ) -> None:  # fmt: skip
        """`metadata` sets those keys and `remove_metadata` removes one, each by its own path: the
        other keys are never rewritten, so no concurrent change to one of them (the registry's own
        `retention_id` included) is lost."""
        actions: list[Any] = [ProjectRow.updated_at.set(int(self._clock()))]
        actions += [ProjectRow.metadata[k].set(v) for k, v in (metadata or {}).items()]
        if remove_metadata is not None:
            actions.append(ProjectRow.metadata[remove_metadata].remove())
        if cve_allowlist is not None:
            actions.append(ProjectRow.cve_allowlist.set(json.dumps(cve_allowlist)))
        if storage_limit is not None:
            self.set_storage_limit(name, storage_limit)
        ProjectRow(keys.project_pk(name), keys.ENTITY_SK).update(actions=actions, condition=ProjectRow.pk.exists())

    def set_metadata_value(self, name: str, key: str, value: str | None, *, if_value: str | None = None) -> bool:
        """Set one metadata key (None removes it) without rewriting the others: a key the server
        owns (`retention_id`) cannot lose a concurrent change to another key. With `if_value`, only
        while the key still holds it. False if the project (or that value) is gone."""
        path = ProjectRow.metadata[key]
        condition = ProjectRow.pk.exists()
        if if_value is not None:
            condition = condition & (path == if_value)
        action = path.remove() if value is None else path.set(value)
        try:
            ProjectRow(keys.project_pk(name), keys.ENTITY_SK).update(actions=[action], condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_storage_limit(self, name: str, limit: int) -> None:
        """Change the limit, recomputing `storage_free` against a usage read in the same condition."""
        for _attempt in range(10):
            current = self.get(name)
            if current is None:
                raise Conflict(f"project {name!r} no longer exists")
            try:
                ProjectRow(keys.project_pk(name), keys.ENTITY_SK).update(
                    actions=[
                        ProjectRow.storage_limit.set(limit),
                        ProjectRow.storage_free.set(limit - current.storage_used),
                    ],
                    condition=ProjectRow.storage_used == current.storage_used,
                )
            except UpdateError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    continue  # a push moved usage meanwhile: read again
                raise
            return
        raise Conflict("project usage keeps changing; retry")

    def delete(self, project: Project) -> None:
        """Remove the project and everything kept under it: members, counted blobs and references
        (callers check it holds no repository), so a project re-created under the name starts clean.

        One transaction removes the project with up to `_TRANSACTION_ROWS` of its rows, members
        last in line to be left out; only rows past that are deleted before it. So a failure leaves
        the project in place with its members (and a retry finishes the work), never a deleted
        project whose leftover members a project re-created under the name would inherit."""
        rows = [
            row
            for row in MemberRow.query(keys.project_pk(project.name), attributes_to_get=["pk", "sk"])
            if row.sk != keys.ENTITY_SK
        ]
        rows.sort(key=lambda row: row.sk.startswith(keys.MEMBER_PREFIX))
        cut = max(len(rows) - _TRANSACTION_ROWS, 0)
        overflow, kept = rows[:cut], rows[cut:]
        with BatchWrite(MemberRow) as batch:
            for row in overflow:
                batch.delete(row)

        def uncount(tx: TransactWrite) -> None:  # a proxy-cache project leaves its registry's count
            tx.update(RegistryRow(keys.registry_pk(project.registry_id), keys.ENTITY_SK),
                      actions=[RegistryRow.project_refs.add(-1)], condition=RegistryRow.pk.exists())  # fmt: skip

        self._delete(project.name, project.project_id, *kept, also=uncount if project.registry_id else None)

    def remove_user_everywhere(self, user_id: int) -> None:
        """Drop a deleted user's membership in every project (one conditional delete per project)."""
        for name in self.names():
            self.remove_member(name, user_id)

    def has_repositories(self, name: str) -> bool:
        """True if any repository of the project still has content (a repository row)."""
        from chalicelib.stores.tables import RepositoryRow  # noqa: PLC0415

        for _row in RepositoryRow.query(keys.REPOS_PK, RepositoryRow.sk.startswith(f"{name}/"), limit=1):
            return True
        return False

    def repository_count(self, name: str) -> int:
        from chalicelib.stores.tables import RepositoryRow  # noqa: PLC0415

        return int(RepositoryRow.count(keys.REPOS_PK, RepositoryRow.sk.startswith(f"{name}/")))

    # Members.

    def add_member(self, project: str, user_id: int, username: str, role: Role) -> Member:
        member_id = next_id("member")
        row = MemberRow(
            keys.project_pk(project), keys.member_sk(user_id), member_id=member_id, entity_id=user_id,
            entity_name=username, entity_type="u", role_id=int(role),
        )  # fmt: skip
        try:
            row.save(condition=MemberRow.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"{username!r} is already a member of {project!r}") from None
            raise
        return _to_member(project, row)

    def project_and_member(self, project: str, user_id: int | None) -> tuple[Project | None, Member | None]:
        """The project row and the caller's membership in one BatchGetItem (the authorisation read)."""
        return self.projects_and_memberships([project], user_id)[project]

    def projects_and_memberships(
        self, projects: list[str], user_id: int | None
    ) -> dict[str, tuple[Project | None, Member | None]]:
        """For each of `projects`, its row and the caller's membership (None when absent), all in
        one BatchGetItem per 50 projects: a token for many repositories costs one read."""
        wanted = [(keys.project_pk(p), keys.ENTITY_SK) for p in projects]
        if user_id is not None:
            wanted += [(keys.project_pk(p), keys.member_sk(user_id)) for p in projects]
        found: dict[str, Project] = {}
        members: dict[str, Member] = {}
        for item in batch_get_raw(wanted):
            name = item["pk"]["S"].removeprefix(keys.project_pk(""))
            if item["sk"]["S"] == keys.ENTITY_SK:
                found[name] = _to_project(ProjectRow.from_raw_data(item))
            else:
                members[name] = _to_member(name, MemberRow.from_raw_data(item))
        return {p: (found.get(p), members.get(p)) for p in projects}

    def memberships(self, user_id: int, projects: list[str]) -> dict[str, Member]:
        """The user's membership in each of `projects` that has one (BatchGetItem, 100 keys a call)."""
        items = batch_get_raw([(keys.project_pk(p), keys.member_sk(user_id)) for p in projects])
        found = {}
        for item in items:
            name = item["pk"]["S"].removeprefix(keys.PROJECT_PREFIX)
            found[name] = _to_member(name, MemberRow.from_raw_data(item))
        return found

    def members(self, project: str) -> list[Member]:
        rows = MemberRow.query(keys.project_pk(project), MemberRow.sk.startswith(keys.MEMBER_PREFIX))
        return [_to_member(project, row) for row in rows]

    def set_member_role(self, project: str, user_id: int, role: Role) -> None:
        try:
            MemberRow(keys.project_pk(project), keys.member_sk(user_id)).update(
                actions=[MemberRow.role_id.set(int(role))], condition=MemberRow.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict("member no longer exists") from None
            raise

    def remove_member(self, project: str, user_id: int) -> bool:
        return delete_where(MemberRow(keys.project_pk(project), keys.member_sk(user_id)), MemberRow.pk.exists())

    # Quota.

    def associate_blob(self, project: str, digest: str, size: int) -> bool:
        """Count `digest` in the project once; False if it was already counted.

        Raises QuotaExceededError when the project's limit would be passed (or it does not exist),
        and TooManyRequests when other pushes to the project keep the row busy.
        """
        pk = keys.project_pk(project)
        limit_ok = (ProjectRow.storage_limit == UNLIMITED) | (ProjectRow.storage_free >= size)

        def writes(tx: TransactWrite) -> None:
            tx.save(
                ProjectBlobRow(pk, keys.link_sk(digest), size=size, created_at=int(self._clock())),
                condition=ProjectBlobRow.pk.does_not_exist(),
            )
            tx.update(
                ProjectRow(pk, keys.ENTITY_SK),
                actions=[ProjectRow.storage_used.add(size), ProjectRow.storage_free.add(-size)],
                condition=ProjectRow.pk.exists() & limit_ok,
            )

        try:
            # Every push to the project charges its row: concurrent ones may conflict, and retry.
            write_transaction(writes, busy="another push to this project is being counted; retry")
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                current = self.get(project) or Project(0, project, 0, "", storage_limit=0)
                raise QuotaExceededError(current, size) from None
            raise
        return True

    def counted(self, project: str, digests: list[str]) -> dict[str, bool]:
        """Digest -> "being released" for those of `digests` the project counts (one consistent
        BatchGetItem per 100 keys)."""
        items = batch_get_raw([(keys.project_pk(project), keys.link_sk(d)) for d in digests])
        return {i["sk"]["S"].removeprefix(keys.BLOB_PREFIX): "releasing" in i for i in items}

    def counted_and_limit(self, project: str, digests: list[str]) -> tuple[dict[str, bool], bool]:
        """`counted`, plus whether the project has no storage limit, read in the same first
        BatchGetItem (the project row shares the partition). A project not found counts as
        limited (a charge then finds it missing as it would have)."""
        items = batch_get_raw([(keys.project_pk(project), keys.ENTITY_SK),
                               *((keys.project_pk(project), keys.link_sk(d)) for d in digests)])  # fmt: skip
        counted: dict[str, bool] = {}
        unlimited = False
        for item in items:
            sk = item["sk"]["S"]
            if sk == keys.ENTITY_SK:
                unlimited = raw_storage_limit(item) == UNLIMITED
            else:
                counted[sk.removeprefix(keys.BLOB_PREFIX)] = "releasing" in item
        return counted, unlimited

    def keep_blob(self, project: str, digest: str) -> bool:
        """Stop a release in progress (see `release_blob`); False if there was none to stop."""
        try:
            ProjectBlobRow(keys.project_pk(project), keys.link_sk(digest)).update(
                actions=[ProjectBlobRow.releasing.remove()], condition=ProjectBlobRow.releasing.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_blob(self, project: str, digest: str) -> int | None:
        """Uncount a blob that no manifest of the project references; returns the size released,
        or None if it was not counted or is still referenced.

        Never uncounts a blob a stored manifest relies on, which is what keeps GC from collecting
        it. A push writes its references, then reads which blobs the project counts, and counts
        (or keeps, below) the rest before it stores the manifest. The release first flags the row
        `releasing` with a token, then looks for references, then deletes the row only if the
        token is still there. A push that read the row before the flag wrote its references
        before the release looked, so the release sees them and backs off; a push that read the
        flag removes it (`keep_blob`), so the delete fails, or finds the row gone and counts the
        blob again itself. (Deleting after one look, as before, let a failed push release a blob a
        concurrent push had just decided not to charge because it was already counted.)
        """
        pk, sk = keys.project_pk(project), keys.link_sk(digest)
        token = secrets.token_hex(8)
        row = ProjectBlobRow(pk, sk)
        try:
            row.update(actions=[ProjectBlobRow.releasing.set(token)], condition=ProjectBlobRow.pk.exists())
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None  # not counted
            raise
        if self.referenced(project, digest):
            self._unflag(row, token)
            return None
        size = int(row.size)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(ProjectBlobRow(pk, sk), condition=ProjectBlobRow.releasing == token)
                tx.update(ProjectRow(pk, keys.ENTITY_SK),
                          actions=[ProjectRow.storage_used.add(-size), ProjectRow.storage_free.add(size)])  # fmt: skip
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return None  # a push kept it, or another release took over
            raise
        return size

    @staticmethod
    def _unflag(row: ProjectBlobRow, token: str) -> None:
        try:
            row.update(actions=[ProjectBlobRow.releasing.remove()], condition=ProjectBlobRow.releasing == token)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def usage(self, project: str) -> tuple[int, int, bool] | None:
        """(used, limit, warned) from one strongly consistent GetItem; None if the project is gone."""
        try:
            row = ProjectRow.get(keys.project_pk(project), keys.ENTITY_SK, consistent_read=True,
                                 attributes_to_get=["storage_used", "storage_limit", "quota_warned"])  # fmt: skip
        except ProjectRow.DoesNotExist:
            return None
        return int(row.storage_used), int(row.storage_limit), bool(row.quota_warned)

    def mark_quota_warned(self, project: str, warned: bool, limit: int, threshold: int) -> bool:
        """Flip the project's warning flag, only while its limit is still `limit` and its usage is
        still at or past `threshold` (to set it) or below it (to clear it). False if the flag had
        that value already or usage moved: of several concurrent crossings exactly one wins, and a
        re-arm never undoes a warning a concurrent push just sent."""
        flagged = ProjectRow.quota_warned == True  # noqa: E712 (a condition expression, not a test)
        usage = ProjectRow.storage_used >= threshold if warned else ProjectRow.storage_used < threshold
        condition = (ProjectRow.storage_limit == limit) & usage & (~flagged if warned else flagged)
        try:
            ProjectRow(keys.project_pk(project), keys.ENTITY_SK).update(
                actions=[ProjectRow.quota_warned.set(warned)], condition=condition
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_references(self, project: str, repository: str, manifest: str, digests: list[str]) -> None:
        """Record that `manifest` references each digest (itself included), for release on delete."""
        pk = keys.project_pk(project)
        with BatchWrite(BlobRefRow) as batch:
            for digest in dict.fromkeys([manifest, *digests]):
                batch.save(BlobRefRow(pk, keys.blob_ref_sk(digest, repository, manifest)))

    def remove_references(self, project: str, repository: str, manifest: str, digests: list[str]) -> None:
        """Drop `manifest`'s references (itself included)."""
        pk = keys.project_pk(project)
        with BatchWrite(BlobRefRow) as batch:
            for digest in dict.fromkeys([manifest, *digests]):
                batch.delete(BlobRefRow(pk, keys.blob_ref_sk(digest, repository, manifest)))

    def referenced(self, project: str, digest: str) -> bool:
        """Whether any manifest of the project references the digest (one Query, one key)."""
        pk = keys.project_pk(project)
        rows = BlobRefRow.query(pk, BlobRefRow.sk.startswith(keys.blob_ref_prefix(digest)), limit=1,
                                consistent_read=True)  # fmt: skip
        return next(iter(rows), None) is not None


def _to_project(row: ProjectRow) -> Project:
    return Project(
        project_id=int(row.project_id),
        name=row.pk.removeprefix(keys.PROJECT_PREFIX),
        owner_id=int(row.owner_id),
        owner_name=row.owner_name,
        metadata={str(k): str(v) for k, v in (row.metadata.as_dict() if row.metadata else {}).items()},
        cve_allowlist=json.loads(row.cve_allowlist or "{}"),
        storage_limit=int(row.storage_limit),
        storage_used=int(row.storage_used),
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
        registry_id=int(row.registry_id or 0),
    )


def _to_member(project: str, row: MemberRow) -> Member:
    return Member(
        member_id=int(row.member_id),
        project_name=project,
        entity_id=int(row.entity_id),
        entity_name=row.entity_name,
        role=Role(int(row.role_id)),
    )
