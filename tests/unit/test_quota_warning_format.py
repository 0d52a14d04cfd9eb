"""The sizes in QUOTA_WARNING's message print as Harbor's `byteCountToDisplaySize` prints them
(its own test cases, src/pkg/quota/types/format_test.go)."""

from __future__ import annotations

import pytest

from chalicelib.services.quotas import display_size


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (100, "100 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1024 * 3 // 2, "1.5 KiB"),
        (1024**2, "1.0 MiB"),
        (1024**2 * 3 // 2, "1.5 MiB"),
        (1024**3, "1.0 GiB"),
        (1024**3 * 3 // 2, "1.5 GiB"),
        (1024**4, "1.0 TiB"),
        (1024**4 * 3 // 2, "1.5 TiB"),
        (1024**2 - 1, "1024.0 KiB"),  # Harbor's loop picks the unit from the integer part
    ],
)
def test_display_size_matches_harbor(value: int, text: str) -> None:
    assert display_size(value) == text
