"""``alerting ack`` against Redis: what it says when nothing matches or the input is wrong, and
``alerting routes show`` printing a route's escalation steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.worker import alerting

CONFIG = """\
route:
  receiver: page
  routes:
    - matchers: ['severity="critical"']
      escalate:
        - {after: 15m, receiver: lead}
        - {after: 30m, receiver: incident}
receivers:
  - name: page
  - name: lead
  - name: incident
"""


@pytest.fixture
def env(tmp_path: Path, prefix: str) -> dict[str, str]:
    config = tmp_path / "alerting.yml"
    config.write_text(CONFIG)
    return {"ALERTING_REDIS_PREFIX": prefix, "ALERTING_CONFIG": str(config)}


def test_routes_show_prints_the_escalation_steps(env: dict[str, str]) -> None:
    shown = alerting("routes", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].endswith("escalate: 15m -> lead, 30m -> incident")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alertname=DiskFull"], 'no alert group has a firing alert matching {alertname="DiskFull"}'),
        (["alertname=DiskFull", "--duration", "soon"], 'not a valid duration string: "soon"'),
        (["alertname=~("], "MATCHERS"),
        (["expire", "0123abcd"], "no acknowledgement with id 0123abcd"),
    ],
)
def test_ack_says_what_is_wrong(env: dict[str, str], args: list[str], message: str) -> None:
    result = alerting("ack", *args, env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_ack_list_without_acknowledgements(env: dict[str, str]) -> None:
    listed = alerting("ack", "list", env=env)
    assert (listed.returncode, listed.stdout) == (0, "no acknowledgements\n")
    assert json.loads(alerting("ack", "list", "--format", "json", env=env).stdout) == []


def test_status_text_lists_escalating_and_acknowledged_groups() -> None:
    from alerting.cli.escalations import render_escalations

    report = {
        "escalations": [
            {"group_key": '{}:{alertname="A"}', "first_notified": "T0", "steps": {"lead": "T1"}},
            {"group_key": '{}:{alertname="B"}', "first_notified": "T0", "steps": {}},
        ],
        "acknowledgements": [
            {
                "group_key": '{}:{alertname="B"}',
                "by": "alice",
                "source": "cli",
                "expires_at": "T9",
                "comment": "x",
            }
        ],
    }
    assert render_escalations(report) == [
        "escalating groups (first notified, steps reached):",
        '  {}:{alertname="A"}: since T0; lead at T1',
        '  {}:{alertname="B"}: since T0; no step reached yet',
        "acknowledged groups:",
        '  {}:{alertname="B"}: by alice via cli until T9 (x)',
    ]
