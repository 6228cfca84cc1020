"""Pieces the fault-injection and end-to-end tests of the worker share: a webhook recorder (what the
on-call would have seen), rule and routing files with short timers, a scriptable Prometheus API,
and a real Prometheus scraping an exporter the test drives.

The recorder is the user-visible outcome: every assertion of a fault test is about what it
accepted. Its ``answer`` can be swapped at any time to make the receiver fail, throttle or hang.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.exporter import Exporter
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.promapi import PromAPI
from tests.support.prometheus import PrometheusServer
from tests.support.worker import worker_env


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

    def wait_for(self, group: str, status: str = "firing", timeout: float = 60) -> None:
        """Wait until a notification of ``group`` with ``status`` has been accepted."""
        wait_until(lambda: status in self.statuses(group), timeout=timeout, what=f"{group} {status}")

    def settle(self, quiet: float = 4.0) -> None:
        """Wait until nothing has arrived for ``quiet`` seconds (two group_intervals by default):
        whatever the worker was still going to send is in by then."""
        wait_until(
            lambda: not self.received or time.monotonic() - self.received[-1].at >= quiet,
            timeout=120,
            interval=0.2,
            what="the receiver to go quiet",
        )

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


def webhook_env(
    tmp_path: Path,
    hook: WebhookRecorder,
    *,
    rules: Path,
    prefix: str,
    datasources: Mapping[str, Any] | None = None,
    **settings: str,
) -> dict[str, str]:
    """The worker's settings with every alert routed to ``hook`` (see ``write_routing``)."""
    config = write_routing(tmp_path / "alerting.yml", hook.url, datasources=datasources)
    return worker_env(tmp_path, rules=rules, config=config, prefix=prefix, **settings)


@contextmanager
def scraped(**values: float) -> Iterator[tuple[Exporter, PrometheusServer]]:
    """An exporter serving ``values`` (the test changes them as it goes) and a real Prometheus
    scraping it every second."""
    with Exporter() as exporter:
        exporter.values.update(values)
        with PrometheusServer(scrape_targets=[exporter.target]) as prom:
            yield exporter, prom


PROBE_QUERY = "probe_metric > 0"


class FakePrometheus(PromAPI):
    """The query API with one series for ``probe_metric > 0`` while ``firing``, none otherwise."""

    @property
    def firing(self) -> bool:
        return bool(self.vectors.get(PROBE_QUERY))

    @firing.setter
    def firing(self, on: bool) -> None:
        self.vectors[PROBE_QUERY] = [({"job": "api"}, 1.0)] if on else []
