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
    "value",
    [1.5, -0.0, float("inf"), float("-inf"), float("nan"), 1],
    ids=["float", "negative-zero", "inf", "minus-inf", "nan", "int"],
)
def test_alerts_a_store_saved_load_back_as_any_other_reader_of_redis_reads_them(
    redis_client: redis.Redis, prefix: str, value: float
) -> None:
    store = StateStore(redis_client, prefix)
    alerts = {"R{}": {a.fingerprint: a for a in (_alert("R", value), _alert("S", 2.0, active_at=7))}}
    store.save_group("f.yml:g", alerts, {}, {"last_slot": 20.0}, keep_rules=["R{}"])
    loaded = store.load_group("f.yml:g")
    fresh = StateStore(redis_client, prefix).load_group("f.yml:g")
    assert _fields(loaded) == _fields(fresh)
    assert [a.fingerprint for a in loaded["R{}"].values()] == list(loaded["R{}"])
    loaded["R{}"].clear()  # what a caller does with what it loaded stays with it
    assert _fields(store.load_group("f.yml:g")) == _fields(fresh)


def test_alerts_another_worker_saved_since_are_the_ones_loaded(
    redis_client: redis.Redis, prefix: str
) -> None:
    mine, theirs = StateStore(redis_client, prefix), StateStore(redis_client, prefix)
    first = _alert("R", 1.0)
    mine.save_group("g", {"R{}": {first.fingerprint: first}}, {}, {"last_slot": 20.0})
    later = _alert("R", 3.0, last_eval=30.0)
    theirs.save_group("g", {"R{}": {later.fingerprint: later}}, {}, {"last_slot": 30.0})
    assert [(a.value, a.last_eval) for a in mine.load_group("g")["R{}"].values()] == [(3.0, 30.0)]
    mine.delete_group("g")
    assert mine.load_group("g") == {}
