"""The ``alerting`` command as users run it: check, eval (with Redis state), backtest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from alerting.core import fingerprint
from alerting.ops.metrics import StateCollector
from alerting.rules.state import StateStore
from tests.support.net import REDIS_URL
from tests.support.prometheus import PrometheusServer, openmetrics
from tests.support.worker import alerting

T0 = 1767225600
RULES = """\
groups:
  - name: cli
    interval: 1m
    rules:
      - alert: Busy
        expr: busy > 1
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.host }} busy at {{ $value }}"}
"""


@pytest.fixture(scope="module")
def prometheus() -> PrometheusServer:
    points = [(T0 + 60 * i, 5.0) for i in range(10)]
    with PrometheusServer(backfill=openmetrics([("busy", {"host": "web1"}, points)])) as prom:
        yield prom


def test_check_prints_problems_and_a_summary_and_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(RULES)
    (tmp_path / "bad.yml").write_text(RULES.replace("name: cli", "name: x").replace("for: 1m", "for: soon"))
    result = alerting("check", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f'{tmp_path / "bad.yml"}:7:14: for: not a valid duration string: "soon"',
        "1 rules in 1 groups: 1 problem(s)",
    ]


def test_check_clean_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(RULES)
    result = alerting("check", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "1 rules in 1 groups: ok\n")


def test_check_shipped_rule_pack_is_clean() -> None:
    result = alerting("check", "rules/")
    assert result.returncode == 0, result.stdout


def test_eval_saves_state_in_redis_so_the_next_eval_fires(
    prometheus: PrometheusServer, tmp_path: Path, prefix: str
) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    env = {"PROMETHEUS_URL": prometheus.url, "ALERTING_REDIS_URL": REDIS_URL, "ALERTING_REDIS_PREFIX": prefix}
    first = alerting("eval", "--rules", str(tmp_path), "--at", str(T0 + 60), "--format", "json", env=env)
    second = alerting(
        "eval", "--rules", str(tmp_path), "--at", "2026-01-01T00:02:00Z", "--format", "json", env=env
    )
    assert first.returncode == 0, first.stderr
    (pending,) = json.loads(first.stdout)
    (firing,) = json.loads(second.stdout)
    assert pending == {
        "group": "cli",
        "alertname": "Busy",
        "labels": {"alertname": "Busy", "host": "web1", "severity": "warning"},
        "annotations": {"summary": "web1 busy at 5"},
        "state": "pending",
        "active_at": "2026-01-01T00:01:00Z",
        "fired_at": None,
        "resolved_at": None,
        "value": 5,
    }
    assert firing["state"] == "firing" and firing["fired_at"] == "2026-01-01T00:02:00Z"
    table = alerting("eval", "--rules", str(tmp_path), "--at", str(T0 + 180), env=env)
    assert table.stdout.splitlines()[0].split() == [
        "GROUP",
        "ALERTNAME",
        "STATE",
        "VALUE",
        "ACTIVE_AT",
        "LABELS",
    ]
    assert table.stdout.splitlines()[1].split() == [
        "cli",
        "Busy",
        "firing",
        "5",
        "2026-01-01T00:01:00Z",
        "host=web1,severity=warning",
    ]


def test_an_alert_name_with_spaces_and_symbols_works_end_to_end(
    prometheus: PrometheusServer, tmp_path: Path, prefix: str, redis_client: redis.Redis
) -> None:
    # Prometheus accepts any alert name; it is a label value everywhere after the rule file.
    name = 'Busy > 80%, {really} "now"'
    (tmp_path / "r.yml").write_text(RULES.replace("alert: Busy", f"alert: '{name}'"))
    env = {"PROMETHEUS_URL": prometheus.url, "ALERTING_REDIS_URL": REDIS_URL, "ALERTING_REDIS_PREFIX": prefix}
    check = alerting("check", str(tmp_path))
    assert (check.returncode, check.stdout) == (0, "1 rules in 1 groups: ok\n")
    for at in (T0 + 60, T0 + 120):
        result = alerting("eval", "--rules", str(tmp_path), "--at", str(at), "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
    (firing,) = json.loads(result.stdout)
    assert (firing["alertname"], firing["labels"]["alertname"], firing["state"]) == (name, name, "firing")
    store = StateStore(redis_client, prefix)
    (group_id,) = store.groups()
    ((key, alerts),) = store.load_group(group_id).items()
    assert key == json.dumps(name) + '{severity="warning"}'
    (alert,) = alerts.values()
    assert alert.fingerprint == fingerprint({**firing["labels"]})
    registry = CollectorRegistry()
    registry.register(StateCollector(store))
    exposition = generate_latest(registry).decode()
    assert 'alertname="Busy > 80%, {really} \\"now\\""' in exposition
    assert 'ALERTS{alertname="Busy > 80%, {really} \\"now\\"",alertstate="firing"' in exposition
    table = alerting("eval", "--rules", str(tmp_path), "--at", str(T0 + 180), env=env)
    assert f"cli    {name}  firing" in table.stdout


def test_eval_reports_an_unreachable_redis_clearly(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    result = alerting(
        "eval",
        "--rules",
        str(tmp_path),
        env={"ALERTING_REDIS_URL": "redis://127.0.0.1:1/0", "PROMETHEUS_URL": "http://127.0.0.1:1"},
    )
    assert result.returncode == 1
    assert "Redis at redis://127.0.0.1:1/0" in result.stderr


def test_backtest_table_shows_transitions(prometheus: PrometheusServer, tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    result = alerting(
        "backtest",
        "--from",
        str(T0),
        "--to",
        str(T0 + 120),
        "--rules",
        str(tmp_path),
        env={"PROMETHEUS_URL": prometheus.url},
    )
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0] == "== 2026-01-01T00:00:00Z"
    assert "-> pending  cli/Busy host=web1,severity=warning" in lines
    assert "-> firing   cli/Busy host=web1,severity=warning" in lines
    assert lines.index("== 2026-01-01T00:01:00Z") < lines.index(
        "-> firing   cli/Busy host=web1,severity=warning"
    )


def test_backtest_reports_what_recording_rules_would_have_recorded(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    (tmp_path / "r.yml").write_text(
        RULES + "      - record: host:busy:doubled\n        expr: busy * 2\n        labels: {team: core}\n"
    )
    args = ["backtest", "--from", str(T0), "--to", str(T0 + 60), "--rules", str(tmp_path)]
    result = alerting(*args, env={"PROMETHEUS_URL": prometheus.url})
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    recorded = '== recorded cli/host:busy:doubled: 1 series: {host="web1",team="core"} 10'
    assert lines.count(recorded) == 2  # at both instants
    as_json = alerting(*args, "--format", "json", env={"PROMETHEUS_URL": prometheus.url})
    frames = json.loads(as_json.stdout)
    assert frames[0]["recorded"] == [
        {
            "group": "cli",
            "record": "host:busy:doubled",
            "series": [
                {"labels": {"__name__": "host:busy:doubled", "host": "web1", "team": "core"}, "value": "10"}
            ],
        }
    ]


def test_backtest_rejects_a_bad_step() -> None:
    result = alerting("backtest", "--from", "0", "--to", "60", "--step", "1.5m")
    assert result.returncode == 2 and 'not a valid duration string: "1.5m"' in result.stderr


@pytest.mark.parametrize(
    "args,out",
    [
        (
            [
                "{{ $labels.job | toUpper }} at {{ $value | humanizePercentage }}",
                "--labels",
                "job=api",
                "--value",
                "0.959",
            ],
            "API at 95.9%\n",
        ),
        (["{{ $value }}", "--value", "1234567"], "1.234567e+06\n"),
        (["{{ $value }}", "--value", "+Inf"], "+Inf\n"),
        (["{{ $labels }}", "--labels", "b=2", "--labels", "a=1"], "map[a:1 b:2]\n"),
    ],
)
def test_render_prints_what_prometheus_would(args: list[str], out: str) -> None:
    result = alerting("render", *args)
    assert (result.returncode, result.stdout) == (0, out), result.stderr


def test_render_reports_a_template_that_does_not_parse() -> None:
    result = alerting("render", "{{ if }}")
    assert result.returncode == 1 and "template does not parse: missing value for if" in result.stderr
