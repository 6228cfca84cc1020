"""Alert state in Redis across upgrades of its encoding."""

from __future__ import annotations

import json

import pytest
import redis

from alerting.core import fingerprint
from alerting.rules.evaluation import Alert, State
from alerting.rules.state import SlotSuperseded, StateStore, alert_to_dict


def test_state_saved_under_other_fingerprints_loads_under_the_current_one(
    redis_client: redis.Redis, prefix: str
) -> None:
    # State written before the fingerprint was unified keeps working: alerts are keyed by their
    # labels' fingerprint when read, so a firing alert is found again and does not resolve.
    labels = (("alertname", "Up"), ("instance", "a"))
    alert = Alert(labels=labels, annotations=(), state=State.FIRING, active_at=10.0, value=1.0, fired_at=10.0)
    store = StateStore(redis_client, prefix)
    redis_client.hset(store.key("alerts", "f.yml:g"), "Up{}", json.dumps([alert_to_dict(alert)]))
    loaded = store.load_group("f.yml:g")["Up{}"]
    assert list(loaded) == [fingerprint(dict(labels))]
    assert loaded[fingerprint(dict(labels))].state is State.FIRING


def test_a_tick_whose_start_state_was_saved_over_meanwhile_saves_nothing(
    redis_client: redis.Redis, prefix: str
) -> None:
    """Two ticks of one group overlapping: both read last slot 10; the first to save wins, the
    other saves nothing, so no transition is made twice."""
    store = StateStore(redis_client, prefix)
    store.save_group("g", {}, {}, {"last_slot": 10.0})
    store.save_group("g", {"r": {}}, {}, {"last_slot": 11.0}, after_slot=10.0)

    with pytest.raises(SlotSuperseded):
        store.save_group("g", {"r": {}}, {}, {"last_slot": 12.0}, after_slot=10.0)

    assert store.load_health("g")[1] == {"last_slot": 11.0}
    store.save_group("g2", {}, {}, {"last_slot": 1.0}, after_slot=None)  # a first tick
    assert store.load_health("g2")[1] == {"last_slot": 1.0}


def _alert(name: str, value: float, **times: float) -> Alert:
    return Alert(
        labels=(("alertname", name), ("instance", "a")),
        annotations=(("summary", f"{name} is {value}"),),
        state=State.FIRING,
        active_at=times.get("active_at", 10.0),
        value=value,
        fired_at=10.0,
        last_eval=times.get("last_eval", 20.0),
    )


def _fields(rules: dict[str, dict[str, Alert]]) -> list[tuple[str, str, list[tuple[str, object]]]]:
    # Every field with its type (1 and 1.0 are not the same value here), NaN as its text, in order.
    return [
        (rule, fp, [(k, f"{type(v).__name__}:{v!r}") for k, v in vars(alert).items() if k != "fingerprint"])
        for rule, alerts in rules.items()
        for fp, alert in alerts.items()
    ]


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (1.5, "float:1.5"),
        (-0.0, "float:-0.0"),
        (float("inf"), "float:inf"),
        (float("nan"), "float:nan"),
        (1, "float:1.0"),
    ],
    ids=["float", "negative-zero", "inf", "nan", "int"],
)
def test_saved_alerts_load_back_field_by_field_under_their_fingerprints(
    redis_client: redis.Redis, prefix: str, value: float, read: str
) -> None:
    store = StateStore(redis_client, prefix)
    saved = [_alert("R", value), _alert("S", 2.0, active_at=7)]
    store.save_group("f.yml:g", {"R{}": {a.fingerprint: a for a in saved}}, {}, {"last_slot": 20.0})
    loaded = store.load_group("f.yml:g")
    assert list(loaded) == ["R{}"] and list(loaded["R{}"]) == [fingerprint(a.labels) for a in saved]
    got = _fields(loaded)
    want = _fields({"R{}": {a.fingerprint: a for a in saved}})
    assert got[0][2][4] == ("value", read)
    assert [fields[:4] + fields[5:] for _, _, fields in got] == [
        fields[:4] + fields[5:] for _, _, fields in want
    ]
    for alert in loaded["R{}"].values():
        # Built as the dataclass builds it: equal to the same fields passed to Alert.
        assert alert == Alert(**{k: v for k, v in vars(alert).items() if k != "fingerprint"})
