"""The files of scan data exports in the object store (keys in `keys.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.stores import keys

if TYPE_CHECKING:
    from chalicelib.stores.objects import ObjectStore


class ScanExportFiles:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    def put_part(self, execution_id: int, part: int, data: bytes) -> None:
        self._objects.put(keys.scan_export_part_key(execution_id, part), data)

    def join(self, execution_id: int, header: bytes, parts: int) -> int:
        """Write the file: the header, then the parts in order; the parts are deleted. Its size."""
        names = [keys.scan_export_part_key(execution_id, n) for n in range(parts)]
        body = header + b"".join(self._objects.get(name) for name in names if self._objects.exists(name))
        self._objects.put(keys.scan_export_key(execution_id), body)
        if names:
            self._objects.delete(*names)
        return len(body)

    def present(self, execution_id: int) -> bool:
        return self._objects.exists(keys.scan_export_key(execution_id))

    def download_url(self, execution_id: int, ttl_seconds: int) -> str:
        return self._objects.presigned_get(keys.scan_export_key(execution_id), ttl_seconds)
