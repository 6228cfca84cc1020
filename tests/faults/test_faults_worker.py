"""Faults of the worker itself and of its receivers: ``kill -9`` mid-evaluation and mid-send, two
workers both running beat, and a receiver that fails with 500 and 429 before it recovers. The
webhook recorder is what the on-call would have seen."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.support.faultkit import FakePrometheus, alert_rule, webhook_env, write_rules
from tests.support.httpfake import Reply, Request
from tests.support.net import wait_until
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


def one_rule(tmp_path: Path, name: str, **extra: object) -> Path:
    return write_rules(
        tmp_path / "rules" / f"{name}.yml",
        [{"name": name, "interval": "1s", "rules": [alert_rule(name, "probe_metric > 0", **extra)]}],
    )


def test_worker_killed_during_an_evaluation_notifies_exactly_once_after_restart(
    tmp_path: Path, prefix: str
) -> None:
    rules = one_rule(tmp_path, "KillEval", **{"for": "2s"})
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        worker = Worker(env).start()
        try:
            prom.firing = True
            worker.wait_for("alert.pending")
            prom.slow = 30.0
            assert prom.in_flight.wait(30), "no evaluation reached Prometheus"
            worker.stop(signal.SIGKILL)
            prom.slow = 0.0
            worker = Worker(env).start()
            hook.wait_for("KillEval")
            prom.firing = False
            hook.wait_for("KillEval", "resolved")
            hook.settle()
        finally:
            worker.stop()

    assert hook.statuses("KillEval") == ["firing", "resolved"]


def test_worker_killed_during_a_send_delivers_after_restart_with_only_the_in_flight_one_repeated(
    tmp_path: Path, prefix: str
) -> None:
    """The receiver had the request when the worker died, but the worker never learnt the answer.

    Nothing is lost: the notification goes out again after the restart. The only repeat is that
    one notification whose outcome was unknown, and it carries the first attempt's
    ``Idempotency-Key``, so a receiver that keeps keys can drop it."""
    rules = one_rule(tmp_path, "KillSend")
    hanging = threading.Event()

    def hang_first(request: Request) -> Reply:
        if not hanging.is_set():
            hanging.set()
            return Reply(200, "ok", delay=30)
        return Reply(200, "ok")

    with FakePrometheus() as prom, WebhookRecorder() as hook:
        hook.answer = hang_first
        env = webhook_env(
            tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url, ALERTING_NOTIFY_LOCK_TTL="6"
        )
        worker = Worker(env).start()
        try:
            prom.firing = True
            assert hanging.wait(60), "no notification reached the receiver"
            worker.stop(signal.SIGKILL)
            worker = Worker(env).start()
            wait_until(lambda: len(hook.statuses("KillSend")) >= 2, timeout=90, what="the redelivery")
            prom.firing = False
            hook.wait_for("KillSend", "resolved")
            hook.settle()
        finally:
            worker.stop()

    assert hook.statuses("KillSend") == ["firing", "firing", "resolved"]
    first, again, resolved = hook.delivered("KillSend")
    assert first.body["alerts"] == again.body["alerts"]
    assert first.headers["idempotency-key"] == again.headers["idempotency-key"]
    assert resolved.headers["idempotency-key"] != first.headers["idempotency-key"]


def test_two_workers_with_beat_notify_each_event_exactly_once(tmp_path: Path, prefix: str) -> None:
    rules = write_rules(
        tmp_path / "rules" / "ha.yml",
        [
            {"name": "ha-a", "interval": "1s", "rules": [alert_rule("HaFirst", "probe_metric > 0")]},
            {"name": "ha-b", "interval": "1s", "rules": [alert_rule("HaSecond", "probe_metric > 0")]},
        ],
    )
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env, concurrency=2) as first, Worker(env, concurrency=2) as second:
            wait_until(
                lambda: first.events("group.evaluated") or second.events("group.evaluated"),
                timeout=60,
                what="a first evaluation",
            )
            prom.firing = True
            hook.wait_for("HaFirst")
            hook.wait_for("HaSecond")
            hook.settle()
            prom.firing = False
            hook.wait_for("HaFirst", "resolved")
            hook.wait_for("HaSecond", "resolved")
            hook.settle()
            sent = [e for w in (first, second) for e in w.events("notify.sent")]

    assert hook.statuses("HaFirst") == ["firing", "resolved"]
    assert hook.statuses("HaSecond") == ["firing", "resolved"]
    assert len(sent) == 4


def test_receiver_failing_with_500_then_429_delivers_exactly_once_after_it_recovers(
    tmp_path: Path, prefix: str
) -> None:
    rules = one_rule(tmp_path, "Flaky")
    outage = {"until": float("inf"), "throttle_until": float("inf")}

    def flaky(_: Request) -> Reply:
        now = time.time()
        if now < outage["until"]:
            return Reply(500, "internal error")
        if now < outage["throttle_until"]:
            return Reply(429, "slow down", headers={"Retry-After": "1"})
        return Reply(200, "ok")

    with FakePrometheus() as prom, WebhookRecorder() as hook:
        hook.answer = flaky
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            prom.firing = True
            wait_until(lambda: hook.received, timeout=60, what="a first attempt")
            now = time.time()
            outage["until"], outage["throttle_until"] = now + 6, now + 12
            hook.wait_for("Flaky", timeout=90)
            hook.settle()
            prom.firing = False
            hook.wait_for("Flaky", "resolved")
            hook.settle()
            retries = worker.events("notify.retry")

    refused = [r for r in hook.received if not r.accepted]
    assert {r.body["status"] for r in refused} == {"firing"}
    assert {r.code for r in refused} == {500, 429}
    assert len(retries) >= len(refused) - 1
    assert hook.statuses("Flaky") == ["firing", "resolved"]
    assert hook.delivered("Flaky")[0].at >= outage["throttle_until"]
