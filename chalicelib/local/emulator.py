"""In-process AWS for the embedded runner: moto, with tables and bucket created from `infra/`.

The app's boto3 and PynamoDB calls are served by moto inside the process (`mock_aws`): no sockets,
no request parsing, so a local push costs little more than the bytes it moves. moto's HTTP server
runs beside it on loopback, on the same in-memory state, only to serve the presigned URLs that blob
downloads redirect to (clients fetch those themselves).

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
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from chalicelib.config import Settings

INFRA_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "resources.json"
# CloudFormation keys of AWS::DynamoDB::Table that are not create_table arguments.
_NOT_CREATE_TABLE_ARGS = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}


class Emulator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mock = mock_aws()
        self._server = ThreadedMotoServer(ip_address=settings.host, port=settings.moto_port, verbose=False)
        self.server_url = ""

    def start(self) -> str:
        """Start moto (in-process and on loopback); returns the URL presigned links should use."""
        self._mock.start()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.server_url = f"http://{host}:{port}"
        return self.server_url

    def stop(self) -> None:
        self._server.stop()
        self._mock.stop(remove_data=False)

    def client(self, service: Any) -> Any:
        return boto3.session.Session().client(
            service, region_name=self._settings.aws_region,
            aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106 (moto accepts any)
        )  # fmt: skip

    def create_resources(self) -> None:
        """Create the table and bucket if absent (idempotent)."""
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
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=self._settings.bucket_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise


def table_properties() -> dict[str, Any]:
    template = json.loads(INFRA_TEMPLATE.read_text())
    properties: dict[str, Any] = template["Resources"]["RegistryTable"]["Properties"]
    return properties
