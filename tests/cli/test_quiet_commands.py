"""Commands say what was asked and nothing else: the shipped alerting.yml's receivers without
credentials are `check`'s warnings, not every command's; ``--format json`` output is JSON only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.net import REDIS_URL
from tests.support.worker import alerting

pytestmark = pytest.mark.e2e

# The receivers' variables the shipped alerting.yml reads; unset, so its receivers print instead.
SECRETS = ("HEARTBEAT_URL", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "SMS_TO")


@pytest.fixture
def env(tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in (*SECRETS, "ALERT_EMAIL_TO", "ALERTING_CONFIG", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    return {
        "ALERTING_REDIS_URL": REDIS_URL,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_HISTORY_URL": f"sqlite:///{tmp_path / 'history.db'}",
    }


def test_routes_test_prints_only_the_receivers(env: dict[str, str]) -> None:
    result = alerting("routes", "test", "alertname=Watchdog", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "heartbeat\n", "")


def test_routes_show_prints_only_the_tree(env: dict[str, str]) -> None:
    result = alerting("routes", "show", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Routing tree:\n") and result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--format", "json"),
        ("alerts", "--format", "json"),
        ("history", "--format", "json"),
        ("silence", "list", "--format", "json"),
    ],
    ids=lambda args: args[0],
)
def test_json_output_parses_and_carries_no_warnings(env: dict[str, str], args: tuple[str, ...]) -> None:
    result = alerting(*args, env=env)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "warning" not in result.stdout.lower() and "console instead" not in result.stdout
    assert "print to the console" not in result.stderr


def test_check_warns_once_per_receiver_that_prints_to_the_console(env: dict[str, str]) -> None:
    result = alerting("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith(": ok\n")
    warnings = result.stderr.splitlines()
    assert (
        "warning: alerting.yml: heartbeat/webhook_configs[0] prints to the console until configured "
        "(HEARTBEAT_URL not set)"
    ) in warnings
    assert all(line.startswith("warning: alerting.yml: ") for line in warnings), warnings
    assert len(warnings) == len(set(warnings))


def test_check_is_silent_about_receivers_that_are_configured(env: dict[str, str]) -> None:
    configured = dict.fromkeys(SECRETS, "x")
    configured.update(
        HEARTBEAT_URL="https://hb.example.com/ping",
        SLACK_WEBHOOK_URL="https://hooks.slack.com/services/T/B/x",
        SLACK_BOT_TOKEN="",
        SMS_TO="+15555550100",
        ALERT_EMAIL_TO="oncall@example.com",
    )
    result = alerting("check", env={**env, **configured, "PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "heartbeat/webhook_configs[0]" not in result.stderr
