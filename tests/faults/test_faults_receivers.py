"""Real receivers failing for a while, with the real worker: Slack answering 500 then 429 with
Retry-After, PagerDuty answering 5xx, the SMTP server refusing connections. When each recovers,
the notification arrives exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.support.fakes import PAGERDUTY_KEY, SLACK_TOKEN, LocalCA, PagerDutyFake, SlackFake, smtp_server
from tests.support.faultkit import FakePrometheus, alert_rule, write_rules
from tests.support.httpfake import Reply
from tests.support.net import free_port, wait_until
from tests.support.worker import Worker, worker_env

pytestmark = pytest.mark.faults


def test_slack_pagerduty_and_smtp_failing_then_recovering_deliver_exactly_once(
    tmp_path: Path, prefix: str, ca: LocalCA, slack: SlackFake, pagerduty: PagerDutyFake
) -> None:
    smtp_port = free_port()  # nothing listens here yet: connections are refused
    rules = write_rules(
        tmp_path / "rules" / "recv.yml",
        [
            {
                "name": "recv",
                "interval": "1s",
                "rules": [alert_rule("ReceiversDown", "probe_metric > 0", labels={"severity": "critical"})],
            }
        ],
    )
    tls = {"http_config": {"tls_config": {"ca_file": ca.ca_file}}}
    with FakePrometheus() as prom:
        slack.server.fail_next(Reply(500, "internal_error"), times=3)
        slack.server.fail_next(
            Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}), times=2
        )
        pagerduty.server.fail_next(Reply(502, "Bad Gateway"), times=4)
        config = tmp_path / "alerting.yml"
        route = {"group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s", "continue": True}
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "slack",
                        "routes": [
                            {**route, "receiver": "slack"},
                            {**route, "receiver": "pagerduty"},
                            {**route, "receiver": "email"},
                        ],
                    },
                    "receivers": [
                        {
                            "name": "slack",
                            "slack_configs": [
                                {"token": SLACK_TOKEN, "api_url": slack.api_url, "channel": "#alerts", **tls}
                            ],
                        },
                        {
                            "name": "pagerduty",
                            "pagerduty_configs": [
                                {
                                    "routing_key": PAGERDUTY_KEY,
                                    "url": f"{pagerduty.server.url}/v2/enqueue",
                                    **tls,
                                }
                            ],
                        },
                        {
                            "name": "email",
                            "email_configs": [
                                {
                                    "to": "oncall@example.com",
                                    "from": "alerts@example.com",
                                    "smarthost": f"127.0.0.1:{smtp_port}",
                                    "require_tls": False,
                                }
                            ],
                        },
                    ],
                }
            )
        )
        env = worker_env(tmp_path, rules=rules, config=config, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            prom.firing = True
            wait_until(
                lambda: len(slack.server.requests) >= 5, timeout=90, what="Slack's failures to be used"
            )
            wait_until(
                lambda: len(pagerduty.server.requests) >= 4,
                timeout=90,
                what="PagerDuty's failures to be used",
            )
            wait_until(
                lambda: sum(e.get("receiver") == "email" for e in worker.events("notify.retry")) >= 3,
                timeout=90,
                what="email retries",
            )
            with smtp_server(port=smtp_port) as (_, box):
                wait_until(
                    lambda: slack.messages and pagerduty.incidents and box.messages,
                    timeout=90,
                    what="delivery",
                )
                prom.firing = False
                wait_until(
                    lambda: "resolved" in pagerduty.incidents.values(),
                    timeout=60,
                    what="the PagerDuty resolve",
                )
                time.sleep(6)  # three group_intervals: any duplicate would be out by now
            retried = {e.get("receiver") for e in worker.events("notify.retry")}

    assert retried >= {"slack", "pagerduty", "email"}
    # Slack: one message after five refusals (send_resolved is off for Slack by default).
    assert len(slack.messages) == 1
    # Every refusal was used up before it went through; a retry whose earlier attempt's outcome is
    # unknown (a 500) may first look for its message in the channel's history, so not every
    # refused request is a chat.postMessage.
    assert len(slack.server.requests) >= 3 + 2 + 1
    # PagerDuty: one accepted trigger after the 502s, then one resolve for the same incident.
    actions = [e["event_action"] for e in pagerduty.events]
    assert actions.count("resolve") == 1
    assert actions.count("trigger") == 4 + 1
    assert list(pagerduty.incidents.values()) == ["resolved"]
    # Email: one message once the server listens (send_resolved is off for email by default).
    assert len(box.messages) == 1
    assert b"ReceiversDown" in box.messages[0][2]
