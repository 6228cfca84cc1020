"""Alertmanager time intervals: when a route is muted (``mute_time_intervals``) or active.

An instant is inside an interval when every field that is set contains it, evaluated in the
interval's IANA ``location`` (UTC by default), so "09:00-17:00 Europe/Berlin" follows daylight saving.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_CLOCK = re.compile(r"^(?:([01][0-9]|2[0-3]):([0-5][0-9])|(24):(00))$")
_INT = re.compile(r"^-?[0-9]+$")


class TimeIntervalError(ValueError):
    """A time interval field that is not written the way Alertmanager accepts it."""


@dataclass(frozen=True)
class Range:
    """An inclusive range of integers (days, months, weekdays, years)."""

    begin: int
    end: int


@dataclass(frozen=True)
class TimeRange:
    """Minutes since local midnight, start inclusive, end exclusive."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[TimeRange, ...] | None = None
    weekdays: tuple[Range, ...] | None = None
    days_of_month: tuple[Range, ...] | None = None
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str | None = None

    def contains(self, when: float) -> bool:
        """Whether the unix time ``when`` falls inside this interval."""
        zone = ZoneInfo(self.location) if self.location else ZoneInfo("UTC")
        local = datetime.fromtimestamp(when, tz=zone)
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            if not any(t.start_minute <= minute < t.end_minute for t in self.times):
                return False
        if self.days_of_month is not None and not _day_of_month_in(local, self.days_of_month):
            return False
        if self.months is not None and not any(r.begin <= local.month <= r.end for r in self.months):
            return False
        if self.weekdays is not None:
            weekday = (local.weekday() + 1) % 7  # Python's Monday=0 to Go's Sunday=0
            if not any(r.begin <= weekday <= r.end for r in self.weekdays):
                return False
        return self.years is None or any(r.begin <= local.year <= r.end for r in self.years)


def _day_of_month_in(local: datetime, ranges: tuple[Range, ...]) -> bool:
    days = calendar.monthrange(local.year, local.month)[1]
    for r in ranges:
        # Negative days count back from the month's end: -1 is the last day.
        begin = days + r.begin + 1 if r.begin < 0 else r.begin
        end = days + r.end + 1 if r.end < 0 else r.end
        if begin > days:
            continue  # e.g. the 31st in a 30-day month
        begin = max(-days, min(begin, days))
        end = max(-days, min(end, days))
        if begin <= local.day <= end:
            return True
    return False


def in_any(intervals: tuple[TimeInterval, ...], when: float) -> bool:
    return any(interval.contains(when) for interval in intervals)


# --- parsing ----------------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        text = str(text)
    begin, sep, end = text.partition(":")
    return (begin, end) if sep else (text, text)


def parse_clock(text: str) -> int:
    found = _CLOCK.match(text) if isinstance(text, str) else None
    if not found:
        raise TimeIntervalError(f"invalid time of day {text!r}: use HH:MM between 00:00 and 24:00")
    hours, minutes = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), "0")
    return int(hours) * 60 + int(minutes)


def parse_times(item: Mapping[str, str]) -> TimeRange:
    if "start_time" not in item or "end_time" not in item:
        raise TimeIntervalError("a times entry needs both start_time and end_time")
    start, end = parse_clock(item["start_time"]), parse_clock(item["end_time"])
    if start >= end:
        raise TimeIntervalError("start_time must be before end_time")
    return TimeRange(start, end)


def _named(text: str, names: tuple[str, ...], what: str, base: int, numeric: bool) -> int:
    word = str(text).strip().lower()
    if word in names:
        return names.index(word) + base
    if numeric and _INT.match(word):
        number = int(word)
        if base <= number < base + len(names):
            return number
    raise TimeIntervalError(f"{text!r} is not a valid {what}")


def parse_weekdays(text: str) -> Range:
    begin, end = (_named(p, WEEKDAYS, "weekday", 0, False) for p in _split(text))
    if begin > end:
        raise TimeIntervalError(f"weekday range {text!r} ends before it starts")
    return Range(begin, end)


def parse_months(text: str) -> Range:
    begin, end = (_named(p, MONTHS, "month", 1, True) for p in _split(str(text)))
    if begin > end:
        raise TimeIntervalError(f"month range {text!r} ends before it starts")
    return Range(begin, end)


def parse_days_of_month(text: str) -> Range:
    parts = _split(str(text))
    if not all(_INT.match(p.strip()) for p in parts):
        raise TimeIntervalError(f"{text!r} is not a valid day of month")
    begin, end = (int(p) for p in parts)
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(f"day of month {day} out of range: use 1..31 or -31..-1")
    if (begin > 0) == (end > 0) and begin > end:
        raise TimeIntervalError(f"day of month range {text!r} ends before it starts")
    if begin < 0 < end:
        raise TimeIntervalError(f"day of month range {text!r} cannot start from the end and end forward")
    return Range(begin, end)


def parse_years(text: str) -> Range:
    parts = _split(str(text))
    if not all(_INT.match(p.strip()) and int(p) > 0 for p in parts):
        raise TimeIntervalError(f"{text!r} is not a valid year")
    begin, end = (int(p) for p in parts)
    if begin > end:
        raise TimeIntervalError(f"year range {text!r} ends before it starts")
    return Range(begin, end)


def check_location(name: str) -> str:
    if not isinstance(name, str) or not name or name == "Local":
        raise TimeIntervalError(f"invalid location {name!r}: use an IANA zone such as Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeIntervalError(f"unknown time zone location {name!r}") from None
    return name
