"""Redis behind Sentinel (one primary, one replica, three sentinels), state store and broker alike:
``kill -9`` of the primary at the moments that matter, and what a receiver sees afterwards.

One Sentinel set-up serves the module; before each test it is healed (a killed node back as a
replica), so every test starts from a primary with a replica.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from alerting import redisconn
from alerting.api.health import Readiness
from alerting.notify.store import NotifyStore
from alerting.ops import metrics
from alerting.routing.matchers import parse_matcher
from alerting.routing.silences import new_silence
from tests.support.faultkit import FakePrometheus, alert_rule, webhook_env, write_rules
from tests.support.httpfake import Reply, Request
from tests.support.net import wait_until
from tests.support.sentinel import SentinelSet
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, alerting

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    with SentinelSet() as started:
        yield started


@pytest.fixture
def redis_ha(sentinels: SentinelSet) -> SentinelSet:
    """The module's set-up, healed first if an earlier test killed its primary."""
    sentinels.heal()
    return sentinels


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


@contextmanager
def told_on_failure(worker: Worker) -> Iterator[None]:
    """On a failure inside, print what the worker warned about and did, to say why."""
    try:
        yield
    except BaseException:
        for event in worker.events():
            if event.get("level") in ("WARN", "ERROR", "CRITICAL") or event.get("event", "").startswith(
                ("notify.", "alert.")
            ):
                print(event.get("ts"), event.get("level"), event.get("event"), str(event.get("msg"))[:300])
        raise


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
            redis_ha.kill_primary()
            hook.wait_for("PendingFailover", timeout=90)
            assert_alive_and_evaluating(worker, "PendingFailover")
            prom.firing = False
            hook.wait_for("PendingFailover", "resolved", timeout=90)
            hook.settle()
            firing = worker.events("alert.firing", alertname="PendingFailover")

    assert hook.statuses("PendingFailover") == ["firing", "resolved"]
    # The `for` clock ran on through the failover: the alert is the one that went pending first.
    assert len(firing) == 1 and firing[0]["active_at"] == pending["active_at"]


def test_primary_killed_right_after_a_notification_was_sent_does_not_send_it_again(
    tmp_path: Path, prefix: str, redis_ha: SentinelSet
) -> None:
    rules = one_rule(tmp_path, "SentFailover")
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = ha_env(tmp_path, hook, redis_ha, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            prom.firing = True
            worker.wait_for("notify.sent", timeout=90)
            redis_ha.kill_primary()
            assert_alive_and_evaluating(worker, "SentFailover")
            prom.firing = False
            hook.wait_for("SentFailover", "resolved", timeout=90)
            hook.settle()

    # The notification log entry was on the replica before "sent" was logged: nothing repeats.
    assert hook.statuses("SentFailover") == ["firing", "resolved"]


def test_broker_failover_with_a_late_acked_task_in_flight_leaves_the_worker_running(
    tmp_path: Path, prefix: str, redis_ha: SentinelSet
) -> None:
    """The send task is running (the receiver holds the request) when the primary dies; its late
    ack meets a broker connection that is gone. The worker reconnects instead of stopping."""
    rules = one_rule(tmp_path, "InFlight")
    holding = threading.Event()
    release = threading.Event()

    def hold_first(_: Request) -> Reply:
        if not holding.is_set():
            holding.set()
            release.wait(30)
        return Reply(200, "ok")

    with FakePrometheus() as prom, WebhookRecorder() as hook:
        hook.answer = hold_first
        env = ha_env(tmp_path, hook, redis_ha, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            prom.firing = True
            assert holding.wait(90), "no notification reached the receiver"
            redis_ha.kill_primary()
            worker.wait_for("celery.worker.consumer.consumer", timeout=30)  # it saw the broker go
            release.set()
            assert_alive_and_evaluating(worker, "InFlight")
            prom.firing = False
            with told_on_failure(worker):
                hook.wait_for("InFlight", "resolved", timeout=90)
            hook.settle()

    assert hook.statuses("InFlight") == ["firing", "resolved"]


def test_primary_killed_while_silences_are_written_loses_none_that_were_acknowledged(
    redis_ha: SentinelSet, prefix: str
) -> None:
    """Every silence whose write returned is there after the failover; a write the failover cut
    off raised (the caller knows, and tries again)."""
    store = NotifyStore(redisconn.connect(redis_ha.url(0), socket_timeout=5), prefix)
    written: list[str] = []
    refused = 0
    stop = threading.Event()

    def write() -> None:
        nonlocal refused
        n = 0
        while not stop.is_set():
            now = time.time()
            silence = new_silence(
                [parse_matcher(f"alertname=Deploy{n}")], now, now + 3600, "ops", "deploying", now
            )
            try:
                store.put_silence(silence)
                written.append(silence.id)
            except redis.RedisError:
                refused += 1
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_until(lambda: len(written) >= 200, timeout=30, what="silences written before the fault")
        redis_ha.kill_primary()
        before = len(written)
        wait_until(lambda: len(written) >= before + 200, timeout=60, what="writes after the failover")
    finally:
        stop.set()
        writer.join()
    kept = {s.id for s in store.silences(time.time())}

    assert set(written) <= kept


def test_status_readyz_and_metrics_name_the_primary_before_and_after_a_failover(
    tmp_path: Path, redis_ha: SentinelSet, prefix: str
) -> None:
    env = {
        "ALERTING_REDIS_URL": redis_ha.url(0),
        "CELERY_BROKER_URL": redis_ha.url(1),
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_RULES": str(tmp_path),
        "ALERTING_CONFIG": str(tmp_path / "alerting.yml"),
        "ALERTING_HISTORY_URL": f"sqlite:///{tmp_path / 'history.db'}",
    }
    readiness = Readiness(redis_url=redis_ha.url(0), broker_url=redis_ha.url(1), prefix=prefix)

    def shown() -> tuple[tuple[str, str, str, float], str]:
        checks = readiness.run()["checks"]
        status = json.loads(alerting("status", "--format", "json", env=env).stdout)
        values = metrics.snapshot(metrics.registry([metrics.PrimaryCollector(readiness.primaries)]))
        (info,) = [
            k for k in values if k.startswith('alerting_redis_primary_info{address="') and "state" in k
        ]
        return (
            checks["redis"]["primary"],
            checks["broker"]["primary"],
            status["redis_primary"]["address"],
            values['alerting_redis_connected_replicas{role="state"}'],
        ), info

    try:
        first = f"127.0.0.1:{redis_ha.primary_port()}"
        assert shown() == (
            (first, first, first, 1),
            f'alerting_redis_primary_info{{address="{first}",role="state"}}',
        )
        redis_ha.kill_primary()
        second = f"127.0.0.1:{redis_ha.primary_port()}"
        after = wait_until(
            lambda: (now := shown())[0][:3] == (second,) * 3 and now, timeout=30, what="the new primary"
        )
        assert after[1] == f'alerting_redis_primary_info{{address="{second}",role="state"}}'
    finally:
        readiness.close()
