"""Calling windows in the callee's local time (sans-I/O: every function takes ``now``).

A window is a set of weekdays and a half-open wall-clock span, e.g. ``Mon-Fri 09:00-20:00``
(09:00 ≤ local time < 20:00). Wall-clock, so a DST change day keeps 09:00–20:00 local and is
simply an hour shorter or longer in UTC. A call may be placed only if it would *start* inside
a window: ``allows(now, ring_s)`` requires the whole ring time to fit before the window ends,
since the callee hears the phone ring until then.

A contact whose number spans several zones (a country without one zone) must be inside a
window in *every* candidate zone: nothing is dialed that could start outside its window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_timezones

__all__ = ["CallingWindow", "next_open", "parse_windows", "window_allows", "zones_for"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^\s*(?P<days>[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?(?:\s*,\s*[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?)*)"
    r"\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)
MAX_ZONES = 4  # a number matching more zones than this is treated as "unknown"
SEARCH_DAYS = 9  # any weekly window opens within 8 days; one spare for DST edges


@dataclass(frozen=True)
class CallingWindow:
    """Weekdays (0 = Monday) and ``[start_minute, end_minute)`` after local midnight."""

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("a calling window needs weekdays (Mon..Sun)")
        if not 0 <= self.start_minute < self.end_minute <= 24 * 60:
            raise ValueError("a calling window must end after it starts, within one day")

    def __str__(self) -> str:
        days = ",".join(DAYS[d].title() for d in sorted(self.days))
        return f"{days} {_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start_minute <= minute < self.end_minute

    def end_on(self, day: date, zone: ZoneInfo) -> datetime:
        return _at(day, self.end_minute, zone)

    def start_on(self, day: date, zone: ZoneInfo) -> datetime:
        return _at(day, self.start_minute, zone)


def parse_windows(spec: str | Iterable[str]) -> tuple[CallingWindow, ...]:
    """``"Mon-Fri 09:00-20:00; Sat 10:00-14:00"`` (or a list of such) → windows.
    ``ValueError`` with the offending part."""
    parts = [p for p in (spec.split(";") if isinstance(spec, str) else spec) if p.strip()]
    if not parts:
        raise ValueError("at least one calling window is needed, e.g. 'Mon-Fri 09:00-20:00'")
    windows = []
    for part in parts:
        match = _WINDOW.match(part)
        if not match:
            raise ValueError(f"calling window {part.strip()!r}: expected 'Mon-Fri 09:00-20:00'")
        try:
            days = _days(match["days"])
            windows.append(CallingWindow(days, _minutes(match["start"]), _minutes(match["end"])))
        except ValueError as exc:
            raise ValueError(f"calling window {part.strip()!r}: {exc}") from None
    return tuple(windows)


def zones_for(e164: str, given: str, default: str) -> tuple[str, ...]:
    """The contact's candidate time zones: ``given`` if set (must be a valid IANA name),
    else those ``phonenumbers`` knows for the number, else ``default``."""
    if given:
        _zone(given)
        return (given,)
    try:
        number = phonenumbers.parse(e164, None)
        found = tuple(
            z for z in number_timezones.time_zones_for_number(number) if z != "Etc/Unknown"
        )
    except phonenumbers.NumberParseException:
        found = ()
    valid = tuple(z for z in found if _known(z))
    return valid if 0 < len(valid) <= MAX_ZONES else (default,)


def window_allows(
    windows: Sequence[CallingWindow], zones: Sequence[str], now: datetime, ring_s: float
) -> bool:
    """True if a call placed at ``now`` rings only inside a window, in every zone."""
    return all(_allows_in(windows, _zone(z), now, ring_s) for z in zones)


def next_open(
    windows: Sequence[CallingWindow], zones: Sequence[str], now: datetime, ring_s: float
) -> datetime | None:
    """The earliest instant ≥ ``now`` at which ``window_allows`` holds (UTC), or None if
    the zones' windows never overlap (a contact that can never be called)."""
    candidate = now
    for _ in range(4 * len(zones) + 4):  # each step moves to a later opening
        if window_allows(windows, zones, candidate, ring_s):
            return candidate
        candidate = max(_next_start(windows, _zone(z), candidate, ring_s) for z in zones)
    return None


def _allows_in(
    windows: Sequence[CallingWindow], zone: ZoneInfo, now: datetime, ring_s: float
) -> bool:
    local = now.astimezone(zone)
    for window in windows:
        if window.contains(local):
            ring_end = now + timedelta(seconds=ring_s)
            if ring_end <= window.end_on(local.date(), zone):
                return True
    return False


def _next_start(
    windows: Sequence[CallingWindow], zone: ZoneInfo, now: datetime, ring_s: float
) -> datetime:
    if _allows_in(windows, zone, now, ring_s):
        return now
    today = now.astimezone(zone).date()
    for offset in range(SEARCH_DAYS):
        day = today + timedelta(days=offset)
        starts = sorted(w.start_on(day, zone) for w in windows if day.weekday() in w.days)
        for start in starts:
            if start > now and _allows_in(windows, zone, start, ring_s):
                return start
    return now + timedelta(days=SEARCH_DAYS)


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    if minute >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    # A wall time skipped by a DST jump (02:30 on spring-forward) maps to the instant
    # zoneinfo gives it (fold=0: the offset before the jump), which is after the jump.
    local = datetime.combine(day, time(minute // 60, minute % 60), zone)
    return local.astimezone(UTC)


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for chunk in text.lower().split(","):
        first, _, last = (p.strip() for p in chunk.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown weekday in {chunk.strip()!r}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _minutes(hhmm: str) -> int:
    hours, minutes = (int(p) for p in hhmm.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"{hhmm} is not a time of day")
    return hours * 60 + minutes


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Paris)"
        ) from None
