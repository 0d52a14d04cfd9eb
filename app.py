"""The Chalice application: registers the blueprints and nothing else."""

from chalicelib.api import BLUEPRINTS
from chalicelib.api.edge import RegistryApp

app = RegistryApp(app_name="registry")
app.api.binary_types = ["*/*"]
for blueprint in BLUEPRINTS:
    app.register_blueprint(blueprint)
