"""Calling windows on a frozen clock: weekdays, ring time, several zones, DST days."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from service.campaigns.windows import next_open, parse_windows, window_allows, zones_for

WEEKDAYS = parse_windows("Mon-Fri 09:00-20:00")
NY, LA = "America/New_York", "America/Los_Angeles"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_parse_windows_and_errors() -> None:
    windows = parse_windows("Mon-Fri 09:00-20:00; Sat 10:00-14:00")
    assert [str(w) for w in windows] == [
        "Mon,Tue,Wed,Thu,Fri 09:00-20:00",
        "Sat 10:00-14:00",
    ]
    assert parse_windows("Fri-Mon 00:00-24:00")[0].days == {4, 5, 6, 0}
    for bad in ("", "Mon-Fri 9-20", "Mon-Fry 09:00-20:00", "Mon 20:00-09:00", "Mon 25:00-26:00"):
        with pytest.raises(ValueError):
            parse_windows(bad)


def test_inside_and_outside_in_the_callees_zone() -> None:
    # Wednesday 2026-03-04 13:30 UTC = 08:30 in New York, 05:30 in Los Angeles.
    now = utc(2026, 3, 4, 13, 30)
    assert not window_allows(WEEKDAYS, [NY], now, 30)
    assert next_open(WEEKDAYS, [NY], now, 30) == local(NY, 2026, 3, 4, 9, 0)
    assert next_open(WEEKDAYS, [LA], now, 30) == local(LA, 2026, 3, 4, 9, 0)
    assert window_allows(WEEKDAYS, [NY], local(NY, 2026, 3, 4, 9, 0), 30)


def test_ring_time_must_fit_before_the_window_closes() -> None:
    almost = local(NY, 2026, 3, 4, 19, 59, 40)
    assert not window_allows(WEEKDAYS, [NY], almost, 30)  # would ring past 20:00
    assert window_allows(WEEKDAYS, [NY], almost, 20)
    # Friday evening → Monday 09:00.
    friday = local(NY, 2026, 3, 6, 19, 59, 50)
    assert next_open(WEEKDAYS, [NY], friday, 30) == local(NY, 2026, 3, 9, 9, 0)


def test_several_zones_must_all_be_inside() -> None:
    # 09:30 in New York is 06:30 in Los Angeles: a number in both waits for LA's 09:00.
    now = local(NY, 2026, 3, 4, 9, 30)
    assert not window_allows(WEEKDAYS, [NY, LA], now, 30)
    assert next_open(WEEKDAYS, [NY, LA], now, 30) == local(LA, 2026, 3, 4, 9, 0)
    # Zones whose windows never overlap: Tokyo and New York, a 2 h window.
    short = parse_windows("Mon-Sun 10:00-12:00")
    assert next_open(short, ["Asia/Tokyo", NY], now, 30) is None


def test_dst_spring_forward_day_keeps_wall_clock_hours() -> None:
    # 2026-03-08 (Sunday) New York jumps 02:00 → 03:00. A 01:00-04:00 window is 2 h long.
    night = parse_windows("Sun 01:00-04:00")
    opens = next_open(night, [NY], utc(2026, 3, 8, 0, 0), 0)
    assert opens == utc(2026, 3, 8, 6, 0)  # 01:00 EST
    assert window_allows(night, [NY], utc(2026, 3, 8, 7, 59), 0)  # 03:59 EDT
    assert not window_allows(night, [NY], utc(2026, 3, 8, 8, 0), 0)  # 04:00 EDT
    # A window starting in the skipped hour opens at the instant after the jump.
    skipped = parse_windows("Sun 02:30-05:00")
    assert next_open(skipped, [NY], utc(2026, 3, 8, 0, 0), 0) == utc(2026, 3, 8, 7, 30)


def test_dst_fall_back_day_and_europe() -> None:
    # 2026-11-01 New York repeats 01:00-02:00; 09:00 local is 14:00 UTC (EST) that day.
    sunday = parse_windows("Sun 09:00-20:00")
    assert next_open(sunday, [NY], utc(2026, 11, 1, 5, 0), 30) == utc(2026, 11, 1, 14, 0)
    # Europe changes a week earlier: 2026-10-25 09:00 in Paris is 08:00 UTC (CET).
    assert next_open(sunday, ["Europe/Paris"], utc(2026, 10, 25, 0, 0), 30) == utc(
        2026, 10, 25, 8, 0
    )


def test_zones_for_a_number() -> None:
    assert zones_for("+13125550100", "", NY) == ("America/Chicago",)
    assert zones_for("+13125550100", "Europe/Paris", NY) == ("Europe/Paris",)
    assert zones_for("+18005550100", "", NY) == (NY,)  # toll-free: many zones → default
    with pytest.raises(ValueError, match="unknown time zone"):
        zones_for("+13125550100", "Mars/Olympus", NY)
