"""Alerts as a group stores them, read back as the stages and receivers see them."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.notify.base import Notification, NotifyAlert, _common
from alerting.notify.pipeline import _alert_at, _alert_to_json, _loads, _loads_all

NOW = 1_700_000_000.0


def reported(ends_at: float | None, value: float | None = 1.5) -> NotifyAlert:
    return NotifyAlert(
        status="firing",
        labels={"alertname": "Down", "instance": "a"},
        annotations={"summary": "a is down"},
        starts_at=NOW - 600,
        ends_at=ends_at,
        generator_url="http://prometheus.example/graph",
        fingerprint="00000000000000aa",
        value=value,
    )


@pytest.mark.parametrize(
    ("ends_at", "status", "shown_end"),
    [
        (None, "firing", None),
        (NOW + 60, "firing", None),
        (NOW, "resolved", NOW),
        (NOW - 5, "resolved", NOW - 5),
    ],
)
def test_a_stored_alert_reads_back_as_the_constructor_builds_it(
    ends_at: float | None, status: str, shown_end: float | None
) -> None:
    alert = reported(ends_at)
    back = _alert_at(_loads(_alert_to_json(alert, alert.fingerprint, ends_at, NOW, "ev-1")), NOW)
    expected = replace(alert, status=status, ends_at=shown_end)
    assert back == expected and repr(back) == repr(expected)
    with pytest.raises(AttributeError):
        back.status = "firing"  # type: ignore[misc]  # as frozen as the constructor's


def test_a_value_json_cannot_hold_natively_reads_back() -> None:
    alert = reported(None, value=math.inf)
    back = _alert_at(_loads(_alert_to_json(alert, alert.fingerprint, None, NOW, None)), NOW)
    assert back.value == math.inf and back.status == "firing"


@given(st.lists(st.sampled_from([None, 0.5, -2.0, math.nan, math.inf]), max_size=6))
def test_a_groups_alerts_decoded_together_read_as_each_decoded_alone(values: list[float | None]) -> None:
    raws = [
        _alert_to_json(reported(None, value=v), f"{i:016x}", None, NOW, None) for i, v in enumerate(values)
    ]
    together = [_alert_at(data, NOW) for data in _loads_all(raws)]
    alone = [_alert_at(_loads(raw), NOW) for raw in raws]
    assert repr(together) == repr(alone)  # repr: NaN is not equal to itself


def test_a_damaged_stored_value_does_not_shift_the_others() -> None:
    """Two objects in one stored value would shift every later alert by one when decoded joined."""
    raws = [b'{"n": 1}', b'{"n": 2},{"n": 3}', b'{"n": 4}']
    with pytest.raises(ValueError):
        _loads_all(raws)  # decoded one at a time, the damaged one says so
    assert _loads_all([b'{"n": 1}', '{"n": 2}']) == [{"n": 1}, {"n": 2}]  # text as well as bytes


def test_a_notifications_common_labels_are_the_pairs_every_alert_has_alike() -> None:
    def with_labels(**labels: str) -> NotifyAlert:
        return replace(
            reported(None), labels=labels, annotations={"runbook_url": "http://r"} if "a" in labels else {}
        )

    views = Notification(
        receiver="team",
        group_key="{}",
        group_labels={},
        alerts=(
            with_labels(job="api", env="prod", a="1"),
            with_labels(job="api", env="prod", a="2"),
            with_labels(job="api", env="dev"),
            with_labels(job="api", env="prod", extra="x"),
        ),
    )
    assert views.common_labels == {"job": "api"}
    assert views.common_annotations == {}
    assert views.annotation_names == {"runbook_url"}
    one = Notification(
        receiver="team", group_key="{}", group_labels={}, alerts=(with_labels(job="api", a="1"),)
    )
    assert one.common_labels == {"job": "api", "a": "1"} and one.common_annotations == {
        "runbook_url": "http://r"
    }
    assert Notification(receiver="team", group_key="{}", group_labels={}, alerts=()).common_labels == {}


_names = st.sampled_from(["job", "env", "instance", "severity", "team"])
_values = st.sampled_from(["", "a", "b", "api"])


@given(st.lists(st.dictionaries(_names, _values), max_size=6))
def test_common_pairs_are_those_every_map_has_alike_in_the_first_maps_order(
    maps: list[dict[str, str]],
) -> None:
    expected = {k: v for k, v in maps[0].items() if all(k in m and m[k] == v for m in maps)} if maps else {}
    found = _common(maps)
    assert found == expected and list(found) == list(expected)
