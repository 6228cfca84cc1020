"""Silence states and validation; inhibition as Alertmanager applies it."""

from __future__ import annotations

import pytest

from alerting.routing.inhibit import InhibitRule, inhibiting_source
from alerting.routing.matchers import parse_matchers
from alerting.routing.silences import (
    ACTIVE,
    EXPIRED,
    PENDING,
    Silence,
    SilenceError,
    expire,
    new_silence,
)

NOW = 1_000_000.0


def silence(matchers: str, start: float = NOW - 10, end: float = NOW + 3600) -> Silence:
    return new_silence(parse_matchers(matchers), start, end, "ops", "maintenance", NOW - 20)


@pytest.mark.parametrize(
    ("start", "end", "at", "state"),
    [
        (NOW + 10, NOW + 20, NOW, PENDING),
        (NOW, NOW + 20, NOW, ACTIVE),  # starts inclusive
        (NOW - 10, NOW + 20, NOW, ACTIVE),
        (NOW - 10, NOW, NOW, EXPIRED),  # ends exclusive
        (NOW - 10, NOW - 5, NOW, EXPIRED),
    ],
)
def test_silence_state(start: float, end: float, at: float, state: str) -> None:
    s = Silence("id", tuple(parse_matchers("a=b")), start, end, "me", "why", start)
    assert s.state(at) == state


def test_active_silence_mutes_matching_alerts_only() -> None:
    s = silence('alertname="DiskFull", instance=~"db.*"')
    assert s.mutes({"alertname": "DiskFull", "instance": "db1"}, NOW)
    assert not s.mutes({"alertname": "DiskFull", "instance": "web1"}, NOW)
    assert not s.mutes({"alertname": "DiskFull", "instance": "db1"}, NOW + 3600)  # ended: notifies again


@pytest.mark.parametrize(
    ("matchers", "start", "end", "comment", "message"),
    [
        ("", NOW, NOW + 60, "c", "at least one matcher"),
        ('a=""', NOW, NOW + 60, "c", "must not match the empty string"),
        ('a=~".*", b!="x"', NOW, NOW + 60, "c", "must not match the empty string"),
        ("a=b", NOW + 120, NOW + 60, "c", "end after it starts"),
        ("a=b", NOW - 60, NOW - 30, "c", "end in the future"),
        ("a=b", NOW, NOW + 60, "  ", "comment"),
    ],
)
def test_invalid_silences_are_rejected(
    matchers: str, start: float, end: float, comment: str, message: str
) -> None:
    with pytest.raises(SilenceError, match=message):
        new_silence(parse_matchers(matchers), start, end, "ops", comment, NOW)


def test_silence_starting_in_the_past_starts_now() -> None:
    s = new_silence(parse_matchers("a=b"), NOW - 600, NOW + 60, "ops", "c", NOW)
    assert s.starts_at == NOW and s.state(NOW) == ACTIVE


def test_expiring_ends_an_active_silence_and_a_pending_one() -> None:
    active = silence("a=b")
    assert expire(active, NOW).state(NOW) == EXPIRED
    pending = silence("a=b", start=NOW + 100, end=NOW + 200)
    done = expire(pending, NOW)
    assert done.state(NOW) == EXPIRED and done.starts_at == done.ends_at == NOW
    with pytest.raises(SilenceError, match="already expired"):
        expire(done, NOW + 1)


def test_silence_round_trips_through_its_dict() -> None:
    s = silence('a=~"x|y", b!="c"')
    assert Silence.from_dict(s.to_dict()) == s


CLASSIC = InhibitRule(
    tuple(parse_matchers('severity="critical"')),
    tuple(parse_matchers('severity="warning"')),
    ("alertname", "instance"),
)


@pytest.mark.parametrize(
    ("rules", "target", "sources", "inhibited"),
    [
        (
            [CLASSIC],
            {"alertname": "Down", "instance": "a", "severity": "warning"},
            [{"alertname": "Down", "instance": "a", "severity": "critical"}],
            True,
        ),
        (
            [CLASSIC],
            {"alertname": "Down", "instance": "b", "severity": "warning"},
            [{"alertname": "Down", "instance": "a", "severity": "critical"}],
            False,
        ),
        (
            [CLASSIC],
            {"alertname": "Down", "instance": "a", "severity": "critical"},
            [{"alertname": "Down", "instance": "a", "severity": "critical"}],
            False,
        ),
        ([CLASSIC], {"alertname": "Down", "severity": "warning"}, [], False),
        (  # labels missing on both sides count as equal
            [CLASSIC],
            {"alertname": "Down", "severity": "warning"},
            [{"alertname": "Down", "severity": "critical"}],
            True,
        ),
        (  # no equal labels: any source mutes every target
            [InhibitRule(tuple(parse_matchers("a=src")), tuple(parse_matchers("a=~tgt.*")), ())],
            {"a": "tgt1"},
            [{"a": "src", "other": "x"}],
            True,
        ),
        (  # an alert matching both sides is not muted by another that matches both sides
            [InhibitRule(tuple(parse_matchers('sev=~"x|y"')), tuple(parse_matchers('sev=~"x|y"')), ())],
            {"sev": "x", "n": "1"},
            [{"sev": "y", "n": "2"}],
            False,
        ),
        (  # ... and by a source-only alert even when a two-sided one with the same labels came first
            [InhibitRule(tuple(parse_matchers('sev=~"x|y|z"')), tuple(parse_matchers('sev=~"x|y"')), ("n",))],
            {"sev": "x", "n": "1"},
            [{"sev": "y", "n": "1"}, {"sev": "z", "n": "1"}],
            True,
        ),
        (  # ... but is muted by a source that is only a source
            [InhibitRule(tuple(parse_matchers('sev=~"x|y"')), tuple(parse_matchers('sev="x"')), ())],
            {"sev": "x", "n": "1"},
            [{"sev": "y", "n": "2"}],
            True,
        ),
    ],
)
def test_inhibition(
    rules: list[InhibitRule], target: dict[str, str], sources: list[dict[str, str]], inhibited: bool
) -> None:
    assert (inhibiting_source(rules, target, sources) is not None) is inhibited
