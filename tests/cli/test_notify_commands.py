"""``alerting notify test RECEIVER`` against local Slack, PagerDuty and SMTP servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from alerting.cli.main import cli
from alerting.cli.notify import TEST_ALERTNAME, send_test
from alerting.config.yamlfile import load_file
from alerting.errors import ConfigError
from alerting.notify.receivers.pagerduty import dedup_key
from tests.support.fakes import (
    PAGERDUTY_KEY,
    SLACK_TOKEN,
    LocalCA,
    PagerDutyFake,
    SlackFake,
    smtp_server,
)
from tests.support.httpfake import Reply


def write_config(
    tmp_path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, smtp_port: int
) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(
        f"""\
global:
  smtp_smarthost: 127.0.0.1:{smtp_port}
  smtp_from: alerts@example.com
  smtp_require_tls: false
receivers:
  - name: oncall
    pagerduty_configs:
      - routing_key: ${{TEST_PD_KEY}}
        url: {pagerduty.server.url}/v2/enqueue
        http_config: {{tls_config: {{ca_file: {ca.ca_file}}}}}
    slack_configs:
      - token: {SLACK_TOKEN}
        api_url: {slack.api_url}
        channel: "#alerts"
        send_resolved: true
        http_config: {{tls_config: {{ca_file: {ca.ca_file}}}}}
    email_configs:
      - to: oncall@example.com
  - name: empty
"""
    )
    return path


def test_notify_test_reaches_every_integration_and_resolve_closes_it(
    tmp_path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PD_KEY", PAGERDUTY_KEY)
    with smtp_server() as (port, box):
        path = write_config(tmp_path, slack, pagerduty, ca, port)
        result = CliRunner().invoke(
            cli, ["notify", "test", "oncall", "--severity", "P1", "--resolve", "--config", str(path)]
        )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "pagerduty_configs[0]: firing: sent",
        "pagerduty_configs[0]: resolved: sent",
        "slack_configs[0]: firing: sent",
        "slack_configs[0]: resolved: sent",
        "email_configs[0]: firing: sent",
        "email_configs[0]: resolved: skipped (send_resolved is false)",
    ]
    trigger = pagerduty.events[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == f"[FIRING:1] {TEST_ALERTNAME} oncall (P1)"
    assert list(pagerduty.incidents.values()) == ["resolved"]
    top, reply = slack.calls("chat.postMessage")
    assert reply["thread_ts"] == slack.calls("chat.update")[0]["ts"]
    assert "Test notification for receiver oncall" in str(top)
    assert len(box.messages) == 1


def test_failed_delivery_is_reported_and_exits_nonzero(
    tmp_path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PD_KEY", "y" * 32)  # not a key PagerDuty knows
    slack.server.fail_next(Reply(200, {"ok": False, "error": "invalid_auth"}))
    with smtp_server() as (port, _):
        path = write_config(tmp_path, slack, pagerduty, ca, port)
        result = CliRunner().invoke(cli, ["notify", "test", "oncall", "--config", str(path)])
    assert result.exit_code == 1
    assert (
        "pagerduty_configs[0]: firing: FAILED (permanent): PagerDuty rejected the event (400)"
        in result.output
    )
    assert (
        "slack_configs[0]: firing: FAILED (permanent): Slack chat.postMessage failed: invalid_auth"
        in result.output
    )
    assert "email_configs[0]: firing: sent" in result.output
    assert "Error: 2 of 3 deliveries failed" in result.output


def test_repeated_tests_reuse_one_pagerduty_incident(
    tmp_path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PD_KEY", PAGERDUTY_KEY)
    with smtp_server() as (port, _):
        document = load_file(write_config(tmp_path, slack, pagerduty, ca, port), ConfigError)
        document["receivers"][0]["pagerduty_configs"][0]["routing_key"] = PAGERDUTY_KEY
        for _ in range(2):
            send_test("oncall", document, now=1_767_225_600.0)
    assert list(pagerduty.incidents) == [dedup_key('{}/notify-test:{receiver="oncall"}')]


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("nobody", 'no receiver named "nobody" (receivers: oncall, empty)'),
        ("empty", 'receiver "empty" has no integrations to test'),
    ],
)
def test_unknown_or_empty_receiver_is_a_clear_error(
    tmp_path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, receiver: str, message: str
) -> None:
    path = write_config(tmp_path, slack, pagerduty, ca, 25)
    result = CliRunner().invoke(
        cli, ["notify", "test", receiver, "--config", str(path)], env={"TEST_PD_KEY": "k"}
    )
    assert result.exit_code == 1
    assert message in result.output
    assert slack.server.requests == [] and pagerduty.events == []


def test_missing_config_file_names_the_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["notify", "test", "oncall", "--config", str(tmp_path / "nope.yml")])
    assert result.exit_code == 1 and "nope.yml: no such file" in result.output


def test_integration_config_errors_point_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text("receivers:\n  - name: team\n    slack_configs:\n      - chanel: '#a'\n")
    result = CliRunner().invoke(cli, ["notify", "test", "team", "--config", str(path)])
    assert result.exit_code == 1
    assert f'{path}:4:9: unknown field "chanel" in slack_configs (did you mean "channel"?)' in result.output
