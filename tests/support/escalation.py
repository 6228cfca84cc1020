"""Escalation tests with the real worker: critical rules on a scriptable Prometheus, a routing file
whose receivers page, lead and incident are paths of one webhook recorder, and what each was told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.faultkit import FakePrometheus, write_rules
from tests.support.net import wait_until
from tests.support.webhook import Received, WebhookRecorder
from tests.support.worker import worker_env

TIERS = ("page", "lead", "incident")


def critical_rule(name: str) -> dict[str, Any]:
    return {"alert": name, "expr": f"{name.lower()}_metric > 0", "labels": {"severity": "critical"}}


def escalation_config(
    path: Path, hook: WebhookRecorder, *, steps: tuple[str, str] = ("4s", "8s"), repeat: str = "1h"
) -> Path:
    doc = {
        "route": {
            "receiver": "page",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": repeat,
            "routes": [
                {
                    "matchers": ['severity=~"critical|P1"'],
                    "escalate": [
                        {"after": steps[0], "receiver": "lead"},
                        {"after": steps[1], "receiver": "incident"},
                    ],
                }
            ],
        },
        "receivers": [
            {"name": name, "webhook_configs": [{"url": f"{hook.url}/{name}", "send_resolved": True}]}
            for name in TIERS
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def told(hook: WebhookRecorder, group: str) -> list[tuple[str, str]]:
    """(receiver, status) of every notification of ``group``, in the order they arrived."""
    return [(r.path.strip("/"), r.status) for r in hook.delivered(group)]


def wait_told(
    hook: WebhookRecorder, group: str, receiver: str, status: str = "firing", count: int = 1
) -> None:
    wait_until(
        lambda: told(hook, group).count((receiver, status)) >= count,
        timeout=60,
        what=f"{group} {status} at {receiver}",
    )


def last(hook: WebhookRecorder, group: str, receiver: str) -> Received:
    return [r for r in hook.delivered(group) if r.path == f"/{receiver}"][-1]


def setup(
    tmp_path: Path, prefix: str, hook: WebhookRecorder, prom: FakePrometheus, *names: str, **config: Any
) -> dict[str, str]:
    rules = write_rules(
        tmp_path / "rules" / "critical.yml",
        [{"name": "critical", "interval": "1s", "rules": [critical_rule(n) for n in names]}],
    )
    routing = escalation_config(tmp_path / "alerting.yml", hook, **config)
    return worker_env(tmp_path, rules=rules, config=routing, prefix=prefix, prometheus_url=prom.url)


def fire(prom: FakePrometheus, name: str, *instances: str) -> None:
    prom.vectors[f"{name.lower()}_metric > 0"] = [({"instance": i}, 1.0) for i in instances]
