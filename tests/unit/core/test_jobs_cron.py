"""Harbor's 6-field cron (second minute hour day-of-month month day-of-week) and schedule types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.core.jobs import FIXED_CRONS, Cron, CronError


def _next(cron: str, after: str) -> str:
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    return Cron.parse(cron).next_after(moment).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 0 * * * *", "2026-11-27T20:15:00", "2026-11-27T21:00:00"),  # Hourly
        ("0 0 0 * * *", "2026-11-27T20:15:00", "2026-11-28T00:00:00"),  # Daily
        ("0 0 0 * * 0", "2026-11-27T20:15:00", "2026-11-29T00:00:00"),  # Weekly: Sunday
        ("0 0 0 * * 0", "2026-11-29T00:00:00", "2026-12-06T00:00:00"),  # strictly after
        ("*/15 * * * * *", "2026-11-27T20:15:07", "2026-11-27T20:15:15"),
        ("0 30 2 1 * *", "2026-11-27T20:15:00", "2026-12-01T02:30:00"),
        ("0 0 12 29 2 ?", "2026-11-27T20:15:00", "2028-02-29T12:00:00"),  # leap day
        ("0 0 9 * * MON-FRI", "2026-11-27T20:15:00", "2026-11-30T09:00:00"),
        ("0 0 0 1 JAN *", "2026-11-27T20:15:00", "2027-01-01T00:00:00"),
        ("0 5,10 8-9 * * *", "2026-11-27T08:07:00", "2026-11-27T08:10:00"),
        ("0 0 0 * * 7", "2026-11-27T20:15:00", "2026-11-29T00:00:00"),  # 7 is Sunday too
    ],
)
def test_next_run(cron: str, after: str, expected: str) -> None:
    assert _next(cron, after) == expected


@pytest.mark.parametrize(
    "cron",
    ["", "0 0 * * *", "0 0 0 * * * *", "60 * * * * *", "* * 24 * * *", "* * * 0 * *", "* * * * 13 *",
     "* * * * * 8", "*/0 * * * * *", "5-1 * * * * *", "a * * * * *", "0 0 0 31 2 *"],
)  # fmt: skip
def test_invalid_crons(cron: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(cron).next_after(datetime(2026, 1, 1, tzinfo=UTC))


def test_fixed_types_parse() -> None:
    for cron in FIXED_CRONS.values():
        Cron.parse(cron)
