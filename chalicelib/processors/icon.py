"""Icons: which bytes may be shown as an artifact's icon (PNG, JPEG or GIF, at most 1 MiB).

The type is decided by the leading magic bytes, as Harbor's content sniffing does, never by the
media type a client declared; anything else is refused, so the icon endpoint cannot be used to
serve arbitrary blobs as images.
"""

from __future__ import annotations

ICON_MAX_BYTES = 1024 * 1024

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def icon_type(data: bytes) -> str | None:
    """The image content type of `data` if it may be an icon, else None."""
    if len(data) > ICON_MAX_BYTES:
        return None
    return next((content_type for magic, content_type in _MAGIC if data.startswith(magic)), None)
