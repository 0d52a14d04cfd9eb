"""Repository rows as the management API sees them: ids, descriptions, pull counts, artifact counts.

The row itself is created by the manifest PUT transaction (stores/manifests.py); this store adds
Harbor's fields to it and reads it back. Keys in `keys.py`.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import replace
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.core.catalog import Repository
from chalicelib.core.clock import Clock, system_clock
from chalicelib.stores import keys
from chalicelib.stores.artifacts import ArtifactStore
from chalicelib.stores.tables import (
    IdRow,
    ManifestRow,
    RepositoryRow,
    condition_failed,
    connection,
    name_by_id,
    next_id,
)

_KIND = "REPOSITORY"


class RepositoryStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def get(self, name: str) -> Repository | None:
        try:
            return _to_repository(RepositoryRow.get(keys.REPOS_PK, name, consistent_read=True))
        except RepositoryRow.DoesNotExist:
            return None

    def name_of(self, repository_id: int) -> str | None:
        return name_by_id(_KIND, repository_id)

    def find(self, project: str | None = None) -> list[Repository]:
        """Every repository, or a project's: one Query on the `REPOS` partition (paged by PynamoDB)."""
        condition = RepositoryRow.sk.startswith(keys.project_repos_prefix(project)) if project else None
        return [_to_repository(row) for row in RepositoryRow.query(keys.REPOS_PK, condition)]

    def ensure_id(self, repository: Repository) -> Repository:
        """The repository with its integer id, assigning one if it has none yet.

        Two callers racing both draw a number, but only one conditional write sets it; the loser
        reads the winner's id back (its number is simply never used, like a skipped sequence)."""
        if repository.repository_id:
            return repository
        new_id = next_id("repository")
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(
                    RepositoryRow(keys.REPOS_PK, repository.name),
                    actions=[RepositoryRow.repository_id.set(new_id)],
                    condition=RepositoryRow.sk.exists() & RepositoryRow.repository_id.does_not_exist(),
                )
                tx.save(IdRow(keys.id_pk(_KIND, new_id), keys.ENTITY_SK, name=repository.name))
        except TransactWriteError as exc:
            if not condition_failed(exc):
                raise
            current = self.get(repository.name)
            return current if current is not None and current.repository_id else repository
        return replace(repository, repository_id=new_id)

    def set_description(self, name: str, description: str) -> bool:
        """False when the repository no longer exists."""
        now = int(self._clock())
        return _update_existing(name, [RepositoryRow.description.set(description), RepositoryRow.updated_at.set(now)])

    def add_pulls(self, name: str, count: int, last_pull_time: int) -> bool:
        """Add `count` pulls (one atomic UpdateItem); False when the repository is gone.

        Callers coalesce pulls (services/pulls.py), so this runs at most about once per
        repository per flush window, not once per pull."""
        actions = [RepositoryRow.pull_count.add(count), RepositoryRow.pull_time.set(last_pull_time)]
        return _update_existing(name, actions)

    def artifact_count(self, name: str) -> int:
        """Harbor's count: the artifacts the repository's list shows, not every manifest (an index's
        untagged children and hidden accessories are not counted), so it equals the artifact
        list's X-Total-Count; a `Select=COUNT` Query of the list's partition (no item data)."""
        return ArtifactStore().listed_count(name)

    def artifacts(self, name: str) -> list[tuple[str, list[str], bool]]:
        """(digest, children, children only in the body) of every manifest in the repository."""
        rows = ManifestRow.query(
            keys.repo_pk(name),
            ManifestRow.sk.startswith(keys.MANIFEST_PREFIX),
            consistent_read=True,
            attributes_to_get=["sk", "children", "refs_in_body"],
        )
        return [
            (row.sk.removeprefix(keys.MANIFEST_PREFIX), [str(c) for c in row.children or []], bool(row.refs_in_body))
            for row in rows
        ]

    def mark_deleting(self, name: str) -> int | None:
        """Stamp the row's `updated_at` with a unique negative token before its artifacts are
        deleted; None if the row is gone. Every push sets `updated_at` to the time, so the final
        `delete` (conditional on the token) fails if any push landed meanwhile, whatever second
        it was in; readers see `creation_time` as the update time while the stamp is on."""
        token = -1 - secrets.randbelow(2**52)
        return token if _update_existing(name, [RepositoryRow.updated_at.set(token)]) else None

    def unmark(self, name: str, token: int, updated_at: int) -> None:
        """Put back the update time after a failed delete, unless a push has already moved it."""
        with contextlib.suppress(UpdateError):
            RepositoryRow(keys.REPOS_PK, name).update(
                actions=[RepositoryRow.updated_at.set(updated_at)], condition=RepositoryRow.updated_at == token
            )

    def delete(self, repository: Repository, token: int) -> bool:
        """Remove the row and its id row if it holds no manifest and no push touched it since
        `mark_deleting` gave `token`. False when refused."""
        if next(iter(self.artifacts(repository.name)), None) is not None:
            return False
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(RepositoryRow(keys.REPOS_PK, repository.name), condition=RepositoryRow.updated_at == token)
                if repository.repository_id:
                    tx.delete(IdRow(keys.id_pk(_KIND, repository.repository_id), keys.ENTITY_SK))
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True


def _update_existing(name: str, actions: list[Any]) -> bool:
    """One UpdateItem on the repository row if it exists; False if it does not."""
    try:
        RepositoryRow(keys.REPOS_PK, name).update(actions=actions, condition=RepositoryRow.sk.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _to_repository(row: RepositoryRow) -> Repository:
    return Repository(
        name=row.sk,
        project=row.project,
        repository_id=int(row.repository_id or 0),
        description=row.description or "",
        pull_count=int(row.pull_count or 0),
        pull_time=int(row.pull_time) if row.pull_time is not None else None,
        created_at=int(row.created_at),
        # Negative while a delete is in progress (`mark_deleting`).
        updated_at=int(row.updated_at) if row.updated_at >= 0 else int(row.created_at),
    )
