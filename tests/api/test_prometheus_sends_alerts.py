"""A real Prometheus 2.42 sends its alerts both to a real Alertmanager 0.25 and to the running worker
(two ``alertmanagers`` entries of one configuration): with the same ``alerting.yml`` both send the same
webhook notifications, firing and then resolved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting.notify.store import NotifyStore
from tests.support.net import free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.routing_alertmanager import Alertmanager
from tests.support.webhook import Received, WebhookRecorder
from tests.support.worker import Worker, worker_env

CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: pager
      matchers: ['severity="critical"']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="info"']
    equal: [service]
receivers:
  - name: hook
    webhook_configs: [{url: 'BASE/hook'}]
  - name: pager
    webhook_configs: [{url: 'BASE/pager'}]
"""

# Prometheus learns where to send alerts a few seconds after it starts, and sends firing alerts again
# every 5s (its resend delay), each valid for four times that. ``time() < END`` holds for a few
# seconds: Short fires, then resolves; Steady keeps firing; Muted is inhibited by Steady (same
# service) and never notified (it fires after Prometheus has found both servers, so both know the
# inhibiting alert when it comes).
RULES = """\
groups:
  - name: demo
    rules:
      - alert: Short
        expr: label_replace(vector(time()), "service", "web", "", "") < END
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.service }} is short"}
      - alert: Steady
        expr: label_replace(vector(1), "service", "db", "", "")
        labels: {severity: critical}
      - alert: Muted
        expr: label_replace(vector(1), "service", "db", "", "")
        for: 10s
        labels: {severity: info}
"""


def normalised(received: Received) -> dict[str, Any]:
    """A notification without what differs by who sent it (its external URL)."""
    body = dict(received.body)
    body.pop("externalURL")
    return {"path": received.path.split("/", 2)[2], **body}


def stream(hook: WebhookRecorder, side: str) -> dict[str, list[dict[str, Any]]]:
    """Each group's notifications in the order sent."""
    out: dict[str, list[dict[str, Any]]] = {}
    for received in hook.delivered():
        if received.path.startswith(f"/{side}/"):
            out.setdefault(received.group, []).append(normalised(received))
    return out


def done(hook: WebhookRecorder, side: str) -> bool:
    seen = stream(hook, side)
    return [n["status"] for n in seen.get("Short", [])] == ["firing", "resolved"] and len(
        seen.get("Steady", [])
    ) == 1


def muted(url: str) -> bool:
    """Whether the server has Muted, inhibited."""
    found = httpx.get(f"{url}/api/v2/alerts", params={"filter": 'alertname="Muted"'}).json()
    return [(a["status"]["state"], bool(a["status"]["inhibitedBy"])) for a in found] == [("suppressed", True)]


@pytest.mark.e2e
def test_prometheus_alerts_give_the_same_notifications_from_the_worker_and_alertmanager(
    tmp_path: Path, store: NotifyStore
) -> None:
    port = free_port()
    (tmp_path / "rules").mkdir()
    with WebhookRecorder() as hook:
        (tmp_path / "am.yml").write_text(CONFIG.replace("BASE", f"{hook.url}/am"))
        (tmp_path / "ours.yml").write_text(CONFIG.replace("BASE", f"{hook.url}/ours"))
        (tmp_path / "am").mkdir()
        env = worker_env(
            tmp_path,
            rules=tmp_path / "rules",
            config=tmp_path / "ours.yml",
            prefix=store.silence_key.rsplit(":", 1)[0],
            ALERTING_HTTP_ADDR=f"127.0.0.1:{port}",
        )
        with Alertmanager(tmp_path / "am.yml", tmp_path / "am") as real, Worker(env):
            wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200,
                timeout=60,
                what="the worker's API",
            )
            rules = tmp_path / "alerts.yml"
            rules.write_text(RULES.replace("END", str(int(time.time()) + 25)))
            am = real.url.removeprefix("http://")
            with PrometheusServer(
                rule_files=[rules], alertmanagers=[am, f"127.0.0.1:{port}"], resend_delay="5s"
            ):
                for url in (real.url, f"http://127.0.0.1:{port}"):
                    wait_until(
                        lambda url=url: muted(url), timeout=60, what=f"Muted received and inhibited at {url}"
                    )
                try:
                    wait_until(
                        lambda: done(hook, "am") and done(hook, "ours"), timeout=60, what="both streams"
                    )
                except TimeoutError:
                    pytest.fail(f"alertmanager: {stream(hook, 'am')}\nworker: {stream(hook, 'ours')}")
            theirs, mine = stream(hook, "am"), stream(hook, "ours")
    assert sorted(mine) == sorted(theirs) == ["Short", "Steady"], f"{theirs}\n{mine}"
    for group in theirs:
        assert mine[group] == theirs[group], group
    assert [n["path"] for n in mine["Steady"]] == ["pager"]
