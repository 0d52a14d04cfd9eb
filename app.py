"""The Chalice application: registers the blueprints and nothing else."""

from chalicelib.api import BLUEPRINTS
from chalicelib.api.edge import RegistryApp
from chalicelib.jobs import BLUEPRINTS as JOB_BLUEPRINTS

app = RegistryApp(app_name="registry")
app.api.binary_types = ["*/*"]
for blueprint in BLUEPRINTS:
    app.register_blueprint(blueprint)
# Background jobs: the Step Functions Task handlers and the scheduled entry point.
for blueprint in JOB_BLUEPRINTS:
    app.register_blueprint(blueprint)
