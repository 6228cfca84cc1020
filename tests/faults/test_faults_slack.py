"""``kill -9`` of the worker while Slack has its message but the worker does not yet have Slack's
answer: after the restart the channel shows the notification once (the retry finds it by the
idempotency key in its message metadata)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from tests.support.fakes import SLACK_TOKEN, LocalCA, SlackFake
from tests.support.faultkit import FakePrometheus, alert_rule, write_rules
from tests.support.net import wait_until
from tests.support.worker import Worker, worker_env

pytestmark = pytest.mark.faults


def slack_routing(path: Path, slack: SlackFake, ca: LocalCA) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "chat",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "chat",
                        "slack_configs": [
                            {
                                "token": SLACK_TOKEN,
                                "api_url": slack.api_url,
                                "channel": "#alerts",
                                "send_resolved": True,
                                "http_config": {"tls_config": {"ca_file": ca.ca_file}},
                            }
                        ],
                    }
                ],
            }
        )
    )
    return path


def test_worker_killed_before_slacks_answer_shows_the_notification_once_after_restart(
    tmp_path: Path, prefix: str, slack: SlackFake, ca: LocalCA
) -> None:
    rules = write_rules(
        tmp_path / "rules" / "chat.yml",
        [{"name": "chat", "interval": "1s", "rules": [alert_rule("SlackKill", "probe_metric > 0")]}],
    )
    with FakePrometheus() as prom:
        env = worker_env(
            tmp_path,
            rules=rules,
            config=slack_routing(tmp_path / "alerting.yml", slack, ca),
            prefix=prefix,
            prometheus_url=prom.url,
            ALERTING_NOTIFY_LOCK_TTL="4",
        )
        slack.answer_delay = 20.0  # posted, but the answer comes too late for this worker
        worker = Worker(env).start()
        try:
            prom.firing = True
            assert slack.posted.wait(60), "nothing reached Slack"
            worker.stop(signal.SIGKILL)
            worker = Worker(env).start()
            worker.wait_for("notify.unknown_outcome", timeout=60)
            worker.wait_for("notify.sent", timeout=30)
            prom.firing = False
            wait_until(
                lambda: any("thread_ts" in m for m in slack.channel("C0ALERTS")),
                timeout=60,
                what="the resolve",
            )
            worker.wait_for_evaluations(3)
        finally:
            worker.stop()

    messages = slack.channel("C0ALERTS")
    tops = [m for m in messages if "thread_ts" not in m]
    replies = [m for m in messages if "thread_ts" in m]
    posted = [c["text"] for c in slack.calls("chat.postMessage") if "thread_ts" not in c]
    assert posted == ["[FIRING:1] SlackKill (api warning)"]  # the killed worker's post, and no other
    assert len(tops) == 1 and len(replies) == 1 and replies[0]["thread_ts"] == tops[0]["ts"]
    assert replies[0]["text"] == "[RESOLVED] SlackKill (api warning)"
