"""The real worker against real Redis and Prometheus: pending -> firing -> resolved, once each."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.faultkit import alert_rule, scraped, webhook_env, write_rules
from tests.support.net import free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, worker_env

pytestmark = pytest.mark.e2e


def test_worker_takes_an_alert_through_pending_firing_resolved_exactly_once(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    http_port = free_port()
    rules = write_rules(
        tmp_path / "rules" / "e2e.yml",
        [
            {
                "name": "e2e",
                "interval": "2s",
                "rules": [
                    alert_rule(
                        "E2EHigh",
                        "e2e_metric > 0",
                        annotations={"summary": "e2e_metric is {{ $value }}"},
                        **{"for": "4s"},
                    )
                ],
            }
        ],
    )
    with scraped(e2e_metric=0) as (exporter, prom):
        env = worker_env(
            tmp_path,
            rules=rules.parent,
            config=tmp_path / "none.yml",
            prefix=prefix,
            prometheus_url=prom.url,
            ALERTING_HTTP_ADDR=f"127.0.0.1:{http_port}",
        )
        with Worker(env) as worker:
            worker.wait_for("group.evaluated")
            exporter.values["e2e_metric"] = 3
            worker.wait_for("alert.firing")
            exporter.values["e2e_metric"] = 0
            worker.wait_for("alert.resolved")
            worker.wait_for_evaluations(3)  # a few more ticks: nothing is announced twice
            kinds = [e["event"] for e in worker.events(alertname="E2EHigh")]
            firing = worker.events("alert.firing")[0]
            scraped_metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
            ready = httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=10)

    assert kinds == ["alert.pending", "alert.firing", "alert.resolved"]
    assert firing["labels"] == {
        "alertname": "E2EHigh",
        "severity": "warning",
        "job": "test",
        "instance": exporter.target,
    }
    assert firing["annotations"] == {"summary": "e2e_metric is 3"}
    assert firing["service"] == "alerting" and firing["level"] == "INFO"
    # The worker's own /metrics and /readyz tell the same story.
    assert re.search(r'alerting_group_evaluations_total\{[^}]*group="e2e"[^}]*\} [1-9]', scraped_metrics)
    assert ready.json()["status"] in ("healthy", "degraded")
    # The state is in Redis under our prefix, not in the process.
    assert redis_client.hlen(f"{prefix}:alerts:{rules}:e2e") == 1


def test_two_workers_with_beat_evaluate_each_slot_once(tmp_path: Path, prefix: str) -> None:
    rules = write_rules(
        tmp_path / "rules" / "ha.yml",
        [{"name": "ha", "interval": "1s", "rules": [{"alert": "Always", "expr": "vector(1)"}]}],
    )
    with PrometheusServer() as prom:
        env = worker_env(
            tmp_path, rules=rules.parent, config=tmp_path / "none.yml", prefix=prefix, prometheus_url=prom.url
        )
        with Worker(env, concurrency=1) as first, Worker(env, concurrency=1) as second:
            wait_until(
                lambda: len(first.events("group.evaluated")) + len(second.events("group.evaluated")) >= 6,
                timeout=90,
                what="six evaluations",
            )
            time.sleep(0.5)
            slots = [e["slot"] for w in (first, second) for e in w.events("group.evaluated")]
            fired = [e for w in (first, second) for e in w.events("alert.firing")]
    assert len(slots) == len(set(slots)), "a slot was evaluated twice"
    assert len(fired) == 1


def test_worker_notifies_firing_then_resolved_once_through_the_pipeline(tmp_path: Path, prefix: str) -> None:
    """Evaluation -> aggregation group -> flush -> send task -> webhook, with the real worker."""
    rules = write_rules(
        tmp_path / "rules" / "n.yml",
        [
            {
                "name": "n",
                "interval": "1s",
                "rules": [
                    alert_rule(
                        "NotifyMe",
                        "notify_metric > 0",
                        labels={"severity": "critical"},
                        annotations={"summary": "value {{ $value }}"},
                    )
                ],
            }
        ],
    )
    with WebhookRecorder() as hook, scraped(notify_metric=1) as (exporter, prom):
        env = webhook_env(tmp_path, hook, rules=rules.parent, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            (ready,) = worker.wait_for("worker.ready")
            hook.wait_for("NotifyMe")
            exporter.values["notify_metric"] = 0
            hook.wait_for("NotifyMe", "resolved", timeout=90)
            hook.settle(quiet=6)  # several more ticks and flushes: nothing is sent again
            errors = [e for e in worker.events() if e.get("level") == "ERROR"]
            evaluations = {e["eval_id"] for e in worker.events("group.evaluated")}
            sent = worker.events("notify.sent")
    # The start-up summary, as fields in JSON: what is evaluated, asked and notified.
    assert (ready["groups"], ready["rules"]) == (1, 1)
    assert ready["datasources"] == {"prometheus": "promql, up"}
    assert ready["receivers"] == {"hook/webhook_configs[0]": "webhook"}
    assert [r.status for r in hook.received] == ["firing", "resolved"]
    firing = hook.received[0].body
    assert firing["receiver"] == "hook" and firing["version"] == "4"
    assert [a["labels"]["alertname"] for a in firing["alerts"]] == ["NotifyMe"]
    assert firing["alerts"][0]["annotations"] == {"summary": "value 1"}
    assert firing["alerts"][0]["generatorURL"].startswith(f"{prom.url}/graph?g0.expr=notify_metric")
    assert errors == []
    # Each notification's log lines carry the eval_id of the evaluation that last reported it.
    assert len(sent) == 2 and all(e.get("eval_id") in evaluations for e in sent)
