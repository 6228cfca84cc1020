"""The dead man's switch as shipped: the always-firing Watchdog reaches the heartbeat URL at every
repeat interval, through the shipped alerting.yml and the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from alerting.notify.base import NotifyAlert
from alerting.notify.pipeline import deliver, flush_due, ingest
from alerting.rules import load_paths
from alerting.worker.compose import load_routing_config
from tests.support.httpfake import FakeHTTPServer, Reply, Request

ROOT = Path(__file__).resolve().parents[2]
T0 = 1767225600.0


def test_shipped_watchdog_pings_the_heartbeat_url_every_repeat_interval(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, prefix: str
) -> None:
    (watchdog,) = [r for g in load_paths([ROOT / "rules" / "watchdog.yml"]).groups for r in g.rules]
    hits: list[Request] = []

    def record(request: Request) -> Reply:
        hits.append(request)
        return Reply(200, "ok")

    with FakeHTTPServer(record) as heartbeat:
        monkeypatch.setenv("HEARTBEAT_URL", f"{heartbeat.url}/ping")
        config = load_routing_config(ROOT / "alerting.yml")
        alert = NotifyAlert(
            "firing",
            {"alertname": watchdog.name, **dict(watchdog.labels)},
            dict(watchdog.annotations),
            starts_at=T0,
            fingerprint="w",
        )
        # An hour of 1-minute evaluation ticks, each handing the firing Watchdog to the pipeline.
        for minute in range(60):
            now = T0 + 60 * minute
            ingest(redis_client, prefix, config, [alert], now)
            for job in flush_due(redis_client, prefix, config, now + 1):
                assert job.receiver == "heartbeat"
                deliver(redis_client, prefix, config, job, now + 1)
    # Once at the start, then at the first group_interval flush after repeat_interval has strictly
    # passed (Alertmanager's rule), i.e. every 6 minutes with 1m/5m: minutes 0, 6, ..., 54.
    assert len(hits) == 10
    assert all(h.path == "/ping" and h.json()["status"] == "firing" for h in hits)
