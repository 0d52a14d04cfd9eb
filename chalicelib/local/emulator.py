"""In-process AWS for the embedded runner: moto, with the table created from `infra/`.

The app's PynamoDB calls are served by moto inside the process (`mock_aws`): no sockets, no request
parsing. Blob bytes do not go through moto: the runner keeps them as files (`stores/files.py`).

The table definition is read from `infra/resources.json`, the same resource CloudFormation creates
on AWS, so local and cloud never drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.config import Settings

INFRA_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "resources.json"
# CloudFormation keys of AWS::DynamoDB::Table that are not create_table arguments.
_NOT_CREATE_TABLE_ARGS = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}


class Emulator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mock = mock_aws()

    def start(self) -> None:
        self._mock.start()

    def stop(self) -> None:
        self._mock.stop(remove_data=False)

    def client(self, service: Any) -> Any:
        return boto3.session.Session().client(
            service, region_name=self._settings.aws_region,
            aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106 (moto accepts any)
        )  # fmt: skip

    def create_resources(self) -> None:
        """Create the table if absent (idempotent)."""
        dynamodb = self.client("dynamodb")
        properties = table_properties()
        try:
            args = {k: v for k, v in properties.items() if k not in _NOT_CREATE_TABLE_ARGS}
            dynamodb.create_table(TableName=self._settings.table_name, **args)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=self._settings.table_name, TimeToLiveSpecification=ttl)


def table_properties() -> dict[str, Any]:
    template = json.loads(INFRA_TEMPLATE.read_text())
    properties: dict[str, Any] = template["Resources"]["RegistryTable"]["Properties"]
    return properties
