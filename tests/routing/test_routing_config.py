"""alerting.yml loads as Alertmanager reads it, and every mistake points at its file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerting.errors import ConfigError
from alerting.worker.compose import (
    check_routing_config,
    default_routing_config,
    load_routing_config,
)

REPO = Path(__file__).resolve().parents[2]

BASE_RECEIVERS = """
receivers:
  - name: default
    console_configs: [{}]
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/hook
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_tree_inherits_receiver_grouping_and_timers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        route:
          receiver: default
          group_by: [alertname]
          group_wait: 5s
          group_interval: 1m
          repeat_interval: 2h
          routes:
            - matchers: ['team="db"']
              repeat_interval: 30m
              routes:
                - match: {severity: critical}
                  receiver: hook
                  group_by: ['...']
                - match_re: {severity: "warn.*"}
                  group_by: []
        """
        + BASE_RECEIVERS,
    )
    config = load_routing_config(path)
    root = config.route
    db = root.routes[0]
    critical, warning = db.routes
    assert (db.receiver, db.group_by, db.group_wait, db.group_interval, db.repeat_interval) == (
        "default",
        ("alertname",),
        5.0,
        60.0,
        1800.0,
    )
    assert critical.receiver == "hook" and critical.group_by_all and critical.repeat_interval == 1800.0
    # An empty group_by is read as an absent one, as Alertmanager reads it: inherited.
    assert warning.group_by == ("alertname",) and not warning.group_by_all and warning.receiver == "default"
    assert critical.key == '{}/{team="db"}/{severity="critical"}'
    assert warning.key == '{}/{team="db"}/{severity=~"warn.*"}'
    assert [r.id for r in root.walk()] == ["0", "0.0", "0.0.0", "0.0.1"]


def test_alertmanager_defaults_apply(tmp_path: Path) -> None:
    config = load_routing_config(write(tmp_path, "route: {receiver: default}\n" + BASE_RECEIVERS))
    assert (config.route.group_wait, config.route.group_interval, config.route.repeat_interval) == (
        30.0,
        300.0,
        14400.0,
    )
    assert config.route.group_by == () and config.global_config["resolve_timeout"] == 300.0


def test_our_datasources_and_evaluation_sections_are_accepted_as_they_are(tmp_path: Path) -> None:
    config = load_routing_config(
        write(
            tmp_path,
            'datasources:\n  app: {type: sql, url: "sqlite:///app.db"}\nevaluation: {interval: 1m}\n'
            "route: {receiver: default}\n" + BASE_RECEIVERS,
        )
    )
    assert config.datasources == {"app": {"type": "sql", "url": "sqlite:///app.db"}}
    assert config.evaluation == {"interval": "1m"}


BAD = [
    (
        "unknown receiver",
        "route:\n  receiver: nobody\n",
        '2:13: undefined receiver "nobody" used in route',
    ),
    (
        "unknown receiver in a child, with a suggestion",
        "route:\n  receiver: default\n  routes:\n    - receiver: hok\n",
        '4:17: undefined receiver "hok" used in route (did you mean "hook"?)',
    ),
    (
        "unknown time interval",
        "route:\n  receiver: default\n  routes:\n    - receiver: hook\n"
        "      mute_time_intervals: [weekend]\n",
        '5:29: undefined time interval "weekend" used in route',
    ),
    (
        "bad matcher",
        "route:\n  receiver: default\n  routes:\n    - matchers: ['severity=~\"(\"']\n",
        "4:18: matchers: invalid regular expression",
    ),
    (
        "bad match_re",
        "route:\n  receiver: default\n  routes:\n    - match_re: {severity: '['}\n",
        "4:28: match_re: invalid regular expression '[': missing ]: [",
    ),
    (
        "root route with matchers",
        "route:\n  receiver: default\n  matchers: ['a=b']\n",
        "2:3: the root route must not have any matchers",
    ),
    (
        "root route with continue",
        "route:\n  receiver: default\n  continue: true\n",
        "3:13: the root route cannot have continue",
    ),
    (
        "'...' mixed with labels",
        "route:\n  receiver: default\n  group_by: ['...', alertname]\n",
        "3:13: group_by cannot mix '...'",
    ),
    (
        "duplicate group_by label",
        "route:\n  receiver: default\n  group_by: [a, a]\n",
        '3:17: group_by: label "a" is listed twice',
    ),
    (
        "zero group_interval",
        "route:\n  receiver: default\n  group_interval: 0s\n",
        "3:19: group_interval cannot be zero",
    ),
    (
        "zero repeat_interval",
        "route:\n  receiver: default\n  routes:\n    - repeat_interval: 0\n",
        "4:24: repeat_interval cannot be zero",
    ),
    (
        "bad duration",
        "route:\n  receiver: default\n  group_wait: 1.5h\n",
        '3:15: group_wait: not a valid duration string: "1.5h"',
    ),
    (
        "unknown route field",
        "route:\n  receiver: default\n  group_wiat: 1s\n",
        '3:3: unknown field "group_wiat" in the root route (did you mean "group_wait"?)',
    ),
    (
        "unknown top-level field",
        "route:\n  receiver: default\ninhibit_rule: []\n",
        '3:1: unknown field "inhibit_rule" in the top level (did you mean "inhibit_rules"?)',
    ),
    (
        "duplicate receiver",
        "route:\n  receiver: default\n",
        None,  # filled below: receivers listed twice
    ),
    (
        "missing route",
        "",
        "missing required section: route",
    ),
    (
        "bad inhibit equal label",
        "route:\n  receiver: default\ninhibit_rules:\n  - source_matchers: [a=b]\n    equal: ['1x']\n",
        "5:13: equal: invalid label name '1x'",
    ),
    (
        "unsupported integration",
        "route:\n  receiver: default\n",
        None,
    ),
    (
        "webhook without url",
        "route:\n  receiver: default\n",
        None,
    ),
    (
        "bad time interval field",
        "route:\n  receiver: default\ntime_intervals:\n  - name: x\n    time_intervals:\n"
        "      - weekdays: [funday]\n",
        "6:20: 'funday' is not a valid weekday",
    ),
    (
        "bad location",
        "route:\n  receiver: default\ntime_intervals:\n  - name: x\n    time_intervals:\n"
        "      - location: Mars/Base\n",
        "unknown time zone location 'Mars/Base'",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [b for b in BAD if b[2] is not None],
    ids=lambda v: v if isinstance(v, str) and " " in v and "\n" not in v else "",
)
def test_config_errors_point_at_the_mistake(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, text + BASE_RECEIVERS)
    problems = check_routing_config(path)
    rendered = [str(p) for p in problems]
    assert any(r.startswith(str(path)) and expected in r for r in rendered), rendered
    with pytest.raises(ConfigError):
        load_routing_config(path)


@pytest.mark.parametrize(
    ("receivers", "expected"),
    [
        (
            "receivers:\n  - name: default\n    console_configs: [{}]\n  - name: default\n",
            '6:11: receiver "default" is defined twice',
        ),
        (
            "receivers:\n  - name: default\n    opsgenie_configs: [{}]\n",
            "opsgenie_configs: api_key (or api_key_file) is required",
        ),
        (
            "receivers:\n  - name: default\n    webhook_configs: [{send_resolved: true}]\n",
            "webhook_configs: url (or url_file) is required",
        ),
        (
            "receivers:\n  - name: default\n    webhok_configs: []\n",
            '5:5: unknown field "webhok_configs" in receiver "default" (did you mean "webhook_configs"?)',
        ),
        (
            "receivers:\n  - name: default\n    fallback: nowhere\n",
            'undefined fallback receiver "nowhere"',
        ),
    ],
)
def test_receiver_errors(tmp_path: Path, receivers: str, expected: str) -> None:
    path = write(tmp_path, "route:\n  receiver: default\n" + receivers)
    assert any(expected in str(p) for p in check_routing_config(path)), check_routing_config(path)


def test_every_problem_is_collected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "route:\n  receiver: nobody\n  group_wait: 1.5h\n  routes:\n    - matchers: ['a=~\"(\"']\n"
        + BASE_RECEIVERS,
    )
    assert len(check_routing_config(path)) == 3


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = write(tmp_path, "route:\n  receiver: [default\n")
    (problem,) = check_routing_config(path)
    assert str(problem).startswith(f"{path}:")


def test_missing_secret_falls_back_to_console_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROUTING_TEST_HOOK_URL", raising=False)
    path = write(
        tmp_path,
        """
        route: {receiver: team}
        receivers:
          - name: team
            webhook_configs:
              - url: ${ROUTING_TEST_HOOK_URL}
              - url: http://127.0.0.1:9/ok
        """,
    )
    config = load_routing_config(path)
    kinds = [(i.config_key, i.stands_for) for i in config.receivers["team"].integrations]
    assert kinds == [("console_configs", "webhook_configs"), ("webhook_configs", "")]
    assert len(config.warnings) == 1 and "ROUTING_TEST_HOOK_URL not set" in config.warnings[0]

    monkeypatch.setenv("ROUTING_TEST_HOOK_URL", "http://127.0.0.1:9/from-env")
    config = load_routing_config(path)
    first = config.receivers["team"].integrations[0]
    assert first.config_key == "webhook_configs" and first.integration.url == "http://127.0.0.1:9/from-env"
    assert config.warnings == ()


def test_unreadable_secret_file_falls_back_to_console(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        route: {{receiver: team}}
        receivers:
          - name: team
            webhook_configs:
              - url_file: {tmp_path}/no-such-file
        """,
    )
    config = load_routing_config(path)
    (only,) = config.receivers["team"].integrations
    assert only.stands_for == "webhook_configs" and "unreadable" in config.warnings[0]


