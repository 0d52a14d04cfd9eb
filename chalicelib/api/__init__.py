"""HTTP edge: the blueprints `app.py` registers."""

from __future__ import annotations

from chalicelib.api.mgmt import (
    allowlists,
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
    repositories,
    retention,
    robots,
    scan_all,
    scanners,
    scans,
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
    allowlists.bp,
    scanners.bp,
    scans.bp,
    scan_all.bp,
)
