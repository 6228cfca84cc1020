"""Faults in the stores the worker depends on, with the real worker and a webhook recorder: the
application database cut off behind a proxy, and Redis (state store and broker) restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.support.exporter import Exporter
from tests.support.faultkit import WebhookRecorder, alert_rule, worker_env, write_routing, write_rules
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.tcpproxy import TCPProxy
from tests.support.worker import ROOT, Worker

pytestmark = pytest.mark.faults


def status(env: dict[str, str]) -> dict[str, Any]:
    """What an operator sees: ``alerting status --format json``."""
    result = subprocess.run(
        [sys.executable, "-m", "alerting.cli", "status", "--format", "json"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def group_evaluations(worker: Worker, group: str) -> int:
    return sum(e.get("group") == group for e in worker.events("group.evaluated"))


def test_database_cut_off_puts_sql_rules_in_err_and_nothing_resolves(tmp_path: Path, prefix: str) -> None:
    rules = write_rules(
        tmp_path / "rules" / "sql.yml",
        [
            {
                "name": "sqlfault",
                "interval": "1s",
                "rules": [
                    {
                        "alert": "StuckApprovals",
                        "sql": "SELECT 'payments' AS team, 3 AS value",
                        "for": "2s",
                        "labels": {"severity": "warning"},
                    }
                ],
            }
        ],
    )
    with TCPProxy("127.0.0.1", 5432) as proxy, WebhookRecorder() as hook:
        config = write_routing(
            tmp_path / "alerting.yml",
            hook.url,
            datasources={
                "db": {
                    "type": "sql",
                    "url": f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test",
                    "connect_timeout": "1s",
                    "statement_timeout": "1s",
                }
            },
        )
        env = worker_env(tmp_path, rules=rules, config=config, redis_url=REDIS_URL, prefix=prefix)
        with Worker(env) as worker:
            wait_until(lambda: hook.statuses("StuckApprovals"), timeout=60, what="the firing notification")
            proxy.cut()
            start = group_evaluations(worker, "sqlfault")
            wait_until(
                lambda: group_evaluations(worker, "sqlfault") >= start + 3, timeout=60, what="three ticks"
            )
            wait_until(lambda: hook.statuses("AlertingDatasourceDown"), timeout=30, what="datasource alert")
            during = status(env)
            proxy.restore()
            wait_until(
                lambda: "resolved" in hook.statuses("AlertingDatasourceDown"), timeout=60, what="db back"
            )
            start = group_evaluations(worker, "sqlfault")
            wait_until(
                lambda: group_evaluations(worker, "sqlfault") >= start + 3, timeout=60, what="three ticks"
            )
            time.sleep(3)
            after = status(env)
            resolved = worker.events("alert.resolved")

    group = next(g for g in during["groups"] if g["group"] == "sqlfault")
    assert group["health"] == "err"
    assert [e["rule"] for e in group["errors"]] == ["StuckApprovals"]
    assert {"datasource": "db", "status": "down"} in during["datasources"]
    assert next(g for g in after["groups"] if g["group"] == "sqlfault")["health"] == "ok"
    # The alert stayed firing throughout: one page, no false resolve, once about the database.
    assert hook.statuses("StuckApprovals") == ["firing"]
    assert [e["alertname"] for e in resolved] == ["AlertingDatasourceDown"]
    assert hook.statuses("AlertingDatasourceDown") == ["firing", "resolved"]
    assert hook.delivered("AlertingDatasourceDown")[0].body["alerts"][0]["labels"]["datasource"] == "db"


def test_redis_restarted_mid_for_keeps_the_pending_timer_and_loses_no_notification(tmp_path: Path) -> None:
    hold = 8.0
    rules = write_rules(
        tmp_path / "rules" / "redis.yml",
        [
            {
                "name": "redisfault",
                "interval": "1s",
                "rules": [alert_rule("RedisProbe", "fault_metric > 0", **{"for": f"{hold:g}s"})],
            }
        ],
    )
    with (
        RedisServer() as server,
        Exporter() as exporter,
        WebhookRecorder() as hook,
        PrometheusServer(scrape_targets=[exporter.target]) as prom,
    ):
        exporter.values["fault_metric"] = 0
        config = write_routing(tmp_path / "alerting.yml", hook.url)
        env = worker_env(
            tmp_path,
            rules=rules,
            config=config,
            redis_url=server.url,
            prefix="alerting",
            PROMETHEUS_URL=prom.url,
        )
        with Worker(env) as worker:
            wait_until(lambda: group_evaluations(worker, "redisfault"), timeout=60, what="a first evaluation")
            exporter.values["fault_metric"] = 1
            pending = wait_until(lambda: worker.events("alert.pending"), timeout=60, what="pending")[0]
            # A crash, not a clean shutdown: what the append-only file acknowledged must survive.
            server.stop(signal.SIGKILL)
            time.sleep(3)
            server.start()
            firing = wait_until(lambda: worker.events("alert.firing"), timeout=90, what="firing")[0]
            wait_until(lambda: hook.statuses("RedisProbe"), timeout=60, what="the firing notification")
            exporter.values["fault_metric"] = 0
            wait_until(lambda: "resolved" in hook.statuses("RedisProbe"), timeout=60, what="the resolve")
            time.sleep(4)
            kinds = [e["event"] for e in worker.events() if e.get("alertname") == "RedisProbe"]

    # The timer that started before the restart is the one that fired: not restarted, not skipped.
    assert firing["active_at"] == pending["active_at"]
    assert firing["slot"] - firing["active_at"] >= hold
    assert kinds == ["alert.pending", "alert.firing", "alert.resolved"]
    assert hook.statuses("RedisProbe") == ["firing", "resolved"]
