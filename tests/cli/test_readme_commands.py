"""The README's commands do what the README says."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.net import REDIS_URL, celery_queue, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_run_command_shows_the_summary_then_the_watchdog_firing_and_its_message(prefix: str) -> None:
    """What a person sees in the README's first screen: the start-up summary, the Watchdog firing
    and its notification as a message, and none of Celery's per-task lines."""
    env = {
        **os.environ,
        "RUN_SECONDS": "25",
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "ALERTING_REDIS_URL": REDIS_URL,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_CELERY_QUEUE": celery_queue(),
    }
    result = subprocess.run(["make", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "starting Prometheus" in output
    lines = output.splitlines()
    # The summary: rule files, datasources, receivers and where the console stands in, endpoints.
    ready = next(i for i, line in enumerate(lines) if " INFO  worker.ready  ready: " in line)
    summary = lines[ready : ready + 30]
    assert any(line.startswith("  rules        rules/watchdog.yml: watchdog") for line in summary), summary
    assert any(re.match(r"  datasource   prometheus: promql, up$", line) for line in summary), summary
    assert any(
        re.match(
            r"  receiver     heartbeat/webhook_configs\[0\] +console until configured \(HEARTBEAT_URL", line
        )
        for line in summary
    ), summary
    assert any(line.startswith("  try          alerting ") for line in summary), summary
    # The Watchdog's transition, one line, then its notification as a block.
    firing = [line for line in lines if " alert.firing " in line and "alertname=Watchdog" in line]
    assert firing and "The alert evaluator is running" in firing[0], output[-3000:]
    title = lines.index("[FIRING:1] Watchdog (none)")
    block = lines[title : lines.index("", title)]
    assert "  receiver  heartbeat (console instead of heartbeat/webhook_configs[0])" in block, block
    assert any(re.match(r"  FIRING +The alert evaluator is running", line) for line in block), block
    assert "  runbook   https://runbooks.example.com/alerting/Watchdog" in block, block
    assert any("query   http://127.0.0.1:" in line for line in block), block
    assert "  silence   alerting silence add alertname=Watchdog --duration 2h --comment ..." in block, block
    assert "\x1b[" not in output  # not a terminal: no colour
    # Celery's own per-task lines are DEBUG; the stand-in warning is in the summary, not repeated.
    chatter = [
        line for line in lines if re.search(r"celery\.(worker\.strategy|app\.trace)|received|succeeded", line)
    ]
    assert chatter == [], chatter
    assert not any("routing.config_warning" in line for line in lines)


def test_demo_command_fires_and_resolves_the_demo_alerts(prefix: str) -> None:
    env = {
        **os.environ,
        "RUN_SECONDS": "140",
        # Ports of its own, so a demo started elsewhere on this machine cannot switch its faults.
        "DEMO_PORT": str(free_port()),
        "ALERTING_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "ALERTING_REDIS_URL": REDIS_URL,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_CELERY_QUEUE": celery_queue(),
        "LOG_FORMAT": "json",
    }
    result = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    events: dict[str, list[str]] = {}
    for line in output.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and str(data.get("event", "")).startswith("alert."):
            events.setdefault(data["alertname"], []).append(data["event"])
    for name in ("DemoHighErrorRate", "DemoClaudeOverspend", "DemoQueueBacklog"):
        assert events.get(name) == ["alert.pending", "alert.firing", "alert.resolved"], (
            name,
            events.get(name),
            output[-3000:],
        )
