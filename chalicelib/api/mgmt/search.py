"""/api/v2.0/search: projects and repositories whose name contains `q`, among those the caller sees.

Each list is cut at `RESULTS_MAX` entries (Harbor returns everything), because every entry costs a
count Query (repo_count of a project, artifact_count of a repository).
"""

from __future__ import annotations

from typing import Any

from chalicelib.api.edge import HttpRequest
from chalicelib.api.mgmt._route import Routes
from chalicelib.api.mgmt.projects import project_view
from chalicelib.errors import BadRequest
from chalicelib.wiring import services

routes = Routes(__name__)
bp = routes.blueprint
RESULTS_MAX = 100
_Q_MAX = 255


@routes.get("/search")
def search(request: HttpRequest) -> dict[str, Any]:
    text = request.arg("q")
    if text is None or not text.strip():
        raise BadRequest("q is required")
    if len(text) > _Q_MAX:
        raise BadRequest(f"q is longer than {_Q_MAX} characters")
    registry = services()
    projects, repositories = registry.repositories.search(request.principal, text.strip(), RESULTS_MAX)
    roles = registry.projects.memberships(request.principal, projects)
    project_results = [project_view(p, roles.get(p.name), registry.projects.repository_count(p.name)) for p in projects]
    counts = registry.repositories.artifact_counts([r.name for r, _ in repositories])
    repository_results = [
        {
            "project_id": project.project_id,
            "project_name": project.name,
            "project_public": project.public,
            "repository_name": repository.name,
            "pull_count": repository.pull_count,
            "artifact_count": counts[repository.name],
        }
        for repository, project in repositories
    ]
    return {"project": project_results, "repository": repository_results}
