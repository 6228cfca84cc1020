"""Security checks across the running product: planted secrets never show in logs, metrics, CLI
output or history; Redis behind a password (and a wrong one) works as it should; SQL rules cannot
leave side effects behind in PostgreSQL.

Escaping for Slack and HTML, the template sandbox and its bounds, and the read-only guards against
plain write statements have their own tests beside their modules; this file covers what only shows
with the whole product running, and the gaps.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
import yaml

from alerting.errors import QueryError
from alerting.rules.evaluation import State
from alerting.rules.loader import load_file_groups
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator
from alerting.sources.prometheus import PrometheusSource
from alerting.sources.sql import SqlSource
from tests.support.databases import PG_ADMIN, postgres_database
from tests.support.faultkit import alert_rule, scraped, write_rules
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import free_port
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, alerting, worker_env


def both(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def secret(kind: str) -> str:
    # Random and shapeless, so only real plumbing (not a lucky redaction pattern) keeps it out.
    return f"{kind}{uuid.uuid4().hex[:20]}"


@pytest.mark.e2e
def test_planted_secrets_never_appear_in_logs_metrics_cli_output_or_history(tmp_path: Path) -> None:
    secrets = {
        "prometheus password": secret("promPw"),
        "redis password": secret("redisPw"),
        "database password": secret("dbPw"),
        "webhook url token": secret("hookPath"),
        "webhook bearer token": secret("hookTok"),
        "dead webhook url token": secret("deadPath"),
    }
    rules = write_rules(
        tmp_path / "rules" / "sec.yml",
        [
            {
                "name": "sec",
                "interval": "1s",
                "rules": [
                    alert_rule("SecretsPromRule", "sec_metric > 0"),
                    {
                        "alert": "SecretsSqlRule",
                        "sql": "SELECT 'x' AS team, 1 AS value",
                        "labels": {"severity": "info"},
                    },
                ],
            }
        ],
    )
    dead_port = free_port()
    failures = iter(range(2))

    def fail_twice(request: Request) -> Reply:
        return Reply(500, "try again") if next(failures, None) is not None else Reply(200, "ok")

    with (
        RedisServer(password=secrets["redis password"]) as redis_server,
        WebhookRecorder() as hook,
        scraped(sec_metric=1) as (_, prom),
    ):
        hook.answer = fail_twice
        config = tmp_path / "alerting.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "2s",
                        "routes": [{"receiver": "dead", "continue": True}, {"receiver": "hook"}],
                    },
                    "receivers": [
                        {
                            "name": "hook",
                            "webhook_configs": [
                                {
                                    "url": f"{hook.url}/hook/{secrets['webhook url token']}",
                                    "http_config": {"authorization": {"credentials": "${HOOK_TOKEN}"}},
                                }
                            ],
                        },
                        {
                            "name": "dead",
                            "webhook_configs": [
                                {"url": f"http://127.0.0.1:{dead_port}/x/{secrets['dead webhook url token']}"}
                            ],
                        },
                    ],
                    "datasources": {
                        "db": {
                            "type": "sql",
                            "url": "postgresql+psycopg://postgres:${DB_PASSWORD}@127.0.0.1:5432/test",
                        }
                    },
                }
            )
        )
        metrics_port = free_port()
        env = worker_env(
            tmp_path,
            rules=rules,
            config=config,
            redis_url=redis_server.url,
            prefix="sec",
            prometheus_url=prom.url.replace("://", f"://alerting:{secrets['prometheus password']}@"),
            HOOK_TOKEN=secrets["webhook bearer token"],
            DB_PASSWORD=secrets["database password"],
            ALERTING_HTTP_ADDR=f"127.0.0.1:{metrics_port}",
        )
        with Worker(env) as worker:
            hook.wait_for("SecretsPromRule")
            hook.wait_for("SecretsSqlRule")
            worker.wait_for("notify.retry", timeout=30)  # to the dead receiver
            # Prometheus goes away: errors now carry its URL.
            prom.stop()
            worker.wait_for("rule.error", timeout=30)
            time.sleep(2)
            metrics_page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            ready = httpx.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=10).text
            outputs = {
                "metrics": metrics_page,
                "readyz": ready,
                "status": alerting("status", env=env).stdout,
                "status json": alerting("status", "--format", "json", env=env).stdout,
                "alerts": alerting("alerts", "--format", "json", env=env).stdout,
                "history": alerting("history", "--format", "json", env=env).stdout,
                "history table": alerting("history", env=env).stdout,
                "routes show": alerting("routes", "show", env=env).stdout,
                "check": both(alerting("check", str(rules), str(config), env=env)),
                "notify test": both(alerting("notify", "test", "dead", env=env)),
            }
            worker.stop(signal.SIGTERM)
            outputs["worker log"] = "\n".join(worker.lines)
    history_db = (tmp_path / "history.db").read_bytes()

    assert "notify.retry" in outputs["worker log"] and "rule.error" in outputs["worker log"]
    assert "SecretsPromRule" in outputs["history"] and "alerting_" in outputs["metrics"]
    leaks = [
        f"{what} in {where}"
        for what, value in secrets.items()
        for where, text in [*outputs.items(), ("history database", history_db.decode("latin-1"))]
        if value in text
    ]
    assert leaks == []
    # The secrets were live: the receiver was reached through its URL token and bearer token ...
    delivered = [r for r in hook.server.requests if r.path.endswith(secrets["webhook url token"])]
    assert delivered and {r.headers["authorization"] for r in delivered} == {
        f"Bearer {secrets['webhook bearer token']}"
    }
    # ... and the payloads carry nothing of anyone's credentials.
    for received in hook.received:
        body = yaml.safe_dump(dict(received.body))
        assert not [what for what, value in secrets.items() if value in body], body


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_redis_behind_a_password_serves_state_and_broker_and_a_wrong_password_says_so(
    tmp_path: Path, tls: bool
) -> None:
    password = secret("pw")
    rules = write_rules(
        tmp_path / "rules" / "auth.yml",
        [{"name": "auth", "interval": "1s", "rules": [alert_rule("Authed", "vector(1)")]}],
    )
    with RedisServer(password=password, tls=tls) as server, PrometheusServer() as prom:
        env = worker_env(
            tmp_path,
            rules=rules,
            config=tmp_path / "none.yml",
            redis_url=server.url,
            prefix="auth",
            prometheus_url=prom.url,
        )
        with Worker(env) as worker:
            worker.wait_for("alert.firing")  # through the password
        status = alerting("alerts", "--format", "json", env=env)
        wrong_url = server.url.replace(password, "wrong-" + password[:4])
        wrong = alerting("status", env={**env, "ALERTING_REDIS_URL": wrong_url})
    assert status.returncode == 0 and '"Authed"' in status.stdout
    assert wrong.returncode != 0
    assert "cannot reach Redis" in wrong.stderr and "Traceback" not in wrong.stderr
    assert password not in wrong.stderr + wrong.stdout


RUNAWAY = {
    # Each line would take hours or gigabytes without the bounds; the tick must still finish.
    "doubling": '{{ $s := "ab" }}{{ range $labels }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ len $s }}',
    "nested": "{{ range $labels }}{{ range $labels }}{{ range $labels }}{{ range $labels }}."
    "{{ end }}{{ end }}{{ end }}{{ end }}",
    "recursion": '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}',
    "wide": '{{ range $labels }}{{ printf "%0999999d" 1 }}{{ end }}',
}


def test_runaway_annotation_templates_are_cut_short_and_the_rule_still_fires(
    tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> None:
    wide = {f"l{i:02d}": "v" for i in range(64)}
    answer = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": wide, "value": [1, "1"]}]},
    }
    rules = write_rules(
        tmp_path / "rules.yml",
        [
            {
                "name": "templates",
                "interval": "1m",
                "rules": [
                    alert_rule("Runaway", "wide_metric", annotations=RUNAWAY),
                    alert_rule("Innocent", "wide_metric", annotations={"summary": "{{ $labels.l01 }}"}),
                    alert_rule(
                        "Prying",
                        "wide_metric",
                        annotations={"summary": "[{{ $labels.__class__ }}{{ $value.__class__ }}]"},
                    ),
                ],
            }
        ],
    )
    (group,), problems, _ = load_file_groups(rules, 60.0)
    assert problems == []
    with FakeHTTPServer(lambda _: Reply(200, answer)) as fake:
        source = PrometheusSource("prometheus", {"url": fake.url})
        evaluator = Evaluator(StateStore(redis_client, prefix), lambda _: source, owner="sec", concurrency=1)
        outcome = evaluator.tick(group, 1_700_000_040.0)
        source.close()
    alerts = {e.rule.name: next(iter(e.alerts.values())) for e in outcome.rules}
    assert {name: a.state for name, a in alerts.items()} == dict.fromkeys(alerts, State.FIRING)
    runaway = dict(alerts["Runaway"].annotations)
    assert set(runaway) == set(RUNAWAY)
    for name, text in runaway.items():
        assert text.startswith("<error expanding template:"), (name, text[:200])
        assert len(text) < 1000
    assert dict(alerts["Innocent"].annotations) == {"summary": "v"}
    # A map key that is not there is empty (Go's missingkey=zero); a number has no fields at all.
    prying = dict(alerts["Prying"].annotations)["summary"]
    assert prying.startswith("<error expanding template:") and "__class__" in prying
    assert "<class" not in prying


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT lo_from_bytea(0, 'x'::bytea) AS value",
        "SELECT lo_import('/etc/hostname') AS value",
        "SELECT pg_notify('alerting_security', 'leak') IS NULL AS value",
    ],
    ids=["large-object", "lo-import", "notify"],
)
def test_postgres_side_effects_inside_a_rule_are_rolled_back(sql: str) -> None:
    """Functions that write outside tables (large objects, notifications) may run inside the
    read-only transaction, but nothing of theirs survives it."""
    with postgres_database() as db, psycopg.connect(PG_ADMIN, autocommit=True) as listener:
        listener.execute("LISTEN alerting_security")
        before = db.admin("SELECT count(*) FROM pg_largeobject_metadata")
        source = SqlSource(f"sec-{uuid.uuid4().hex[:8]}", {"type": "sql", "url": db.url})
        try:
            source.query(sql, time.time())
        except QueryError:
            pass  # refused outright is fine too
        finally:
            source.close()
        after = db.admin("SELECT count(*) FROM pg_largeobject_metadata")
        notices = list(listener.notifies(timeout=1, stop_after=1))
    assert after == before
    assert notices == []
