"""One scan: pull the image, rebuild the files the analysers read, list what is installed, match
it against the OSV index. Also the database holder, which reloads the operator's OSV files when
they change."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.adapters.egress import EgressClient
from chalicelib.adapters.scanner_api import as_object, as_text
from chalicelib.scanner_adapter import osv, packages
from chalicelib.scanner_adapter.layers import FileSystem, LayerRejected, Limits, apply_layer
from chalicelib.scanner_adapter.pull import PullFailed, RegistryPuller
from chalicelib.scanner_adapter.report import Finding, find

logger = logging.getLogger(__name__)

IMAGE_CONFIGS = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")


class ScanFailed(Exception):
    """The scan could not be completed; the message is what the report GET answers."""


@dataclass(frozen=True, slots=True)
class Target:
    registry_url: str
    authorization: str
    insecure: bool
    repository: str
    digest: str
    mime_type: str


@dataclass(frozen=True, slots=True)
class Analysis:
    inventory: packages.Inventory
    findings: list[Finding]


def analyse(target: Target, http: EgressClient, limits: Limits, index: osv.OsvIndex) -> Analysis:
    try:
        puller = RegistryPuller(http, target.registry_url, target.authorization, verify=not target.insecure)
        _media_type, manifest, _raw = puller.manifest(target.repository, target.digest)
        config = as_object(manifest.get("config"))
        if as_text(config.get("mediaType")) not in IMAGE_CONFIGS:
            raise ScanFailed(f"not a container image (config {config.get('mediaType')!r})")
        filesystem = FileSystem()
        for layer in manifest["layers"]:
            if not isinstance(layer, dict) or not _unpackable(str(layer.get("mediaType", ""))):
                continue
            digest = str(layer.get("digest", ""))
            with puller.blob(target.repository, digest) as stream:
                apply_layer(filesystem, stream, digest, packages.wanted, limits)
    except (PullFailed, LayerRejected) as failure:
        raise ScanFailed(str(failure)) from None
    inventory = packages.inventory(filesystem)
    return Analysis(inventory, find(inventory, index))


def _unpackable(media_type: str) -> bool:
    """Tar layers, compressed or not; foreign (non-distributable) layers are not in the registry."""
    if "foreign" in media_type or "nondistributable" in media_type:
        return False
    return ".tar" in media_type or "rootfs.diff" in media_type


class OsvDatabase:
    """The OSV index, loaded from `path` at start and again when a file under it changes. A reload
    that fails keeps the index that was loaded (logged); the first load must succeed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._index = osv.load(path)
        self._log_loaded()

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> osv.OsvIndex:
        with self._lock:
            stamp = _stamp(self._path)
            if stamp != self._stamp:
                try:
                    self._index = osv.load(self._path)
                    self._log_loaded()
                except (OSError, ValueError) as failure:
                    logger.error("OSV database %s not reloaded: %s", self._path, failure)
                self._stamp = stamp
            return self._index

    def _log_loaded(self) -> None:
        index = self._index
        logger.info("OSV database %s: %d records, skipped %s", self._path, index.records, dict(index.skipped))


def _stamp(path: Path) -> tuple[Any, ...]:
    """What changes when the database does: a file's size and mtime, or those of every file under
    a directory."""
    if not path.is_dir():
        status = path.stat()
        return (status.st_size, status.st_mtime_ns)
    found = []
    for root, _dirs, files in os.walk(path):
        for file in files:
            status = (Path(root) / file).stat()
            found.append((root, file, status.st_size, status.st_mtime_ns))
    return tuple(sorted(found))
