"""Where credentials the registry must present to others (a scanner adapter's key) are kept.

A record holds only a reference; `get` resolves it when a client is built. Two stores:

- `SecretsManagerStore` (AWS): one Secrets Manager secret per credential, named under a prefix;
  the reference is the secret's ARN, so IAM can scope the registry to its own prefix.
- `LocalSecretStore` (`make serve`): the secret encrypted with AES-GCM in a table row (so the
  journal persists it like every other row), under a key kept in a 0600 file in the data dir; the
  reference is `local:<id>`. A copied table without the key file reveals nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.core.clock import Clock, system_clock
from chalicelib.errors import NotFound
from chalicelib.stores import keys
from chalicelib.stores.tables import SecretRow

LOCAL_PREFIX = "local:"


class SecretStore(Protocol):
    def put(self, name: str, value: str) -> str:
        """Keep `value`; its reference. `name` says what it is for (unique per credential)."""

    def get(self, reference: str) -> str:
        """The value a reference names; NotFound if it is gone."""

    def delete(self, reference: str) -> None:
        """Forget the value (a missing one is fine)."""


class LocalSecretStore:
    def __init__(self, key: bytes, clock: Clock = system_clock) -> None:
        if len(key) != 32:
            raise ValueError("the local secret key must be 32 bytes")
        self._key = key
        self._clock = clock

    def _aead(self) -> Any:
        return AESGCM(self._key)

    def put(self, name: str, value: str) -> str:
        secret_id = secrets.token_hex(16)
        nonce = os.urandom(12)
        # The row's key is authenticated with the value: a ciphertext moved to another row fails.
        sealed = nonce + self._aead().encrypt(nonce, value.encode(), keys.secret_pk(secret_id).encode())
        SecretRow(keys.secret_pk(secret_id), keys.SECRET_SK, ciphertext=sealed, created_at=int(self._clock())).save()
        return LOCAL_PREFIX + secret_id

    def get(self, reference: str) -> str:
        pk = keys.secret_pk(reference.removeprefix(LOCAL_PREFIX))
        if not reference.startswith(LOCAL_PREFIX):
            raise NotFound("the credential is not kept by this secret store")
        try:
            sealed = bytes(SecretRow.get(pk, keys.SECRET_SK).ciphertext)
        except SecretRow.DoesNotExist:
            raise NotFound("the credential is gone") from None
        try:
            return str(self._aead().decrypt(sealed[:12], sealed[12:], pk.encode()).decode())
        except InvalidTag:
            raise NotFound("the credential cannot be read with this secret key") from None

    def delete(self, reference: str) -> None:
        if reference.startswith(LOCAL_PREFIX):
            SecretRow(keys.secret_pk(reference.removeprefix(LOCAL_PREFIX)), keys.SECRET_SK).delete()


class SecretsManagerStore:
    """`client` builds a boto3 Secrets Manager client (lazily: no AWS at import or wiring)."""

    def __init__(self, client: Callable[[], Any], prefix: str) -> None:
        self._client_factory = client
        self._client: Any = None
        self._prefix = prefix

    def _c(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def put(self, name: str, value: str) -> str:
        answer = self._c().create_secret(
            Name=f"{self._prefix}{name}-{secrets.token_hex(4)}", SecretString=value,
            Description="a credential the registry presents (scanner adapter)",
        )  # fmt: skip
        return str(answer["ARN"])

    def get(self, reference: str) -> str:
        client = self._c()
        try:
            return str(client.get_secret_value(SecretId=reference)["SecretString"])
        except client.exceptions.ResourceNotFoundException:
            raise NotFound("the credential is gone") from None

    def delete(self, reference: str) -> None:
        client = self._c()
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_secret(SecretId=reference, ForceDeleteWithoutRecovery=True)
