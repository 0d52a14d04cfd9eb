"""A project's immutable-tag rules: one item, `PROJECT#<name>` / `IMMUTABLE` (keys in `keys.py`),
read and written as a versioned project document (`project_documents.py`)."""

from __future__ import annotations

from chalicelib.stores import keys
from chalicelib.stores.project_documents import ProjectDocumentStore
from chalicelib.stores.tables import ImmutableRulesRow


class ImmutabilityStore(ProjectDocumentStore):
    def __init__(self) -> None:
        super().__init__(ImmutableRulesRow, keys.IMMUTABLE_SK, "rules", "immutable rules", "immutable")
