"""``alerting status``, ``alerting alerts`` and ``alerting history`` over real Redis, a real broker
queue and a real history database, as an operator runs them during an incident."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result

from alerting.cli.ops import register
from alerting.notify.base import NotifyAlert
from alerting.ops.history import History
from alerting.rules import Group, load_paths
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator
from alerting.sources.prometheus import PrometheusSource
from tests.support.net import REDIS_URL, celery_queue, free_port
from tests.support.promapi import PromAPI

T0 = 1767225600.0
RULES = """\
groups:
  - name: api
    interval: 1m
    rules:
      - alert: Down
        expr: x > 0
        labels: {severity: critical}
      - alert: Slow
        expr: y > 0
        for: 5m
      - alert: Rejected
        expr: rejected > 0
"""


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("alerting")
    register(group)
    return group


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "prom_api.yml").write_text(RULES)
    return tmp_path


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[str]:
    name = celery_queue("q-ops")
    yield name
    redis_client.delete(name)


@pytest.fixture
def env(workdir: Path, prefix: str, queue: str) -> dict[str, str]:
    return {
        "ALERTING_REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_RULES": str(workdir / "rules"),
        "ALERTING_CONFIG": str(workdir / "none.yml"),
        "ALERTING_CELERY_QUEUE": queue,
        "ALERTING_HISTORY_URL": f"sqlite:///{workdir}/history.db",
        "ALERTING_HISTORY_RETENTION": "36500d",
    }


@pytest.fixture
def group(workdir: Path) -> Group:
    return load_paths([workdir / "rules" / "prom_api.yml"]).groups[0]


@pytest.fixture
def tick(prom_api: PromAPI, group: Group, redis_client: redis.Redis, prefix: str) -> Any:
    store = StateStore(redis_client, prefix)
    source = PrometheusSource("prometheus", {"url": prom_api.url, "timeout": "2s"})
    return lambda t: Evaluator(store, lambda _r: source, owner="t").tick(group, t)


def run(cli: click.Group, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_alerts_lists_firing_pending_and_resolved_alerts_with_a_state_filter(
    cli: click.Group, env: dict[str, str], prom_api: PromAPI, tick: Any
) -> None:
    prom_api.vectors = {"x > 0": [({"job": "a"}, 1), ({"job": "b"}, 1)], "y > 0": [({"job": "c"}, 1)]}
    tick(T0)
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1)]
    tick(T0 + 60)

    result = run(cli, env, "alerts", "--format", "json")
    assert result.exit_code == 0, result.output
    listed = [(a["alertname"], a["labels"]["job"], a["state"]) for a in json.loads(result.output)]
    assert listed == [("Down", "a", "firing"), ("Slow", "c", "pending"), ("Down", "b", "resolved")]
    assert json.loads(result.output)[2]["resolved_at"] == "2026-01-01T00:01:00Z"

    firing = json.loads(run(cli, env, "alerts", "--state", "firing", "--format", "json").output)
    assert [(a["alertname"], a["group"]) for a in firing] == [("Down", "api")]
    both = json.loads(
        run(cli, env, "alerts", "--state", "pending", "--state", "resolved", "--format", "json").output
    )
    assert [a["state"] for a in both] == ["pending", "resolved"]

    table = run(cli, env, "alerts").output.splitlines()
    assert table[0].split() == ["STATE", "ALERTNAME", "GROUP", "SINCE", "LABELS"]
    assert table[1].split() == ["firing", "Down", "api", "2026-01-01T00:00:00Z", "job=a,severity=critical"]


def test_status_shows_groups_datasources_leader_queues_reload_problems_and_receiver_failures(
    cli: click.Group,
    env: dict[str, str],
    prom_api: PromAPI,
    tick: Any,
    workdir: Path,
    redis_client: redis.Redis,
    prefix: str,
    queue: str,
) -> None:
    tick(T0)
    prom_api.down = True
    tick(T0 + 180)  # two slots missed, and Prometheus is down for the whole tick
    StateStore(redis_client, prefix).hold_leadership("worker-1:42", 30)
    redis_client.lpush(queue, "m1", "m2", "m3")
    (workdir / "rules" / "broken.yml").write_text(
        "groups:\n  - name: b\n    rules:\n      - alert: X\n        expr: up ==\n"
    )
    history = History(env["ALERTING_HISTORY_URL"], retention=36500 * 86400.0)
    alert = NotifyAlert("firing", {"alertname": "Down", "job": "a"}, {}, T0)
    history.record_notification(
        "pager", "failed", alerts=[alert], error="HTTP 503 from events API", attempt=1
    )
    history.record_notification("pager", "failed", alerts=[alert], error="timed out", attempt=2)
    history.record_notification("slack", "sent", alerts=[alert])
    history.close()

    result = run(cli, env, "status", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (api_group,) = [g for g in report["groups"] if g["group"] == "api"]
    assert api_group["last_slot"] == "2026-01-01T00:03:00Z"
    assert api_group["missed_slots"] == 2 and api_group["health"] == "err"
    assert api_group["interval_seconds"] == 60 and api_group["rules"] == 3
    assert {e["rule"] for e in api_group["errors"]} == {"Down", "Slow", "Rejected"}
    assert {d["datasource"]: d["status"] for d in report["datasources"]}["prometheus"] == "down"
    assert report["beat_leader"]["owner"] == "worker-1:42"
    assert report["queues"] == {queue: 3}
    assert report["reload"]["ok"] is False
    assert report["reload"]["problems"][0].startswith(f"{workdir / 'rules' / 'broken.yml'}:5:")
    pager = report["receivers"]["failures"]["pager"]
    assert pager["failures"] == 2 and pager["last_error"] == "timed out"
    assert "slack" not in report["receivers"]["failures"]

    text = run(cli, env, "status").output
    assert "beat leader: worker-1:42" in text
    assert f"queues: {queue}=3" in text
    assert "prometheus=down" in text
    assert "reload: 1 problem(s)" in text
    assert "pager: 2 failed" in text
    row = next(line for line in text.splitlines() if line.startswith("api "))
    assert "2026-01-01T00:03:00Z" in row and " err " in row


def test_status_without_a_beat_leader_says_nothing_is_scheduled(
    cli: click.Group, env: dict[str, str]
) -> None:
    result = run(cli, env, "status")
    assert result.exit_code == 0, result.output
    assert "beat leader: NONE (nothing is being scheduled)" in result.output
    assert "api" in result.output and "never" in result.output


def test_history_filters_by_alertname_and_time_and_prints_json_or_a_table(
    cli: click.Group, env: dict[str, str]
) -> None:
    now = time.time()
    history = History(env["ALERTING_HISTORY_URL"], retention=36500 * 86400.0)
    up = NotifyAlert("firing", {"alertname": "Up", "job": "api"}, {}, now)
    other = NotifyAlert("firing", {"alertname": "Other"}, {}, now)
    history.record_notification("pager", "sent", alerts=[up], integration="pagerduty", at=now - 3 * 86400)
    history.record_notification("pager", "failed", alerts=[up], error="HTTP 500", at=now - 3600)
    history.record_notification("slack", "sent", alerts=[other], at=now - 60)
    history.close()

    recent = json.loads(run(cli, env, "history", "--alertname", "Up", "--format", "json").output)
    assert [(r["receiver"], r["outcome"], r["error"]) for r in recent] == [("pager", "failed", "HTTP 500")]
    week = json.loads(
        run(cli, env, "history", "--alertname", "Up", "--since", "7d", "--format", "json").output
    )
    assert [r["outcome"] for r in week] == ["sent", "failed"]
    everything = json.loads(
        run(cli, env, "history", "--since", "1970-01-02T00:00:00Z", "--format", "json").output
    )
    assert [r["alertname"] for r in everything] == ["Up", "Up", "Other"]

    table = run(cli, env, "history").output.splitlines()
    assert table[0].split() == ["TIME", "KIND", "ALERTNAME", "WHAT", "DETAIL", "LABELS"]
    assert "failed pager" in table[1] and "attempt 1: HTTP 500" in table[1] and "job=api" in table[1]


def test_history_rejects_a_since_it_cannot_read(cli: click.Group, env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["history", "--since", "yesterday"], env=env)
    assert result.exit_code == 2
    assert "'yesterday' is not a duration (24h, 30m, 7d), RFC3339 time or unix seconds" in result.output


@pytest.mark.parametrize("command", [["status"], ["alerts"]])
def test_an_unreachable_redis_is_named_without_its_password(
    cli: click.Group, env: dict[str, str], command: list[str]
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(cli, command, env={**env, "ALERTING_REDIS_URL": url})
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://[REDACTED]@127.0.0.1" in result.output
    assert "hunter2" not in result.output
