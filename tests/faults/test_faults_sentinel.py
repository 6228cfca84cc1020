"""Redis behind Sentinel (one primary, one replica, three sentinels), state store and broker alike:
``kill -9`` of the primary at the moments that matter, and what a receiver sees afterwards.

One Sentinel set-up serves the module; each test heals it (the killed node back as a replica) so
the next one starts from a primary with a replica again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultkit import FakePrometheus, alert_rule, webhook_env, write_rules
from tests.support.sentinel import SentinelSet
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def redis_ha() -> Iterator[SentinelSet]:
    with SentinelSet() as sentinels:
        yield sentinels


def ha_env(tmp_path: Path, hook: WebhookRecorder, redis_ha: SentinelSet, **extra: str) -> dict[str, str]:
    return {
        **webhook_env(tmp_path, hook, redis_url=redis_ha.url(0), **extra),  # type: ignore[arg-type]
        "CELERY_BROKER_URL": redis_ha.url(1),
    }


def one_rule(tmp_path: Path, name: str, **extra: object) -> Path:
    return write_rules(
        tmp_path / "rules" / f"{name}.yml",
        [{"name": name, "interval": "1s", "rules": [alert_rule(name, "probe_metric > 0", **extra)]}],
    )


def assert_alive_and_evaluating(worker: Worker, name: str) -> None:
    """The worker (and its broker connection) came through: still running, still evaluating."""
    worker.wait_for_evaluations(3, timeout=60, group=name)
    assert worker.process is not None and worker.process.poll() is None
    assert not [line for line in worker.lines if "Unrecoverable error" in line]


def test_primary_killed_while_an_alert_is_pending_fires_it_on_time_once(
    tmp_path: Path, prefix: str, redis_ha: SentinelSet
) -> None:
    rules = one_rule(tmp_path, "PendingFailover", **{"for": "5s"})
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = ha_env(tmp_path, hook, redis_ha, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            prom.firing = True
            pending = worker.wait_for("alert.pending", alertname="PendingFailover")[0]
            killed = redis_ha.kill_primary()
            hook.wait_for("PendingFailover", timeout=90)
            assert_alive_and_evaluating(worker, "PendingFailover")
            prom.firing = False
            hook.wait_for("PendingFailover", "resolved", timeout=90)
            hook.settle()
            firing = worker.events("alert.firing", alertname="PendingFailover")
        redis_ha.heal(killed)

    assert hook.statuses("PendingFailover") == ["firing", "resolved"]
    # The `for` clock ran on through the failover: the alert is the one that went pending first.
    assert len(firing) == 1 and firing[0]["active_at"] == pending["active_at"]
