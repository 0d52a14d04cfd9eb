"""The GC log prints sizes as Harbor's GC job does (its clients parse the freed size)."""

from __future__ import annotations

import pytest

from chalicelib.services.gc import harbor_size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (2047, "1.99 KiB"),  # truncated, not rounded
        (1536, "1.50 KiB"),
        (10 * 1024**2 - 1, "9.99 MiB"),
        (5 * 1024**3 + 1, "5.00 GiB"),
        (3 * 1024**4, "3.00 TiB"),
    ],
)
def test_sizes_as_harbor_prints_them(size: int, text: str) -> None:
    assert harbor_size(size) == text
