"""Pieces the fault-injection tests share: a webhook recorder (what the on-call would have seen),
rule and routing files with short timers, the worker's environment, and a scriptable Prometheus API.

The recorder is the user-visible outcome: every assertion of a fault test is about what it
accepted. Its ``answer`` can be swapped at any time to make the receiver fail, throttle or hang.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.httpfake import FakeHTTPServer, Reply, Request


@dataclass(frozen=True)
class Received:
    """One webhook request: when it came, what it said, and whether we accepted it (2xx)."""

    at: float
    status: str  # the notification's status: "firing" or "resolved"
    group: str  # the alertname the group is keyed by
    alerts: tuple[tuple[str, str], ...]  # (alertname, alert status), in payload order
    code: int  # the HTTP status we answered with
    body: Mapping[str, Any]

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300


class WebhookRecorder:
    """A webhook receiver speaking Alertmanager's v4 JSON, recording every request."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: Callable[[Request], Reply] = lambda _: Reply(200, "ok")
        self._lock = threading.Lock()
        self.server = FakeHTTPServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"

    def _handle(self, request: Request) -> Reply:
        body = json.loads(request.body)
        reply = self.answer(request)
        with self._lock:
            self.received.append(
                Received(
                    at=time.monotonic(),
                    status=body["status"],
                    group=body.get("groupLabels", {}).get("alertname", ""),
                    alerts=tuple((a["labels"]["alertname"], a["status"]) for a in body["alerts"]),
                    code=reply.status,
                    body=body,
                )
            )
        return reply

    def delivered(self, group: str | None = None) -> list[Received]:
        """Requests we accepted, optionally only those of one alertname's group."""
        with self._lock:
            return [r for r in self.received if r.accepted and (group is None or r.group == group)]

    def statuses(self, group: str) -> list[str]:
        return [r.status for r in self.delivered(group)]

    def __enter__(self) -> WebhookRecorder:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def write_rules(path: Path, groups: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": [dict(g) for g in groups]}, sort_keys=False))
    return path


def alert_rule(name: str, expr: str, **extra: Any) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "labels": {"severity": "warning"}, **extra}


def write_routing(
    path: Path,
    hook_url: str,
    *,
    datasources: Mapping[str, Any] | None = None,
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
) -> Path:
    """Everything to one webhook, grouped by alertname, resolves sent, with short timers."""
    doc: dict[str, Any] = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}],
    }
    if datasources:
        doc["datasources"] = dict(datasources)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def worker_env(
    tmp_path: Path,
    *,
    rules: Path,
    config: Path,
    redis_url: str,
    prefix: str,
    prometheus_url: str = "http://127.0.0.1:9",
    **extra: str,
) -> dict[str, str]:
    """The worker's settings: private prefix and queue, history in the test's directory, no HTTP port."""
    return {
        "ALERTING_RULES": str(rules),
        "ALERTING_CONFIG": str(config),
        "PROMETHEUS_URL": prometheus_url,
        "PROMETHEUS_TIMEOUT": "2s",
        "ALERTING_REDIS_URL": redis_url,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_CELERY_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
        "ALERTING_HISTORY_URL": f"sqlite:///{tmp_path / 'history.db'}",
        "ALERTING_HTTP_ADDR": "off",
        # Retries of failed deliveries come quickly, so a recovered receiver is reached within seconds.
        "ALERTING_NOTIFY_BACKOFF_BASE": "0.5",
        "ALERTING_NOTIFY_BACKOFF_CAP": "2",
        **extra,
    }


class FakePrometheus:
    """``/api/v1/query`` answering a one-series vector while ``firing``, an empty one otherwise;
    ``slow`` makes every query hang for that many seconds (an evaluation caught in flight)."""

    def __init__(self) -> None:
        self.firing = False
        self.slow = 0.0
        self.in_flight = threading.Event()
        self.server = FakeHTTPServer(self._answer)

    def _answer(self, request: Request) -> Reply:
        if request.path != "/api/v1/query":
            return Reply(404, "not found")
        at = float(request.query.get("time", ["0"])[0] or 0)
        result = [{"metric": {"job": "api"}, "value": [at, "1"]}] if self.firing else []
        if self.slow:
            self.in_flight.set()
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return Reply(200, body, delay=self.slow)

    def __enter__(self) -> FakePrometheus:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
