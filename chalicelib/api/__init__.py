"""HTTP edge: the blueprints `app.py` registers."""

from __future__ import annotations

from chalicelib.api.mgmt import (
    artifacts,
    audit,
    gc,
    health,
    icons,
    immutable,
    labels,
    members,
    projects,
    quotas,
    registries,
    replication,
    repositories,
    retention,
    robots,
    search,
    system,
    users,
    webhooks,
)
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
    icons.bp,
    immutable.bp,
    audit.bp,
    repositories.bp,
    labels.bp,
    search.bp,
    artifacts.bp,
    gc.bp,
    webhooks.bp,
    retention.bp,
    registries.bp,
    replication.bp,
)
