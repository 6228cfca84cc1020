"""The shared identities: group ids, the one fingerprint, slots and RFC 3339 times."""

from __future__ import annotations

import pytest

from alerting.core import fingerprint, group_id, group_name, parse_group_id, rfc3339, slot_at
from alerting.rules.evaluation import Alert, State
from alerting.rules.model import Group


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("rules/api.yml", "api"),
        ("rules/api.yml", "kubernetes:apps"),  # group names may contain ':'
        ("rules/api.yml", "a:b:c"),
        ("", "bare"),
    ],
)
def test_a_group_id_parses_back_into_its_file_and_name(file: str, name: str) -> None:
    gid = Group(name=name, file=file, interval=60.0, rules=()).id
    assert gid == group_id(file, name)
    assert parse_group_id(gid) == (file, name)
    assert group_name(gid) == name


def test_an_id_without_a_separator_is_a_bare_group_name() -> None:
    assert parse_group_id("orphan") == ("", "orphan")


def test_the_empty_label_set_has_fnv_1a_s_offset_basis() -> None:
    # FNV-1a 64 of nothing; that every label set matches Alertmanager's own fingerprint is shown by
    # tests/routing/test_alertmanager_differential.py against a real Alertmanager.
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({}) == fingerprint([])


def test_evaluation_and_routing_name_an_alert_alike() -> None:
    labels = (("alertname", "HighErrorRate"), ("instance", "web1:9100"), ("severity", "critical"))
    alert = Alert(labels=labels, annotations=(), state=State.FIRING, active_at=0.0, value=1.0)
    assert alert.fingerprint == fingerprint(dict(labels))
    assert len(alert.fingerprint) == 16 and int(alert.fingerprint, 16) >= 0


def test_label_order_does_not_change_the_fingerprint() -> None:
    assert fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    assert fingerprint({"a": "1", "b": "2"}) != fingerprint({"a": "12"})


@pytest.mark.parametrize(
    ("t", "interval", "offset", "slot"),
    [(130.0, 60.0, 5.0, 125.0), (65.0, 60.0, 5.0, 65.0), (64.999, 60.0, 5.0, 5.0), (0.0, 300.0, 0.0, 0.0)],
)
def test_slot_is_the_latest_grid_point_at_or_before_t(
    t: float, interval: float, offset: float, slot: float
) -> None:
    assert slot_at(t, interval, offset) == pytest.approx(slot)


@pytest.mark.parametrize(
    ("t", "trim", "text"),
    [
        (1767225600.0, False, "2026-01-01T00:00:00.000Z"),
        (1767225600.0, True, "2026-01-01T00:00:00Z"),
        (1767225600.25, True, "2026-01-01T00:00:00.250Z"),
        (1767225600.9996, False, "2026-01-01T00:00:01.000Z"),
    ],
)
def test_rfc3339_is_utc_with_milliseconds(t: float, trim: bool, text: str) -> None:
    assert rfc3339(t, trim_zero_millis=trim) == text
