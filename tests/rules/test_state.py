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
