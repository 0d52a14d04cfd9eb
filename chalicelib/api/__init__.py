"""HTTP edge: the blueprints `app.py` registers."""

from __future__ import annotations

from chalicelib.api.mgmt import gc, health, members, projects, quotas, robots, system, users
from chalicelib.api.oci import routes, token

BLUEPRINTS = (
    routes.bp,
    token.bp,
    health.bp,
    system.bp,
    users.bp,
    projects.bp,
    members.bp,
    robots.bp,
    quotas.bp,
    gc.bp,
)
