"""Labels (Harbor): global ones, managed by system administrators, and project ones, managed by the
project's administrators and maintainers; attached to artifacts by developers and above.

Rules, as Harbor has them: a name is unique within its scope (global, or one project); a project
label can only go on that project's artifacts; attaching a label twice is a conflict; deleting a
label removes it from every artifact; deleting an artifact drops its attachments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.core.catalog import GLOBAL, PROJECT, Label
from chalicelib.core.reference import validate_name
from chalicelib.errors import (
    BadRequest,
    ManifestUnknown,
    NotFound,
    ProjectNotFound,
    RegistryError,
)
from chalicelib.events import Event, EventType

if TYPE_CHECKING:
    from chalicelib.core.identity import Project
    from chalicelib.services.manifests import ManifestService
    from chalicelib.services.projects import ProjectService
    from chalicelib.stores.labels import LabelStore

NAME_MAX = 128  # Harbor's limit
COLOR_MAX = 16  # Harbor's column width (`#RRGGBB` in practice)
DESCRIPTION_MAX = 1024


def _validate(name: str, description: str, color: str) -> None:
    if not name.strip():
        raise BadRequest("label name cannot be empty")
    if len(name) > NAME_MAX:
        raise BadRequest(f"label name is longer than {NAME_MAX} characters")
    if len(color) > COLOR_MAX:
        raise BadRequest(f"label color is longer than {COLOR_MAX} characters")
    if len(description) > DESCRIPTION_MAX:
        raise BadRequest(f"label description is longer than {DESCRIPTION_MAX} characters")


class LabelService:
    def __init__(self, labels: LabelStore, projects: ProjectService, manifests: ManifestService) -> None:
        self._labels = labels
        self._projects = projects
        self._manifests = manifests

    def in_scope(self, scope: str, project: Project | None) -> list[Label]:
        """A scope's labels: the global ones, or one project's."""
        if scope == GLOBAL:
            return self._labels.in_scope(GLOBAL, 0)
        if scope != PROJECT:
            raise BadRequest(f"invalid scope {scope!r}: use g or p")
        if project is None:
            raise BadRequest("project_id is required to list project labels")
        return self._labels.in_scope(PROJECT, project.project_id)

    def scope_project(self, scope: str, project_id: int | None) -> Project | None:
        """The project a project label (`p`) lives in; None for a global one (`g`)."""
        if scope not in (GLOBAL, PROJECT):
            raise BadRequest(f"invalid scope {scope!r}: use g or p")
        if scope == GLOBAL:
            return None
        if not project_id:
            raise BadRequest("a project label needs a project_id")
        return self._project(project_id)

    def create(self, name: str, *, project: Project | None, description: str, color: str) -> Label:
        """A global label (`project` None) or a project's."""
        _validate(name, description, color)
        owner = project.project_id if project is not None else 0
        label = Label(0, name, "g" if project is None else "p", owner, description, color)
        return self._labels.create(label)

    def get(self, label_id: int) -> Label:
        label = self._labels.get(label_id)
        if label is None:
            raise NotFound(f"label {label_id} not found")
        return label

    def project_of(self, label: Label) -> Project | None:
        return None if label.scope == GLOBAL else self._project(label.project_id)

    def update(self, label_id: int, name: str | None, description: str | None, color: str | None) -> None:
        """Harbor's PUT rewrites name, description and color; a field left out keeps its value."""
        current = self.get(label_id)
        new_name = current.name if name is None else name
        new_description = current.description if description is None else description
        new_color = current.color if color is None else color
        _validate(new_name, new_description, new_color)
        self._labels.update(current, new_name, new_description, new_color)

    def delete(self, label_id: int) -> None:
        label = self.get(label_id)
        if not self._labels.delete(label):
            raise NotFound(f"label {label_id} not found")

    # Attachments.

    def attach(self, project: Project, repository: str, reference: str, label_id: int) -> None:
        full, digest = self._artifact(project, repository, reference)
        label = self._labels.get(label_id)
        if label is None:
            raise NotFound(f"label {label_id} not found")
        if label.scope == PROJECT and label.project_id != project.project_id:
            raise BadRequest(f"label {label_id} belongs to another project")
        self._labels.attach(label_id, full, digest)

    def detach(self, project: Project, repository: str, reference: str, label_id: int) -> None:
        full, digest = self._artifact(project, repository, reference)
        if not self._labels.detach(label_id, full, digest):
            raise NotFound(f"label {label_id} is not attached to the artifact")

    def labels_for(self, repository: str, digests: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Harbor label JSON per digest, for artifact listings: one BatchGetItem for the page's
        label sets and one for the labels (a deleted label drops out here). Digests without
        labels map to []."""
        attached = self._labels.label_sets(repository, digests)
        labels = self._labels.get_many(sorted({i for ids in attached.values() for i in ids}))
        return {
            digest: [labels[i].harbor_json() for i in sorted(attached.get(digest, [])) if i in labels]
            for digest in digests
        }

    def label_ids(self, repository: str) -> dict[str, list[int]]:
        """Label ids per digest for every labelled artifact of the repository (one Query), for
        Harbor's `q=labels=...` filter on artifact lists."""
        return self._labels.attached(repository)

    def forget_artifact(self, event: Event) -> None:
        """Event subscriber: a deleted artifact loses its labels (Harbor removes the references)."""
        if event.type is EventType.DELETE_ARTIFACT and event.repository and event.digest:
            self._labels.detach_artifact(event.repository, event.digest)

    def forget_project(self, event: Event) -> None:
        """Event subscriber: a deleted project's labels go with it (Harbor deletes them). The
        event names the project's id in `detail["project_id"]`, since the id row is gone by then."""
        project_id = event.detail.get("project_id")
        if event.type is EventType.DELETE_PROJECT and isinstance(project_id, int) and project_id > 0:
            self._labels.delete_scope(PROJECT, project_id)

    # Helpers.

    def _artifact(self, project: Project, repository: str, reference: str) -> tuple[str, str]:
        full = validate_name(f"{project.name}/{repository}")
        try:
            return full, self._manifests.resolve(full, reference)
        except ManifestUnknown:
            raise NotFound(f"artifact {reference} not found in {full}") from None
        except RegistryError as exc:
            if exc.http_status >= 500:
                raise
            raise BadRequest(f"invalid artifact reference: {exc.message}") from None

    def _project(self, project_id: int) -> Project:
        try:
            return self._projects.resolve(str(project_id), force_name=False)
        except NotFound:
            raise ProjectNotFound(f"project {project_id} not found") from None
