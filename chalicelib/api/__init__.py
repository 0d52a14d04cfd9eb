"""HTTP edge: the blueprints `app.py` registers."""

from __future__ import annotations

from chalicelib.api.mgmt import health
from chalicelib.api.oci import routes

BLUEPRINTS = (routes.bp, health.bp)
