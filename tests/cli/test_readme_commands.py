"""The README's commands do what the README says."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.net import REDIS_URL, celery_queue, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_run_command_starts_prometheus_and_worker_and_shows_alerts_firing(prefix: str) -> None:
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
    firing = [line for line in output.splitlines() if "alert.firing" in line]
    assert any("alertname=Watchdog" in line for line in firing), output[-3000:]


def test_demo_command_fires_and_resolves_the_demo_alerts(prefix: str) -> None:
    env = {
        **os.environ,
        "RUN_SECONDS": "140",
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
