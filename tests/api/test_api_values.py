"""How posted alerts are read and how rule values are written: pure functions, no server."""

from __future__ import annotations

import json

import pytest

from alerting.api.postalerts import Posted, Refused, merge, parse_alerts
from alerting.api.prometheus import go_float, seconds
from alerting.core import rfc3339
from alerting.notify.base import NotifyAlert

NOW = 1_800_000_000.0
TIMEOUT = 300.0


@pytest.mark.parametrize(
    ("alert", "starts", "ends", "status"),
    [
        ({}, NOW, NOW + TIMEOUT, "firing"),  # no times: now, and resolve_timeout from now
        ({"endsAt": rfc3339(NOW + 60)}, NOW + 60, NOW + 60, "firing"),  # no start: the end, as Alertmanager
        ({"startsAt": rfc3339(NOW - 60)}, NOW - 60, NOW + TIMEOUT, "firing"),
        ({"startsAt": rfc3339(NOW - 60), "endsAt": rfc3339(NOW - 1)}, NOW - 60, NOW - 1, "resolved"),
        (
            {"startsAt": "0001-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z"},
            NOW,
            NOW + TIMEOUT,
            "firing",
        ),
        ({"startsAt": "2027-01-15T08:00:00"}, NOW, NOW + TIMEOUT, "firing"),  # no zone: UTC
        ({"startsAt": "2027-01-15T10:00:00+02:00"}, NOW, NOW + TIMEOUT, "firing"),
    ],
)
def test_times_are_filled_in_as_alertmanager_fills_them(
    alert: dict[str, str], starts: float, ends: float, status: str
) -> None:
    body = {"labels": {"alertname": "A"}, **alert}
    received = parse_alerts(json.dumps([body]).encode(), NOW, TIMEOUT)
    [parsed] = received.alerts
    assert (parsed.starts_at, parsed.ends_at, parsed.status) == (starts, ends, status)


def test_empty_label_values_are_dropped() -> None:
    [parsed] = parse_alerts(b'[{"labels": {"alertname": "A", "team": ""}}]', NOW, TIMEOUT).alerts
    assert parsed.labels == {"alertname": "A"}


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (b"[{}]", 422, {"code": 602, "message": "0.labels in body is required"}),
        (b"", 422, {"code": 602, "message": "alerts in body is required"}),
        (
            b'[{"labels": {"a": "b"}, "generatorURL": "x"}]',
            422,
            {"code": 601, "message": '0.generatorURL in body must be of type uri: "x"'},
        ),
    ],
)
def test_malformed_bodies_are_refused_whole(body: bytes, status: int, answer: object) -> None:
    with pytest.raises(Refused) as refused:
        parse_alerts(body, NOW, TIMEOUT)
    assert (refused.value.status, refused.value.body) == (status, answer)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1e+00"), (2.5, "2.5e+00"), (0.1, "1e-01"), (123456.789, "1.23456789e+05"), (-3.0, "-3e+00")]
    + [(float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (0.0, "0e+00")],
)
def test_values_are_written_as_prometheus_writes_them(value: float, text: str) -> None:
    assert go_float(value) == text


def test_durations_are_written_as_go_writes_a_float() -> None:
    assert [seconds(0.0), seconds(3600.0), seconds(0.25)] == [0, 3600, 0.25]
    assert [type(seconds(0.0)), type(seconds(0.25))] == [int, float]


def _posted(starts: float, ends: float, timeout: bool = False) -> Posted:
    status = "firing" if ends > NOW else "resolved"
    return Posted(NotifyAlert(status, {"alertname": "A"}, {}, starts, ends), timeout)


@pytest.mark.parametrize(
    ("previous", "new", "merged"),
    [
        # overlapping: the earliest start; a stated later end wins, a guessed one does not
        ((NOW - 600, NOW + 600, False), (NOW - 60, NOW + 120, False), (NOW - 600, NOW + 600, "firing")),
        ((NOW - 600, NOW + 600, True), (NOW - 60, NOW + 120, False), (NOW - 600, NOW + 120, "firing")),
        ((NOW - 600, NOW + 100, False), (NOW - 60, NOW + 300, True), (NOW - 600, NOW + 300, "firing")),
        # resolved by the new report: the later of two resolutions
        ((NOW - 600, NOW - 5, False), (NOW - 600, NOW - 20, False), (NOW - 600, NOW - 5, "resolved")),
        ((NOW - 600, NOW + 600, False), (NOW - 300, NOW - 10, False), (NOW - 600, NOW - 10, "resolved")),
        # not overlapping: replaced
        ((NOW + 1000, NOW + 1000, False), (NOW - 30, NOW + 300, True), (NOW - 30, NOW + 300, "firing")),
        (None, (NOW - 30, NOW + 300, True), (NOW - 30, NOW + 300, "firing")),
    ],
)
def test_an_alert_sent_again_merges_as_in_alertmanager(
    previous: tuple[float, float, bool] | None,
    new: tuple[float, float, bool],
    merged: tuple[float, float, str],
) -> None:
    out = merge(previous, _posted(*new), NOW).alert
    assert (out.starts_at, out.ends_at, out.status) == merged
