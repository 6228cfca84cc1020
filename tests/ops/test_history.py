"""Alert history in real SQLite and PostgreSQL: a full pending -> firing -> resolved cycle with its
notification attempts, retention, and writes that fail without breaking anything."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from alerting.config.settings import Settings
from alerting.errors import ConfigError
from alerting.notify.base import NotifyAlert
from alerting.ops import history as history_module
from alerting.ops import metrics
from alerting.ops.history import History
from alerting.ops.logs import bound
from alerting.rules import Group, load_paths
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator, GroupOutcome
from alerting.sources.prometheus import PrometheusSource
from tests.support.databases import PG_ADMIN
from tests.support.logs import json_log
from tests.support.net import free_port
from tests.support.promapi import PromAPI, Vector

T0 = 1767225600.0
RULES = """\
groups:
  - name: api
    interval: 1m
    rules:
      - alert: Up
        expr: x > 0
        for: 2m
        labels: {severity: critical}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/var/history.db"  # the directory does not exist yet
        return
    name = f"hist_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def history(url: str) -> Iterator[History]:
    store = History(url, retention=100 * 365 * 86400.0)  # the tests write at fixed past times
    yield store
    store.close()


@pytest.fixture
def group(tmp_path: Path) -> Group:
    (tmp_path / "r.yml").write_text(RULES)
    return load_paths([tmp_path / "r.yml"]).groups[0]


def failures(kind: str) -> float:
    return metrics.snapshot(metrics.registry()).get(
        f'alerting_history_write_failures_total{{kind="{kind}"}}', 0.0
    )


def test_a_full_cycle_and_its_notifications_are_recorded_in_order(
    history: History, group: Group, redis_client: redis.Redis, prefix: str, prom_api: PromAPI
) -> None:
    store = StateStore(redis_client, prefix)
    source = PrometheusSource("prometheus", {"url": prom_api.url, "timeout": "2s"})

    def tick(t: float, vector: Vector, eval_id: str) -> list[NotifyAlert]:
        prom_api.vectors["x > 0"] = vector
        with bound(eval_id=eval_id):
            outcome = Evaluator(store, lambda _r: source, owner="t").tick(group, t)
            history.record_transitions(group, outcome)
        return [
            NotifyAlert(
                status="resolved" if e.kind == "resolved" else "firing",
                labels=dict(e.alert.labels),
                annotations={},
                starts_at=e.alert.active_at,
                fingerprint=e.alert.fingerprint,
            )
            for item in outcome.rules
            for e in item.events
            if e.kind != "pending"
        ]

    assert tick(T0, [({"job": "api"}, 7.0)], "e1") == []
    tick(T0 + 60, [({"job": "api"}, 7.0)], "e2")  # still pending: no transition
    fired = tick(T0 + 120, [({"job": "api"}, 8.0)], "e3")
    with bound(eval_id="e3"):
        history.record_notification(
            "pager",
            "failed",
            alerts=fired,
            error="POST https://ops:s3cret@events.example.com/v2/enqueue: HTTP 503",
            integration="pagerduty",
            attempt=1,
            group_key='{}:{alertname="Up"}',
            at=T0 + 121,
        )
        history.record_notification(
            "pager", "sent", alerts=fired, integration="pagerduty", attempt=2, at=T0 + 150
        )
    resolved = tick(T0 + 180, [], "e4")
    history.record_notification(
        "pager", "sent", alerts=resolved, integration="pagerduty", eval_id="e4", at=T0 + 181
    )

    rows = history.query(alertname="Up")
    assert [(r.kind, r.state, r.outcome, r.attempt, r.eval_id) for r in rows] == [
        ("transition", "pending", None, None, "e1"),
        ("transition", "firing", None, None, "e3"),
        ("notification", "firing", "failed", 1, "e3"),
        ("notification", "firing", "sent", 2, "e3"),
        ("transition", "resolved", None, None, "e4"),
        ("notification", "resolved", "sent", 1, "e4"),
    ]
    pending, firing, failed = rows[0], rows[1], rows[2]
    assert pending.at == T0 and firing.at == T0 + 120 and firing.value == 8.0
    assert firing.group == "api" and firing.rule == "Up"
    assert firing.labels == {"alertname": "Up", "job": "api", "severity": "critical"}
    assert failed.fingerprint == firing.fingerprint
    assert failed.receiver == "pager" and failed.integration == "pagerduty"
    assert failed.error is not None and "s3cret" not in failed.error and "HTTP 503" in failed.error
    assert json.loads(json.dumps(failed.as_json()))["time"] == "2026-01-01T00:02:01.000Z"


