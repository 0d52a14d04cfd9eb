"""`aws-ecr`: Amazon ECR. Its registry takes Basic auth with user `AWS` and a password that
`GetAuthorizationToken` returns for the endpoint's access key and secret, valid 12 hours; the
password is asked for again shortly before it expires. ECR refuses a push to a repository that
does not exist, so `prepare_for_push` creates them. This module is the only boto3 user among the
adapters; the client is made on first use, never at import.

The endpoint URL is the registry's own (`https://<account>.dkr.ecr.<region>.amazonaws.com`);
the region comes from the URL (`<account>.dkr.ecr.<region>.amazonaws.com`) or the endpoint's
`region` setting; `ecr_endpoint_url` points the API at another endpoint (a VPC endpoint, or moto).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, ClassVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.registry.auth import BasicCredentials, CredentialSource
from chalicelib.adapters.registry.base import Endpoint, RegistryAdapter
from chalicelib.adapters.registry.errors import RemoteError, RemoteUnauthorized

_ECR_HOST = re.compile(r"^https?://(?P<account>\d+)\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")
# A password is renewed this long before ECR says it expires.
RENEW_SECONDS = 15 * 60


def region_of(endpoint: Endpoint) -> str:
    match = _ECR_HOST.match(endpoint.url)
    region = endpoint.settings.get("region") or (match["region"] if match else "")
    if not region:
        raise RemoteError("the ECR region is neither in the URL nor in the endpoint's settings")
    return region


class EcrCredentials(CredentialSource):
    """`AWS:<password>` from GetAuthorizationToken, cached until shortly before it expires."""

    def __init__(self, endpoint: Endpoint, clock: Any) -> None:
        self._endpoint = endpoint
        self._clock = clock
        self._cached: tuple[BasicCredentials, float] | None = None
        self._ecr: Any = None
        self.token_calls = 0

    def ecr(self) -> Any:
        if self._ecr is None:
            self._ecr = boto3.client(
                "ecr",
                region_name=region_of(self._endpoint),
                aws_access_key_id=self._endpoint.access_key or None,
                aws_secret_access_key=self._endpoint.access_secret or None,
                endpoint_url=self._endpoint.settings.get("ecr_endpoint_url") or None,
            )
        return self._ecr

    def current(self) -> BasicCredentials | None:
        now = self._clock()
        if self._cached is None or self._cached[1] - RENEW_SECONDS <= now:
            self._cached = self._fetch(now)
        return self._cached[0]

    def _fetch(self, now: float) -> tuple[BasicCredentials, float]:
        self.token_calls += 1
        try:
            data = self.ecr().get_authorization_token()["authorizationData"][0]
        except (ClientError, BotoCoreError) as exc:
            raise RemoteUnauthorized(f"ECR refused GetAuthorizationToken ({type(exc).__name__})") from None
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        expires = data.get("expiresAt")
        until = expires.timestamp() if expires is not None else now + 3600
        # A token ECR dates in the past (moto does) is used for this call and asked for again next time.
        return BasicCredentials(user, password), until


class AwsEcrAdapter(RegistryAdapter):
    type: ClassVar[str] = "aws-ecr"
    description: ClassVar[str] = "Amazon ECR (access key and secret of an IAM identity)"
    copy_by_chunk: ClassVar[bool] = False

    _ecr_credentials: EcrCredentials | None = None

    def credentials(self) -> CredentialSource:
        self._ecr_credentials = EcrCredentials(self.endpoint, self.clock)
        return self._ecr_credentials

    @property
    def ecr_credentials(self) -> EcrCredentials:
        assert self._ecr_credentials is not None
        return self._ecr_credentials

    def prepare_for_push(self, repositories: Iterable[str]) -> None:
        """Create each repository that does not exist yet (ECR has no create-on-push)."""
        ecr = self.ecr_credentials.ecr()
        for name in sorted(set(repositories)):
            try:
                ecr.create_repository(repositoryName=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "RepositoryAlreadyExistsException":
                    raise RemoteError(f"ECR refused to create {name} ({exc.response['Error'].get('Code')})") from None
            except BotoCoreError as exc:
                raise RemoteError(f"ECR could not be reached ({type(exc).__name__})") from None
