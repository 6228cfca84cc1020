"""Alert state in Redis across upgrades of its encoding."""

from __future__ import annotations

import json

import redis

from alerting.core import fingerprint
from alerting.rules.evaluation import Alert, State
from alerting.rules.state import StateStore, alert_to_dict


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
