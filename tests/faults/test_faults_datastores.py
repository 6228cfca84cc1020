"""Faults in the stores the worker depends on, with the real worker and a webhook recorder: the
application database stopped, or cut off behind a proxy, and Redis (state store and broker)
restarted."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultkit import alert_rule, scraped, webhook_env, write_rules
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.tcpproxy import TCPProxy
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, alerting

pytestmark = pytest.mark.faults


def status(env: dict[str, str]) -> dict[str, Any]:
    """What an operator sees: ``alerting status --format json``."""
    result = alerting("status", "--format", "json", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@contextmanager
def database_fault(kind: str) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(url, break it, mend it): a PostgreSQL server of the test's own stopped (fast shutdown, its
    sessions cut) and started again, or the shared one behind a proxy that cuts every connection."""
    if kind == "stopped":
        with PostgresServer() as server:
            yield server.url, lambda: server.stop(signal.SIGINT), server.start
    else:
        with TCPProxy("127.0.0.1", 5432) as proxy:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test", proxy.cut, proxy.restore


@pytest.mark.parametrize("fault", ["stopped", "cut"])
def test_database_down_puts_sql_rules_in_err_and_nothing_resolves(
    fault: str, tmp_path: Path, prefix: str
) -> None:
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
    with database_fault(fault) as (url, break_it, mend_it), WebhookRecorder() as hook:
        env = webhook_env(
            tmp_path,
            hook,
            rules=rules,
            prefix=prefix,
            datasources={
                "db": {
                    "type": "sql",
                    "url": url,
                    "connect_timeout": "1s",
                    "statement_timeout": "1s",
                }
            },
        )
        with Worker(env) as worker:
            hook.wait_for("StuckApprovals")
            break_it()
            worker.wait_for_evaluations(3, group="sqlfault")
            hook.wait_for("AlertingDatasourceDown", timeout=30)
            during = status(env)
            mend_it()
            hook.wait_for("AlertingDatasourceDown", "resolved")
            worker.wait_for_evaluations(3, group="sqlfault")
            time.sleep(3)  # more than a group_interval: a resolve would be out by now
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
    with RedisServer() as server, WebhookRecorder() as hook, scraped(fault_metric=0) as (exporter, prom):
        env = webhook_env(
            tmp_path, hook, rules=rules, prefix="alerting", redis_url=server.url, prometheus_url=prom.url
        )
        with Worker(env) as worker:
            worker.wait_for("group.evaluated", group="redisfault")
            exporter.values["fault_metric"] = 1
            pending = worker.wait_for("alert.pending")[0]
            # A crash, not a clean shutdown: what the append-only file acknowledged must survive.
            server.stop(signal.SIGKILL)
            worker.wait_for("beat.leader_check_failed", timeout=60)  # down until the worker has noticed
            server.start()
            firing = worker.wait_for("alert.firing", timeout=90)[0]
            hook.wait_for("RedisProbe")
            exporter.values["fault_metric"] = 0
            hook.wait_for("RedisProbe", "resolved")
            hook.settle()
            kinds = [e["event"] for e in worker.events() if e.get("alertname") == "RedisProbe"]

    # The timer that started before the restart is the one that fired: not restarted, not skipped.
    assert firing["active_at"] == pending["active_at"]
    assert firing["slot"] - firing["active_at"] >= hold
    assert kinds == ["alert.pending", "alert.firing", "alert.resolved"]
    assert hook.statuses("RedisProbe") == ["firing", "resolved"]
