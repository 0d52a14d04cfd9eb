"""Where credentials the registry must *use* (not merely check) are kept: a remote registry's
password or token. Such a secret cannot be hashed, so it is kept apart from the record that needs it:
the record holds a reference, and only this store turns a reference back into the value, at the
moment an adapter needs it.

Two places, chosen by `REGISTRY_CREDENTIAL_STORE`:

- `secretsmanager` (AWS): one Secrets Manager secret per credential, named
  `<REGISTRY_CREDENTIAL_PREFIX><owner>`; the reference is its ARN. The function's role may touch
  only secrets under that prefix (infra), reading them needs `GetSecretValue`, and rotation or
  audit of who read it is Secrets Manager's.
- `table` (local runner, tests): a `SECRET#<uuid>` row of the registry table; the reference is
  `local:<uuid>`. Locally the table lives in the data directory (0700, files 0600), next to the
  password hashes it already protects.

A reference of either form is always readable, whichever store writes new secrets, so switching a
deployment to Secrets Manager keeps the secrets written before working until they are next changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core.clock import Clock, system_clock
from chalicelib.stores import keys
from chalicelib.stores.tables import SecretRow

LOCAL_PREFIX = "local:"
_ARN = re.compile(r"^arn:[a-z0-9-]+:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_OWNER = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,200}$")


class SecretStore:
    """`put` keeps a value and returns its reference; `get` reads a reference back (None when it is
    gone); `delete` forgets it. `secretsmanager` is a client factory (boto3 is loaded on first use)."""

    def __init__(
        self,
        backend: str = "table",
        *,
        secretsmanager: Callable[[], Any] | None = None,
        prefix: str = "registry/credentials/",
        clock: Clock = system_clock,
    ) -> None:
        if backend not in ("table", "secretsmanager"):
            raise ValueError(f"unknown credential store {backend!r}")
        if backend == "secretsmanager" and secretsmanager is None:
            raise ValueError("the secretsmanager credential store needs a client")
        self._backend = backend
        self._client_factory = secretsmanager
        self._client: Any = None
        self._prefix = prefix
        self._clock = clock

    def put(self, owner: str, value: str) -> str:
        """Keep `value` for `owner` (a stable name such as `registry/7`) and return its reference."""
        if not _OWNER.match(owner):
            raise ValueError(f"invalid secret owner {owner!r}")
        if self._backend == "table":
            secret_id = str(uuid.uuid4())
            SecretRow(keys.secret_pk(secret_id), keys.SECRET_SK, value=value, created_at=int(self._clock())).save()
            return LOCAL_PREFIX + secret_id
        return self._put_secretsmanager(self._prefix + owner, value)

    def get(self, reference: str) -> str | None:
        if not reference:
            return None
        if reference.startswith(LOCAL_PREFIX):
            try:
                row = SecretRow.get(keys.secret_pk(reference.removeprefix(LOCAL_PREFIX)), keys.SECRET_SK)
            except SecretRow.DoesNotExist:
                return None
            return str(row.value)
        if _ARN.match(reference):
            return self._get_secretsmanager(reference)
        return None

    def delete(self, reference: str) -> None:
        if reference.startswith(LOCAL_PREFIX):
            SecretRow(keys.secret_pk(reference.removeprefix(LOCAL_PREFIX)), keys.SECRET_SK).delete()
        elif _ARN.match(reference):
            try:
                self._sm().delete_secret(SecretId=reference, ForceDeleteWithoutRecovery=True)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise

    def _sm(self) -> Any:
        if self._client is None:
            if self._client_factory is None:
                raise RuntimeError("no Secrets Manager client configured to read a Secrets Manager reference")
            self._client = self._client_factory()
        return self._client

    def _put_secretsmanager(self, name: str, value: str) -> str:
        client = self._sm()
        try:
            return str(client.create_secret(Name=name, SecretString=value)["ARN"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
        return str(client.put_secret_value(SecretId=name, SecretString=value)["ARN"])

    def _get_secretsmanager(self, arn: str) -> str | None:
        try:
            return str(self._sm().get_secret_value(SecretId=arn)["SecretString"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "InvalidRequestException"):
                return None
            raise
