"""Registry credentials the way docker finds them: `--creds`, then the Docker config file.

The config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) is read like docker
reads it: a host's `credHelpers` entry, else the global `credsStore`, names a helper program
`docker-credential-<name>` that is run as `<program> get` with the server address on stdin and
answers `{"ServerURL", "Username", "Secret"}`; otherwise `auths[<host>]` holds base64 `user:pass`
(or `username`/`password`, or an `identitytoken`). A helper's user `<token>` means the secret is an
identity (refresh) token, exchanged at the token endpoint instead of a password.
"""

from __future__ import annotations

import base64
import binascii
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# docker login stores Docker Hub under this key; every other registry under its host (old
# versions wrote `https://host` or `https://host/v1/`).
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 (the helper protocol's marker, not a secret)
_HELPER_TIMEOUT_SECONDS = 30


class CredentialError(RuntimeError):
    """A credential helper that failed, or a config file that cannot be read."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, secret={'***' if not self.anonymous else ''})"


ANONYMOUS = Credentials()


def parse_creds(text: str) -> Credentials:
    """`USER:PASSWORD` from a command-line flag."""
    username, colon, password = text.partition(":")
    if not colon:
        raise CredentialError("credentials must be given as USER:PASSWORD")
    return Credentials(username, password)


def lookup(host: str, config_path: Path | None) -> Credentials:
    """The credentials the Docker config file holds for `host` (anonymous when it has none)."""
    if config_path is None or not config_path.is_file():
        return ANONYMOUS
    try:
        config: dict[str, Any] = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialError(f"cannot read {config_path}: {exc}") from exc
    key = _DOCKER_HUB_KEY if host in _DOCKER_HUB_HOSTS else host
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    if helper:
        found = run_helper(str(helper), key)
        if not found.anonymous:
            return found
    return _from_auths(config.get("auths") or {}, host, key)


def run_helper(helper: str, server: str) -> Credentials:
    """`docker-credential-<helper> get`, server address on stdin; anonymous when it knows none."""
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(  # noqa: S603 (the helper named by the user's own config, no shell)
            [program, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CredentialError(f"credential helper {program} is not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CredentialError(f"credential helper {program} did not answer in {_HELPER_TIMEOUT_SECONDS} s") from exc
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return ANONYMOUS
        raise CredentialError(f"credential helper {program} failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
    try:
        answer = json.loads(proc.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialError(f"credential helper {program} gave an answer that is not its JSON") from exc
    if username == _IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _from_auths(auths: dict[str, Any], host: str, key: str) -> Credentials:
    entry = auths.get(key) or next((v for k, v in auths.items() if _host_of(k) == host), None)
    if not isinstance(entry, dict):
        return ANONYMOUS
    if entry.get("identitytoken"):
        return Credentials(username=str(entry.get("username", "")), identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise CredentialError(f"the auth entry for {host} is not base64 USER:PASSWORD") from exc
        username, _, password = decoded.partition(":")
        return Credentials(username, password)
    return Credentials(str(entry.get("username", "")), str(entry.get("password", "")))


def _host_of(key: str) -> str:
    """`https://host:5000/v1/` -> `host:5000` (keys docker wrote in older versions)."""
    without_scheme = key.split("://", 1)[-1]
    return without_scheme.split("/", 1)[0]