def test_shipped_config_loads_and_routes_by_severity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "PAGERDUTY_ROUTING_KEY", "SMS_TO", "ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)
    config = load_routing_config(REPO / "alerting.yml")
    cases = {
        "critical": ["page"],
        "P1": ["page"],
        "Critical": ["page"],
        "high": ["chat"],
        "High": ["chat"],
        "warning": ["chat"],
        "P2": ["chat"],
        "P3": ["chat"],
        "Medium": ["chat"],
        "low": ["mail"],
        "Low": ["mail"],
        "info": ["mail"],
        "P4": ["mail"],
        "P5": ["default"],
        "": ["default"],
    }
    for severity, receivers in cases.items():
        labels = {"alertname": "X", "severity": severity} if severity else {"alertname": "X"}
        assert config.receivers_for(labels) == receivers, severity
    # Nothing configured in this environment: every receiver still has a console stand-in.
    assert all(r.integrations for r in config.receivers.values())
    assert len(config.warnings) == 1
    assert config.receivers["page"].fallback == "default"


def test_shipped_inhibition_mutes_warnings_while_the_same_thing_pages() -> None:
    config = load_routing_config(REPO / "alerting.yml")
    from alerting.routing.inhibit import inhibiting_source

    source = {"alertname": "Down", "instance": "a", "severity": "P1"}
    assert inhibiting_source(
        config.inhibit_rules, {"alertname": "Down", "instance": "a", "severity": "warning"}, [source]
    )
    assert not inhibiting_source(
        config.inhibit_rules, {"alertname": "Down", "instance": "b", "severity": "P2"}, [source]
    )


def test_default_config_prints_everything_to_the_console() -> None:
    config = default_routing_config()
    assert config.receivers_for({"alertname": "X", "severity": "critical"}) == ["console"]
    (only,) = config.receivers["console"].integrations
    assert only.config_key == "console_configs" and only.send_resolved
