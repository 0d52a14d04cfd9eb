"""What the Lambda handler's import (its cold start) must not load: each of these is imported by
the code that needs it, on the request that needs it. Timing is measured by `python -m tests.bench
import`, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

# The X-Ray SDK (and botocore and requests it patches), the AWS SDK, PyJWT with cryptography's x509
# stack, the YAML parser of Helm charts, argon2, and the local runner's test doubles and servers;
# PynamoDB and botocore's client machinery (the `botocore` package itself is imported by Powertools'
# user-agent hook, its `__init__` only), pydantic-settings, and cryptography (token signing).
DEFERRED = ("aws_xray_sdk", "requests", "boto3", "s3transfer", "jwt", "yaml", "argon2", "moto", "werkzeug",
            "waitress", "pynamodb", "botocore.client", "botocore.config", "pydantic_settings",
            "cryptography")  # fmt: skip
_PROBE = "import json, sys; import app; print(json.dumps(sorted(sys.modules)))"


def test_importing_the_handler_loads_none_of_the_deferred_modules() -> None:
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "false"}
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert [name for name in DEFERRED if name in loaded] == []
    # The app's own parts are built on the first request, not at import.
    assert "chalicelib.services.access" not in loaded
    assert "chalicelib.stores.users" not in loaded
    assert [name for name in ("chalicelib.config", "chalicelib.processors", "chalicelib.stores.gc",
                              "chalicelib.api.mgmt.wire.routes", "chalicelib.api.mgmt.wire.models")
            if name in loaded] == []  # fmt: skip
