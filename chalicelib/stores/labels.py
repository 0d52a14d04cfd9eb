"""Labels and their attachments to artifacts; keys in `keys.py`.

Every write that must stay consistent is one transaction with conditions:
- create: the label row and its name row (the name must be free in its scope);
- rename: the old name row goes, the new one must be free, the label must still exist;
- attach: both attachment rows and the label's id in the artifact's label set, on condition that
  the label and the manifest still exist and the attachment does not (a second attach of the same
  label is a Conflict); detach undoes the three together;
- delete: the label row and its name row first, then every attachment found under the label. An
  attach racing the delete either committed before it (and is found by the consistent Query that
  follows) or fails its label-exists check, so no attachment outlives its label.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.models import BatchWrite
from pynamodb.transactions import TransactWrite

from chalicelib.core.catalog import Label
from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import Conflict, NotFound
from chalicelib.stores import keys
from chalicelib.stores.tables import (
    ArtifactLabelsRow,
    LabelNameRow,
    LabelRefRow,
    LabelRow,
    ManifestRow,
    batch_get_raw,
    cancellation_codes,
    condition_failed,
    connection,
    delete_where,
    next_id,
)


class LabelStore:
    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def create(self, label: Label) -> Label:
        now = int(self._clock())
        label_id = next_id("label")
        row = LabelRow(
            keys.label_pk(label_id), keys.ENTITY_SK, name=label.name, scope=label.scope, project_id=label.project_id,
            description=label.description, color=label.color, created_at=now, updated_at=now,
        )  # fmt: skip
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(row, condition=LabelRow.pk.does_not_exist())
                tx.save(self._name_row(label.scope, label.project_id, label.name, label_id),
                        condition=LabelNameRow.pk.does_not_exist())  # fmt: skip
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise Conflict(f"a label named {label.name!r} already exists in this scope") from None
            raise
        return _to_label(row)

    def get(self, label_id: int) -> Label | None:
        try:
            return _to_label(LabelRow.get(keys.label_pk(label_id), keys.ENTITY_SK, consistent_read=True))
        except LabelRow.DoesNotExist:
            return None

    def get_many(self, label_ids: list[int]) -> dict[int, Label]:
        items = batch_get_raw([(keys.label_pk(i), keys.ENTITY_SK) for i in label_ids])
        labels = [_to_label(LabelRow.from_raw_data(item)) for item in items]
        return {label.label_id: label for label in labels}

    def in_scope(self, scope: str, project_id: int) -> list[Label]:
        """A scope's labels, by name: one Query for the ids, one BatchGetItem for the rows."""
        rows = LabelNameRow.query(keys.label_scope_pk(scope, project_id),
                                  LabelNameRow.sk.startswith(keys.LABEL_NAME_PREFIX))  # fmt: skip
        ids = [int(row.label_id) for row in rows]
        found = self.get_many(ids)
        return [found[i] for i in ids if i in found]

    def update(self, current: Label, name: str, description: str, color: str) -> None:
        """Rewrite the mutable fields; a new name must be free in the scope (Conflict) and the label
        must still exist (NotFound)."""
        actions: list[Any] = [LabelRow.name.set(name), LabelRow.description.set(description), LabelRow.color.set(color),
                   LabelRow.updated_at.set(int(self._clock()))]  # fmt: skip
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(LabelRow(keys.label_pk(current.label_id), keys.ENTITY_SK), actions=actions,
                          condition=LabelRow.pk.exists() & (LabelRow.name == current.name))  # fmt: skip
                if name != current.name:
                    tx.delete(self._name_row(current.scope, current.project_id, current.name, current.label_id))
                    tx.save(self._name_row(current.scope, current.project_id, name, current.label_id),
                            condition=LabelNameRow.pk.does_not_exist())  # fmt: skip
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound(f"label {current.label_id} was changed or deleted meanwhile; read it again") from None
            if "ConditionalCheckFailed" in reasons:
                raise Conflict(f"a label named {name!r} already exists in this scope") from None
            raise

    def delete(self, label: Label) -> bool:
        """Delete the label, then detach it everywhere; False if it was already gone."""
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(LabelRow(keys.label_pk(label.label_id), keys.ENTITY_SK), condition=LabelRow.pk.exists())
                tx.delete(self._name_row(label.scope, label.project_id, label.name, label.label_id))
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        self.detach_everywhere(label.label_id)
        return True

    def delete_scope(self, scope: str, project_id: int) -> int:
        """Delete every label of a scope (a deleted project's), each with its attachments."""
        deleted = 0
        for label in self.in_scope(scope, project_id):
            deleted += self.delete(label)
        return deleted

    def detach_everywhere(self, label_id: int) -> None:
        """Remove every attachment of a (deleted) label: one consistent Query on its partition."""
        refs = LabelRefRow.query(keys.label_pk(label_id), LabelRefRow.sk.startswith(keys.LABEL_REF_PREFIX),
                                 consistent_read=True)  # fmt: skip
        with BatchWrite(LabelRefRow) as batch:
            for ref in refs:
                batch.delete(ref)
                batch.delete(LabelRefRow(keys.repo_pk(ref.repository), keys.artifact_label_sk(ref.digest, label_id)))

    # Attachments.

    def attach(self, label_id: int, repository: str, digest: str) -> None:
        """NotFound if the label or the artifact is gone; Conflict if already attached."""
        now = int(self._clock())
        fields: dict[str, Any] = {"label_id": label_id, "repository": repository, "digest": digest, "created_at": now}
        forward = LabelRefRow(keys.repo_pk(repository), keys.artifact_label_sk(digest, label_id), **fields)
        reverse = LabelRefRow(keys.label_pk(label_id), keys.label_ref_sk(repository, digest), **fields)
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.condition_check(LabelRow, keys.label_pk(label_id), keys.ENTITY_SK, condition=LabelRow.pk.exists())
                tx.condition_check(ManifestRow, keys.repo_pk(repository), keys.manifest_sk(digest),
                                   condition=ManifestRow.pk.exists())  # fmt: skip
                tx.save(forward, condition=LabelRefRow.pk.does_not_exist())
                tx.save(reverse)
                # PynamoDB sends updates after checks and puts: the reasons below keep their places.
                tx.update(_label_set(repository, digest), actions=[ArtifactLabelsRow.label_ids.add({label_id})])
        except TransactWriteError as exc:
            reasons = cancellation_codes(exc)
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise NotFound(f"label {label_id} not found") from None
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise NotFound(f"artifact {digest} not found in {repository}") from None
            if reasons[2:3] == ["ConditionalCheckFailed"]:
                raise Conflict(f"label {label_id} is already attached to the artifact") from None
            raise

    def detach(self, label_id: int, repository: str, digest: str) -> bool:
        """False when the label was not attached."""
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.delete(LabelRefRow(keys.repo_pk(repository), keys.artifact_label_sk(digest, label_id)),
                          condition=LabelRefRow.pk.exists())  # fmt: skip
                tx.delete(LabelRefRow(keys.label_pk(label_id), keys.label_ref_sk(repository, digest)))
                tx.update(_label_set(repository, digest), actions=[ArtifactLabelsRow.label_ids.delete({label_id})])
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def attached(self, repository: str, digest: str | None = None) -> dict[str, list[int]]:
        """Label ids per digest of the repository (of one digest, when given), from the attachment
        rows: one Query. Digests without a label are left out."""
        prefix = keys.LABEL_PREFIX if digest is None else f"{keys.LABEL_PREFIX}{digest}#"
        rows = LabelRefRow.query(keys.repo_pk(repository), LabelRefRow.sk.startswith(prefix), consistent_read=True)
        found: dict[str, list[int]] = {}
        for row in rows:
            found.setdefault(row.digest, []).append(int(row.label_id))
        return found

    def label_sets(self, repository: str, digests: list[str]) -> dict[str, list[int]]:
        """Label ids per digest from the artifacts' label sets: one BatchGetItem (per 100), for list
        pages. May name labels deleted since (see keys.py); digests without a label are left out."""
        pk = keys.repo_pk(repository)
        items = batch_get_raw([(pk, keys.artifact_labels_sk(d)) for d in digests])
        found: dict[str, list[int]] = {}
        for item in items:
            row = ArtifactLabelsRow.from_raw_data(item)
            if row.label_ids:
                found[row.sk.removeprefix(keys.ARTIFACT_LABELS_PREFIX)] = sorted(int(i) for i in row.label_ids)
        return found

    def detach_artifact(self, repository: str, digest: str) -> None:
        """Drop every attachment of a deleted artifact (both rows of each), then its emptied label
        set (only while empty: a label attached meanwhile to a re-pushed manifest stays)."""
        for label_id in self.attached(repository, digest).get(digest, []):
            self.detach(label_id, repository, digest)
        delete_where(_label_set(repository, digest), ArtifactLabelsRow.label_ids.does_not_exist())

    @staticmethod
    def _name_row(scope: str, project_id: int, name: str, label_id: int) -> LabelNameRow:
        return LabelNameRow(keys.label_scope_pk(scope, project_id), keys.label_name_sk(name), label_id=label_id)


def _label_set(repository: str, digest: str) -> ArtifactLabelsRow:
    return ArtifactLabelsRow(keys.repo_pk(repository), keys.artifact_labels_sk(digest))


def _to_label(row: LabelRow) -> Label:
    return Label(
        label_id=int(row.pk.removeprefix(keys.LABEL_PREFIX)),
        name=row.name,
        scope="g" if row.scope == "g" else "p",
        project_id=int(row.project_id or 0),
        description=row.description or "",
        color=row.color or "",
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )
