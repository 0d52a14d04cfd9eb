"""The `aws-ecr` adapter: its password comes from GetAuthorizationToken (moto) and is sent as
Basic `AWS:<password>` to the registry (a distribution with that htpasswd entry stands in for
ECR's registry host); repositories are created before a push."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.registry.base import HEALTHY, UNHEALTHY, Endpoint
from chalicelib.adapters.registry.catalog import create_adapter
from chalicelib.adapters.registry.ecr import AwsEcrAdapter, region_of
from chalicelib.adapters.registry.errors import RemoteError

from .peers import Distribution
from .replication_support import Sleeps, push_image, session
from .support import sha256

pytestmark = pytest.mark.e2e

ACCOUNT = "123456789012"  # moto's account; its ECR password is "<account>-auth-token"


@pytest.fixture(scope="module")
def ecr_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    peer = Distribution(tmp_path_factory.mktemp("dist-ecr"), auth=f"AWS:{ACCOUNT}-auth-token").start()
    yield peer
    peer.stop()


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def endpoint(url: str) -> Endpoint:
    return Endpoint("aws-ecr", url, "AKIDEXAMPLE", "secret-key", settings={"region": "eu-west-1"})


@pytest.mark.usefixtures("aws")
def test_ecr_password_from_get_authorization_token(ecr_registry: Distribution) -> None:
    adapter = create_adapter(endpoint(ecr_registry.url), session(), sleep=Sleeps())
    assert isinstance(adapter, AwsEcrAdapter)
    assert adapter.health() == HEALTHY
    layer = b"ecr layer" * 100
    manifest = push_image(adapter.client, "team/app", "v1", layer)
    assert adapter.client.pull_manifest("team/app", "v1").digest == manifest.digest
    assert adapter.client.read_blob("team/app", sha256(layer)) == layer
    # moto dates its tokens in the past, so each new Basic header asks ECR again: never a stale password.
    assert adapter.ecr_credentials.token_calls >= 2


@pytest.mark.usefixtures("aws")
def test_ecr_repositories_are_created_before_a_push(ecr_registry: Distribution) -> None:
    adapter = create_adapter(endpoint(ecr_registry.url), session(), sleep=Sleeps())
    adapter.prepare_for_push(["team/app", "team/app", "team/other"])
    adapter.prepare_for_push(["team/app"])  # already there: fine
    ecr = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    names = sorted(r["repositoryName"] for r in ecr.describe_repositories()["repositories"])
    assert names == ["team/app", "team/other"]


@pytest.mark.usefixtures("aws")
def test_a_wrong_password_is_unhealthy(ecr_registry: Distribution, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = create_adapter(endpoint(ecr_registry.url), session(), sleep=Sleeps())
    ecr = adapter.ecr_credentials.ecr()
    wrong = base64.b64encode(b"AWS:not-the-password").decode()
    monkeypatch.setattr(ecr, "get_authorization_token", lambda: {"authorizationData": [{"authorizationToken": wrong}]})
    assert adapter.health() == UNHEALTHY


def test_region_comes_from_the_url_or_the_settings() -> None:
    assert region_of(Endpoint("aws-ecr", f"https://{ACCOUNT}.dkr.ecr.ap-south-1.amazonaws.com")) == "ap-south-1"
    assert region_of(Endpoint("aws-ecr", "https://x.example", settings={"region": "eu-west-3"})) == "eu-west-3"
    with pytest.raises(RemoteError):
        region_of(Endpoint("aws-ecr", "https://x.example"))
