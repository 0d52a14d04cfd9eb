"""The built-in scanner adapter's settings (`REGISTRY_*` variables, like the registry's own).

The adapter is a separate application with its own process and deployment, so it has its own
settings object rather than fields on the registry's: the registry never reads these, and the
adapter never needs the registry's table, bucket or keys. The one variable both read is
`REGISTRY_EGRESS_ALLOW_NETWORKS` (the registry's egress policy, which the adapter applies to the
registry URLs that scan requests name).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chalicelib.scanner_adapter.layers import Limits


class AdapterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    # The OSV database: a directory or a zip of OSV JSON records; read at start and again when it changes.
    osv_database: Path | None = None
    # Where `python -m chalicelib.scanner_adapter` listens.
    scanner_host: str = "127.0.0.1"
    scanner_port: int = Field(default=8081, ge=0, le=65535)
    # The secret callers present (`Authorization: Bearer <key>` or `X-ScannerAdapter-API-Key`).
    scanner_api_key: SecretStr | None = None
    # How long a scan's result can be fetched after it was requested (Trivy's default: 1 h).
    scanner_job_ttl_seconds: int = Field(default=3600, ge=60)
    # Scans running at once; more wait in a queue (and their reports answer 302 meanwhile).
    scanner_workers: int = Field(default=2, ge=1, le=32)
    # Timeout of each call to the registry while pulling.
    scanner_pull_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Tar-bomb caps for one image.
    scanner_max_entries: int = Field(default=500_000, ge=1)
    scanner_max_unpacked_bytes: int = Field(default=8 * 1024**3, ge=1024)
    scanner_max_file_bytes: int = Field(default=64 * 1024**2, ge=1024)
    scanner_max_kept_bytes: int = Field(default=256 * 1024**2, ge=1024)
    scanner_max_ratio: int = Field(default=100, ge=2)
    egress_allow_networks: str = Field(default="", description="comma-separated CIDRs")

    @field_validator("egress_allow_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for network in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(network, strict=False)
        return value

    @property
    def limits(self) -> Limits:
        return Limits(
            max_entries=self.scanner_max_entries,
            max_tar_bytes=self.scanner_max_unpacked_bytes,
            max_file_bytes=self.scanner_max_file_bytes,
            max_kept_bytes=self.scanner_max_kept_bytes,
            max_ratio=self.scanner_max_ratio,
        )
