"""Icons: which bytes may be shown as an artifact's icon (PNG, JPEG or GIF, at most 1 MiB).

The type is decided by the leading magic bytes, as Harbor's content sniffing does, never by the
media type a client declared; anything else is refused, so the icon endpoint cannot be used to
serve arbitrary blobs as images.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

ICON_MAX_BYTES = 1024 * 1024

_PNG = b"\x89PNG\r\n\x1a\n"
_MAGIC = (
    (_PNG, "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def icon_type(data: bytes) -> str | None:
    """The image content type of `data` if it may be an icon, else None."""
    if len(data) > ICON_MAX_BYTES:
        return None
    return next((content_type for magic, content_type in _MAGIC if data.startswith(magic)), None)


# Harbor's built-in icon digests (its `lib/icon` constants): the artifacts API shows them for an
# artifact without an icon of its own, and clients then ask /api/v2.0/icons for them. They name no
# blob; the images served for them are drawn here (not Harbor's artwork): a coloured tile per type.
BUILTIN_ICONS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06": ("IMAGE", (0x00, 0x79, 0xB8)),
    "sha256:61cf3a178ff0f75bf08a25d96b75cf7355dc197749a9f128ed3ef34b0df05518": ("CHART", (0x0F, 0x16, 0x89)),
    "sha256:089bdda265c14d8686111402c8ad629e8177a1ceb7dcd0f7f39b6480f623b3bd": ("CNAB", (0x2E, 0x7D, 0x32)),
    "sha256:badd7693bcaf115be202748241dd0ea6ee3b0524bfab9ac22d1e1c43721afec6": ("WASM", (0x65, 0x4F, 0xF0)),
    "sha256:da834479c923584f4cbcdecc0dac61f32bef1d51e8aae598cf16bd154efab49f": ("DEFAULT", (0x6D, 0x6D, 0x6D)),
}
_DEFAULT_ICON = next(digest for digest, (kind, _) in BUILTIN_ICONS.items() if kind == "DEFAULT")
_BY_TYPE = {kind: digest for digest, (kind, _) in BUILTIN_ICONS.items() if kind != "DEFAULT"}
_TILE = 50


def display_icon(artifact_type: str, icon: str | None) -> str:
    """The icon digest the artifacts API shows: the artifact's own, else its type's built-in (Harbor)."""
    return icon or _BY_TYPE.get(artifact_type, _DEFAULT_ICON)


@lru_cache(maxsize=len(BUILTIN_ICONS))
def builtin_icon(digest: str) -> bytes | None:
    """A 50x50 PNG for a built-in icon digest, or None for any other digest."""
    if digest not in BUILTIN_ICONS:
        return None
    _, colour = BUILTIN_ICONS[digest]
    edge = bytes(colour)
    inner = bytes(min(255, c + 0x40) for c in colour)
    rows = []
    for y in range(_TILE):
        border_row = y < 4 or y >= _TILE - 4
        pixels = edge * _TILE if border_row else edge * 4 + inner * (_TILE - 8) + edge * 4
        rows.append(b"\x00" + pixels)
    header = struct.pack(">IIBBBBB", _TILE, _TILE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return _PNG + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
