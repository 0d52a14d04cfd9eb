"""The Chalice application: registers the blueprints and the background entry points, nothing else."""

from typing import Any

from chalicelib.api import BLUEPRINTS
from chalicelib.api.edge import RegistryApp
from chalicelib.jobs import BLUEPRINTS as JOB_BLUEPRINTS
from chalicelib.jobs import ENTRY_POINTS, HANDLERS

app = RegistryApp(app_name="registry")
app.api.binary_types = ["*/*"]
for blueprint in (*BLUEPRINTS, *JOB_BLUEPRINTS):
    app.register_blueprint(blueprint)


def _lambda_function(name: str) -> Any:
    """The Lambda function `name` of the entry point table: Chalice packages it as `app.<name>`."""

    def entry(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return HANDLERS[name](event)

    entry.__name__ = entry.__qualname__ = name
    return app.lambda_function(name=name)(entry)


# The Step Functions Task handlers and the scheduled tick, one per row of the table.
for _entry in ENTRY_POINTS:
    globals()[_entry.name] = _lambda_function(_entry.name)
