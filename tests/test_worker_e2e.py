"""The real worker against real Redis and Prometheus: pending -> firing -> resolved, once each."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from tests.conftest import REDIS_URL
from tests.support.exporter import Exporter
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.worker import Worker

pytestmark = pytest.mark.e2e


def test_worker_takes_an_alert_through_pending_firing_resolved_exactly_once(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    http_port = free_port()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "e2e.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "e2e",
                        "interval": "2s",
                        "rules": [
                            {
                                "alert": "E2EHigh",
                                "expr": "e2e_metric > 0",
                                "for": "4s",
                                "labels": {"severity": "warning"},
                                "annotations": {"summary": "e2e_metric is {{ $value }}"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    with Exporter() as exporter:
        exporter.values["e2e_metric"] = 0
        with PrometheusServer(scrape_targets=[exporter.target]) as prom:
            env = {
                "ALERTING_RULES": str(rules),
                "PROMETHEUS_URL": prom.url,
                "ALERTING_REDIS_URL": REDIS_URL,
                "ALERTING_REDIS_PREFIX": prefix,
                "ALERTING_CELERY_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
                "ALERTING_CONFIG": str(tmp_path / "none.yml"),
                "ALERTING_HTTP_ADDR": f"127.0.0.1:{http_port}",
            }
            with Worker(env) as worker:
                wait_until(lambda: worker.events("group.evaluated"), timeout=60, what="a first evaluation")
                exporter.values["e2e_metric"] = 3
                wait_until(lambda: worker.events("alert.firing"), timeout=60, what="firing")
                exporter.values["e2e_metric"] = 0
                wait_until(lambda: worker.events("alert.resolved"), timeout=60, what="resolved")
                # A few more ticks: nothing is announced twice.
                evaluated = len(worker.events("group.evaluated"))
                wait_until(
                    lambda: len(worker.events("group.evaluated")) >= evaluated + 3,
                    timeout=60,
                    what="three more evaluations",
                )
                kinds = [e["event"] for e in worker.events() if e.get("alertname") == "E2EHigh"]
                firing = worker.events("alert.firing")[0]
                scraped = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
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
    assert re.search(r'alerting_group_evaluations_total\{[^}]*group="e2e"[^}]*\} [1-9]', scraped)
    assert ready.json()["status"] in ("healthy", "degraded")
    # The state is in Redis under our prefix, not in the process.
    assert redis_client.hlen(f"{prefix}:alerts:{rules / 'e2e.yml'}:e2e") == 1


def test_two_workers_with_beat_evaluate_each_slot_once(tmp_path: Path, prefix: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ha.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "ha", "interval": "1s", "rules": [{"alert": "Always", "expr": "vector(1)"}]}
                ]
            }
        )
    )
    with PrometheusServer() as prom:
        env = {
            "ALERTING_RULES": str(rules),
            "PROMETHEUS_URL": prom.url,
            "ALERTING_REDIS_URL": REDIS_URL,
            "ALERTING_REDIS_PREFIX": prefix,
            "ALERTING_CELERY_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
            "ALERTING_CONFIG": str(tmp_path / "none.yml"),
        }
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
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "n.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "n",
                        "interval": "1s",
                        "rules": [
                            {
                                "alert": "NotifyMe",
                                "expr": "notify_metric > 0",
                                "labels": {"severity": "critical"},
                                "annotations": {"summary": "value {{ $value }}"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    received: list[dict] = []

    def record(request: Request) -> Reply:
        received.append(json.loads(request.body))
        return Reply(200, "ok")

    with Exporter() as exporter, FakeHTTPServer(record) as hook:
        exporter.values["notify_metric"] = 1
        config = tmp_path / "alerting.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "2s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "hook",
                            "webhook_configs": [{"url": f"{hook.url}/hook", "send_resolved": True}],
                        }
                    ],
                }
            )
        )
        with PrometheusServer(scrape_targets=[exporter.target]) as prom:
            env = {
                "ALERTING_RULES": str(rules),
                "PROMETHEUS_URL": prom.url,
                "ALERTING_REDIS_URL": REDIS_URL,
                "ALERTING_REDIS_PREFIX": prefix,
                "ALERTING_CELERY_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
                "ALERTING_CONFIG": str(config),
                "ALERTING_HTTP_ADDR": "off",
            }
            with Worker(env) as worker:
                wait_until(lambda: received, timeout=60, what="the firing notification")
                exporter.values["notify_metric"] = 0
                wait_until(
                    lambda: any(r["status"] == "resolved" for r in received),
                    timeout=90,
                    what="the resolved notification",
                )
                time.sleep(6)  # several more ticks and flushes: nothing is sent again
                errors = [e for e in worker.events() if e.get("level") == "ERROR"]
                evaluations = {e["eval_id"] for e in worker.events("group.evaluated")}
                sent = worker.events("notify.sent")
    assert [r["status"] for r in received] == ["firing", "resolved"]
    firing = received[0]
    assert firing["receiver"] == "hook" and firing["version"] == "4"
    assert [a["labels"]["alertname"] for a in firing["alerts"]] == ["NotifyMe"]
    assert firing["alerts"][0]["annotations"] == {"summary": "value 1"}
    assert firing["alerts"][0]["generatorURL"].startswith(f"{prom.url}/graph?g0.expr=notify_metric")
    assert errors == []
    # Each notification's log lines carry the eval_id of the evaluation that last reported it.
    assert len(sent) == 2 and all(e.get("eval_id") in evaluations for e in sent)
