"""``alerting check`` tells a rule file from an Alertmanager configuration by what it holds, and the
commands that evaluate rules stop when a rule file does not load."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from alerting.cli.main import cli

RULES = """\
groups:
  - name: g
    rules:
      - alert: Service Down
        expr: up == 0
"""
ALERTMANAGER = """\
global:
  resolve_timeout: 5m
route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/hook
"""
BROKEN_ALERTMANAGER = ALERTMANAGER.replace("receiver: hook", "receiver: nowhere")


def run(tmp_path: Path, *args: str) -> Result:
    # No configuration or rule directory of the repository's own: only what the test names.
    env = {"ALERTING_CONFIG": str(tmp_path / "absent.yml"), "ALERTING_RULES": str(tmp_path / "absent")}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("name", ["alertmanager.yml", "am.yml", "alerting.yaml", "rules.yml"])
def test_an_alertmanager_configuration_is_checked_as_one_under_any_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(ALERTMANAGER)
    result = run(tmp_path, "check", str(path))
    assert (result.exit_code, result.stdout) == (0, "1 config file(s): ok\n")


def test_a_broken_alertmanager_configuration_gets_configuration_errors(tmp_path: Path) -> None:
    path = tmp_path / "am.yml"
    path.write_text(BROKEN_ALERTMANAGER)
    result = run(tmp_path, "check", str(path))
    assert result.exit_code == 1
    assert 'unknown field "global"' not in result.stdout
    assert '"nowhere"' in result.stdout and result.stdout.startswith(f"{path}:")
    assert result.stdout.endswith("1 config file(s): 1 problem(s)\n")


def test_a_rule_file_is_checked_as_one_under_any_name(tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(RULES)
    result = run(tmp_path, "check", str(path))
    assert (result.exit_code, result.stdout) == (0, "1 rules in 1 groups: ok\n")


def test_a_directory_of_both_is_checked_as_both(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "alertmanager.yml").write_text(ALERTMANAGER)
    (tmp_path / "conf" / "rules").mkdir()
    (tmp_path / "conf" / "rules" / "api.yml").write_text(RULES)
    result = run(tmp_path, "check", str(tmp_path / "conf"))
    assert (result.exit_code, result.stdout) == (0, "1 rules in 1 groups, 1 config file(s): ok\n")

    (tmp_path / "conf" / "alertmanager.yml").write_text(BROKEN_ALERTMANAGER)
    (tmp_path / "conf" / "rules" / "bad.yml").write_text(
        RULES.replace("name: g", "name: h").replace("up", "up(")
    )
    result = run(tmp_path, "check", str(tmp_path / "conf"))
    assert result.exit_code == 1
    assert result.stdout.endswith("1 rules in 1 groups, 1 config file(s): 2 problem(s)\n")


BROKEN_RULES = RULES.replace("up == 0", "up ==")
EVALUATING = [
    ("backtest", "--from", "0", "--to", "60", "--format", "json"),
    ("eval", "--at", "60", "--format", "json"),
]


@pytest.mark.parametrize("command", EVALUATING, ids=[c[0] for c in EVALUATING])
def test_evaluating_commands_exit_nonzero_when_a_rule_file_does_not_load(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "good.yml").write_text(RULES.replace("name: g", "name: other"))
    (tmp_path / "bad.yml").write_text(BROKEN_RULES)
    result = run(tmp_path, *command, "--rules", str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout == ""  # no `[]` that reads as "nothing would have fired"
    assert f"{tmp_path / 'bad.yml'}:5:15: invalid PromQL in expr" in result.stderr
    assert "1 problem(s) in the rule files; nothing evaluated" in result.stderr


@pytest.mark.parametrize("command", EVALUATING, ids=[c[0] for c in EVALUATING])
def test_evaluating_commands_say_when_given_an_alertmanager_configuration(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "alertmanager.yml").write_text(ALERTMANAGER)
    result = run(tmp_path, *command, "--rules", str(tmp_path / "alertmanager.yml"))
    assert result.exit_code == 1
    assert "an Alertmanager configuration, not a rule file" in result.stderr


RECORDING = RULES + "      - record: job:up:sum\n        expr: sum by (job) (up)\n"


def test_recording_rules_are_counted_and_need_a_remote_write_target(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RECORDING)
    alone = run(tmp_path, "check", str(rules))
    assert (alone.exit_code, alone.stdout) == (0, "1 rules and 1 recording rules in 1 groups: ok\n")
    assert "1 recording rule(s) and no remote_write target" in alone.stderr
    config = tmp_path / "am.yml"
    config.write_text(ALERTMANAGER + "remote_write:\n  - url: http://127.0.0.1:9/api/v1/write\n")
    both = run(tmp_path, "check", str(rules), str(config))
    assert both.exit_code == 0
    assert "remote_write" not in both.stderr


def test_a_bad_remote_write_entry_is_reported_where_it_is(tmp_path: Path) -> None:
    config = tmp_path / "am.yml"
    config.write_text(
        ALERTMANAGER + "remote_write:\n  - url: http://127.0.0.1:9/api/v1/write\n    remote_timeot: 5s\n"
    )
    result = run(tmp_path, "check", str(config))
    assert result.exit_code == 1
    assert f"{config}:11:5:" in result.stdout and "remote_timeot" in result.stdout
