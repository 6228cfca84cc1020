"""Time intervals contain an instant exactly as Alertmanager's do, in the interval's own time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from alerting.routing.timeintervals import (
    Range,
    TimeInterval,
    TimeIntervalError,
    TimeRange,
    check_location,
    parse_clock,
    parse_days_of_month,
    parse_months,
    parse_times,
    parse_weekdays,
    parse_years,
)

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: ZoneInfo = UTC) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


def business_hours(location: str | None = None) -> TimeInterval:
    return TimeInterval(
        times=(parse_times({"start_time": "09:00", "end_time": "17:00"}),),
        weekdays=(parse_weekdays("monday:friday"),),
        location=location,
    )


@pytest.mark.parametrize(
    ("interval", "when", "inside"),
    [
        (business_hours(), ts(2024, 5, 6, 9, 0), True),  # Monday 09:00, start inclusive
        (business_hours(), ts(2024, 5, 6, 16, 59), True),
        (business_hours(), ts(2024, 5, 6, 17, 0), False),  # end exclusive
        (business_hours(), ts(2024, 5, 4, 12, 0), False),  # Saturday
        (business_hours(), ts(2024, 5, 5, 12, 0), False),  # Sunday
        (TimeInterval(weekdays=(parse_weekdays("sunday"),)), ts(2024, 5, 5, 12), True),
        (TimeInterval(days_of_month=(parse_days_of_month("-1"),)), ts(2024, 2, 29, 12), True),  # leap day
        (TimeInterval(days_of_month=(parse_days_of_month("-1"),)), ts(2023, 2, 28, 12), True),
        (TimeInterval(days_of_month=(parse_days_of_month("-1"),)), ts(2024, 2, 28, 12), False),
        (TimeInterval(days_of_month=(parse_days_of_month("-3:-1"),)), ts(2024, 4, 28, 0), True),
        (TimeInterval(days_of_month=(parse_days_of_month("-3:-1"),)), ts(2024, 4, 27, 23, 59), False),
        (TimeInterval(days_of_month=(parse_days_of_month("1:-1"),)), ts(2024, 4, 30, 1), True),
        (TimeInterval(days_of_month=(parse_days_of_month("31"),)), ts(2024, 4, 30, 1), False),  # no 31st
        (TimeInterval(days_of_month=(parse_days_of_month("25:31"),)), ts(2024, 2, 29, 1), True),  # clamped
        (TimeInterval(months=(parse_months("january:march"),)), ts(2024, 3, 31, 23, 59), True),
        (TimeInterval(months=(parse_months("4"),)), ts(2024, 3, 31, 23, 59), False),
        (TimeInterval(years=(parse_years("2023:2024"),)), ts(2024, 12, 31, 23, 59), True),
        (TimeInterval(years=(parse_years("2023:2024"),)), ts(2025, 1, 1), False),
        (TimeInterval(), ts(2025, 1, 1), True),  # no fields: always
        (
            TimeInterval(times=(parse_times({"start_time": "23:00", "end_time": "24:00"}),)),
            ts(2024, 1, 1, 23, 59),
            True,
        ),
    ],
)
def test_interval_contains(interval: TimeInterval, when: float, inside: bool) -> None:
    assert interval.contains(when) is inside


def test_business_hours_follow_daylight_saving_in_the_intervals_location() -> None:
    # New York switches from EST (UTC-5) to EDT (UTC-4) on Sunday 2024-03-10 at 02:00 local.
    hours = business_hours("America/New_York")
    friday_before = ts(2024, 3, 8, 9, 0, NY)
    monday_after = ts(2024, 3, 11, 9, 0, NY)
    assert hours.contains(friday_before) and hours.contains(monday_after)
    # 09:00 local is 14:00 UTC before the change and 13:00 UTC after it.
    assert ts(2024, 3, 8, 14, 0) == friday_before
    assert ts(2024, 3, 11, 13, 0) == monday_after
    assert not hours.contains(ts(2024, 3, 11, 12, 59))  # 08:59 EDT
    assert hours.contains(ts(2024, 3, 8, 21, 59))  # 16:59 EST
    assert not hours.contains(ts(2024, 3, 11, 21, 0))  # 17:00 EDT
    # The same UTC instant is inside in UTC and outside in New York.
    assert business_hours().contains(ts(2024, 3, 11, 16, 30))
    assert not business_hours("America/New_York").contains(ts(2024, 3, 11, 23, 30))


def test_night_window_across_the_fall_back_hour() -> None:
    # On 2024-11-03 New York repeats 01:00-02:00; both occurrences are inside "01:00-02:00".
    night = TimeInterval(
        times=(parse_times({"start_time": "01:00", "end_time": "02:00"}),), location="America/New_York"
    )
    first = ts(2024, 11, 3, 5, 30)  # 01:30 EDT
    second = ts(2024, 11, 3, 6, 30)  # 01:30 EST, an hour later
    assert night.contains(first) and night.contains(second)
    assert not night.contains(ts(2024, 11, 3, 7, 30))  # 02:30 EST


@pytest.mark.parametrize(
    ("parser", "text", "expected"),
    [
        (parse_clock, "00:00", 0),
        (parse_clock, "24:00", 1440),
        (parse_clock, "13:37", 817),
        (parse_weekdays, "Monday", Range(1, 1)),
        (parse_weekdays, "monday:friday", Range(1, 5)),
        (parse_months, "may", Range(5, 5)),
        (parse_months, "1:3", Range(1, 3)),
        (parse_months, "january:12", Range(1, 12)),
        (parse_days_of_month, "1:5", Range(1, 5)),
        (parse_days_of_month, "-7:-1", Range(-7, -1)),
        (parse_days_of_month, "1:-1", Range(1, -1)),
        (parse_years, "2020:2022", Range(2020, 2022)),
    ],
)
def test_fields_parse(parser: object, text: str, expected: object) -> None:
    assert parser(text) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_clock, "24:01"),
        (parse_clock, "9:00"),
        (parse_clock, "25:00"),
        (parse_weekdays, "friday:monday"),
        (parse_weekdays, "someday"),
        (parse_months, "13"),
        (parse_months, "march:january"),
        (parse_days_of_month, "0"),
        (parse_days_of_month, "32"),
        (parse_days_of_month, "5:1"),
        (parse_days_of_month, "-1:5"),
        (parse_days_of_month, "-1:-3"),
        (parse_years, "2022:2020"),
        (parse_years, "-5"),
        (check_location, "Mars/Olympus"),
        (check_location, "Local"),
    ],
)
def test_bad_fields_are_rejected(parser: object, text: str) -> None:
    with pytest.raises(TimeIntervalError):
        parser(text)  # type: ignore[operator]


def test_times_need_start_before_end() -> None:
    with pytest.raises(TimeIntervalError):
        parse_times({"start_time": "10:00", "end_time": "10:00"})
    assert parse_times({"start_time": "10:00", "end_time": "10:01"}) == TimeRange(600, 601)