def test_since_and_limit_give_the_latest_rows_oldest_first(history: History) -> None:
    for i in range(10):
        alert = NotifyAlert("firing", {"alertname": "A" if i % 2 else "B"}, {}, T0)
        history.record_notification("slack", "sent", alerts=[alert], at=T0 + i)
    assert [r.at for r in history.query(limit=3)] == [T0 + 7, T0 + 8, T0 + 9]
    assert [r.at for r in history.query(alertname="A", since=T0 + 4)] == [T0 + 5, T0 + 7, T0 + 9]
    assert [r.at for r in history.query(since=T0 + 8, kind="notification")] == [T0 + 8, T0 + 9]
    assert history.query(receiver="email") == []


def test_rows_older_than_the_retention_are_deleted_by_the_writers(url: str) -> None:
    store = History(url, retention=3600, prune_every=0)
    try:
        now = time.time()
        store.record_notification(
            "slack", "sent", alerts=[NotifyAlert("firing", {"alertname": "Old"}, {}, 0)], at=now - 7200
        )
        store.record_notification(
            "slack", "sent", alerts=[NotifyAlert("firing", {"alertname": "New"}, {}, 0)], at=now - 60
        )
        assert [r.alertname for r in store.query()] == ["New"]
        assert store.prune() == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    "where",
    ["postgresql://postgres@127.0.0.1:{port}/nowhere", "sqlite:////proc/no-such-dir/history.db"],
    ids=["postgresql-closed-port", "sqlite-unwritable-dir"],
)
def test_a_database_that_cannot_be_written_never_breaks_the_caller(where: str, group: Group) -> None:
    url = where.format(port=free_port())
    store = History(url, connect_timeout=1, backoff=60)
    try:
        with json_log() as log:
            before = failures("notification")
            alert = NotifyAlert("firing", {"alertname": "X"}, {}, T0)
            assert store.record_notification("slack", "sent", alerts=[alert]) == 0
            assert store.record_notification("slack", "sent", alerts=[alert]) == 0  # skipped: back-off
            assert failures("notification") == before + 2
    finally:
        store.close()
    (line,) = log.records()
    assert line["event"] == "history.write_failed" and line["level"] == "ERROR"
    assert "skipping writes for 60s" in line["msg"]


def _child_writes(url: str, n: int) -> None:
    store = History(url, retention=100 * 365 * 86400.0)
    for i in range(n):
        store.record_notification(
            "slack", "sent", alerts=[NotifyAlert("firing", {"alertname": "Fork"}, {}, 0)], at=T0 + i
        )
    store.close()


def test_forked_pool_processes_write_to_the_same_table(history: History, url: str) -> None:
    history.query()  # the parent opened its engine before forking, as the worker's main process may
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_child_writes, args=(url, 15)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert len(history.query(alertname="Fork", limit=1000)) == 45


def test_the_module_functions_write_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTING_HISTORY_URL", f"sqlite:///{tmp_path}/h.db")
    monkeypatch.setenv("ALERTING_HISTORY_RETENTION", "7d")
    history_module.set_history(None)
    try:
        assert history_module.default_history().retention == 7 * 86400
        now = time.time()
        alert = NotifyAlert("firing", {"alertname": "Env"}, {}, now)
        assert history_module.record_notification("slack", "sent", alerts=[alert], at=now) == 1
        assert [r.alertname for r in history_module.query(since=now - 1)] == ["Env"]
    finally:
        history_module.default_history().close()
        history_module.set_history(None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALERTING_HISTORY_RETENTION": "a month"}, "ALERTING_HISTORY_RETENTION: "),
        ({"ALERTING_HISTORY_URL": "not a url"}, "ALERTING_HISTORY_URL: not a database URL"),
    ],
)
def test_bad_history_settings_are_configuration_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        History.from_env(env)


def test_bad_settings_do_not_break_the_module_functions_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_HISTORY_RETENTION", "forever")
    history_module.set_history(None)
    try:
        assert history_module.record_notification("slack", "sent") == 0
    finally:
        history_module.set_history(None)


def test_a_misconfigured_history_stands_in_and_reports_every_write(group: Group) -> None:
    stand_in = history_module.open_history(Settings.from_env({"ALERTING_HISTORY_URL": "not a url"}))
    assert isinstance(stand_in, history_module.UnusableHistory)
    with json_log() as log:
        before = failures("transition")
        assert stand_in.record_evaluated(group.name, [], T0) == 0
        assert stand_in.record_transitions(group, GroupOutcome(group, T0)) == 0
        assert failures("transition") == before + 2
    assert [line["event"] for line in log.records()] == ["history.config_invalid"] * 2
    assert "ALERTING_HISTORY_URL: not a database URL" in log.records()[0]["msg"]


def test_the_runtime_owns_the_history_that_the_module_functions_write_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerting.worker.runtime import Runtime

    monkeypatch.setenv("ALERTING_HISTORY_URL", f"sqlite:///{tmp_path}/h.db")
    history_module.set_history(None)
    runtime = Runtime()
    try:
        assert isinstance(runtime.history, History)
        assert history_module.default_history() is runtime.history
    finally:
        runtime.close()
        history_module.set_history(None)
