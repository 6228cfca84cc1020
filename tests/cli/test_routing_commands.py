"""`alerting silence ...` and `alerting routes ...` against a real Redis."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from alerting.cli.routes import register
from alerting.notify.store import NotifyStore
from tests.support.routing_redis import REDIS_URL, isolated_redis

CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity=~"(?i)critical|p1"']
      receiver: pager
      continue: true
      group_wait: 10s
    - matchers: ['team="db"']
      receiver: dba
      group_by: ['...']
      mute_time_intervals: [night]
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "00:00", end_time: "06:00"}]
receivers:
  - name: default
    console_configs: [{}]
  - name: pager
    console_configs: [{}]
  - name: dba
    console_configs: [{}]
"""


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("alerting")
    register(group)
    return group


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyStore]:
    config = tmp_path / "alerting.yml"
    config.write_text(textwrap.dedent(CONFIG))
    with isolated_redis() as (client, prefix):
        monkeypatch.setenv("ALERTING_REDIS_URL", REDIS_URL)
        monkeypatch.setenv("ALERTING_REDIS_PREFIX", prefix)
        monkeypatch.setenv("ALERTING_CONFIG", str(config))
        yield NotifyStore(client, prefix)


def run(cli: click.Group, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_silence_add_list_expire(cli: click.Group, env: NotifyStore) -> None:
    code, out, _ = run(
        cli,
        "silence",
        "add",
        "alertname=DiskFull",
        'instance=~"db.*"',
        "--duration",
        "2h",
        "--comment",
        "resize",
    )
    assert code == 0
    silence_id = out.strip()
    stored = env.get_silence(silence_id)
    assert stored is not None and stored.comment == "resize"
    assert 7190 < stored.ends_at - stored.starts_at <= 7200
    code, out, _ = run(cli, "silence", "list")
    assert code == 0 and silence_id in out and 'instance=~"db.*"' in out and "active" in out
    code, out, _ = run(cli, "silence", "list", "--format", "json")
    (listed,) = json.loads(out)
    assert listed["id"] == silence_id and listed["state"] == "active"

    assert run(cli, "silence", "expire", silence_id)[0] == 0
    assert silence_id not in run(cli, "silence", "list")[1]
    assert "expired" in run(cli, "silence", "list", "--expired")[1]
    code, _, err = run(cli, "silence", "expire", silence_id)
    assert code == 1 and "already expired" in err


def test_silence_with_an_end_time_and_a_bare_alert_name(cli: click.Group, env: NotifyStore) -> None:
    end = time.time() + 600
    code, out, _ = run(
        cli, "silence", "add", "Watchdog", "--end", str(end), "--comment", "noise", "--author", "me"
    )
    assert code == 0
    stored = env.get_silence(out.strip())
    assert stored is not None and stored.created_by == "me" and abs(stored.ends_at - end) < 1e-6
    assert [str(m) for m in stored.matchers] == ['alertname="Watchdog"']


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (['severity=~".*"', "--comment", "x"], "must not match the empty string"),
        (["a=b", "--duration", "1h", "--end", "2030-01-01T00:00:00Z", "--comment", "x"], "not both"),
        (["a=b", "--end", "2000-01-01T00:00:00Z", "--comment", "x"], "end in the future"),
        (["a=b", "--duration", "1.5h", "--comment", "x"], "not a valid duration"),
        (['a="unterminated', "--comment", "x"], "unescaped double quote"),
        (["a=b", "--end", "tomorrow", "--comment", "x"], "neither RFC3339"),
    ],
)
def test_bad_silences_are_refused(cli: click.Group, env: NotifyStore, args: list[str], message: str) -> None:
    code, _, err = run(cli, "silence", "add", *args)
    assert code != 0 and message in err
    assert env.silences(time.time()) == []


def test_expiring_an_unknown_silence_fails(cli: click.Group, env: NotifyStore) -> None:
    code, _, err = run(cli, "silence", "expire", "no-such-id")
    assert code == 1 and "no silence with id no-such-id" in err


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=X", "severity=P1", "team=db"], "pager,dba"),
        (["severity=critical"], "pager"),
        (["team=db"], "dba"),
        (["alertname=X"], "default"),
    ],
)
def test_routes_test_prints_receivers_like_amtool(
    cli: click.Group, env: NotifyStore, labels: list[str], receivers: str
) -> None:
    code, out, _ = run(cli, "routes", "test", *labels)
    assert code == 0 and out == receivers + "\n"


def test_routes_test_can_verify_the_expected_receivers(cli: click.Group, env: NotifyStore) -> None:
    assert run(cli, "routes", "test", "severity=P1", "--verify-receivers", "pager")[0] == 0
    code, _, err = run(cli, "routes", "test", "severity=P1", "--verify-receivers", "slack")
    assert code == 1 and "expected receivers 'slack'" in err


def test_routes_show_prints_the_tree(cli: click.Group, env: NotifyStore) -> None:
    code, out, _ = run(cli, "routes", "show")
    assert code == 0
    assert out.splitlines() == [
        "Routing tree:",
        "└── default-route  receiver: default  group_by: [alertname]  timers: 30s/5m/4h",
        '    ├── {severity=~"(?i)critical|p1"}  continue: true  receiver: pager  group_by: [alertname]  '
        "timers: 10s/5m/4h",
        '    └── {team="db"}  receiver: dba  group_by: [...]  timers: 30s/5m/4h  mute: night',
    ]


def test_routes_commands_report_config_errors_with_positions(
    cli: click.Group, env: NotifyStore, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: default\n")
    code, _, err = run(cli, "routes", "show", "--config", str(broken))
    assert code == 1 and f'{broken}:2:13: undefined receiver "nobody" used in route' in err
