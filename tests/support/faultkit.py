"""Pieces the fault-injection and end-to-end tests of the worker share: rule and routing files with
short timers, the worker's settings with every alert routed to a webhook recorder, a scriptable
Prometheus API, and a real Prometheus scraping an exporter the test drives."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.exporter import Exporter
from tests.support.promapi import PromAPI
from tests.support.prometheus import PrometheusServer
from tests.support.webhook import WebhookRecorder
from tests.support.worker import worker_env


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
    config = write_routing(tmp_path / "alerting.yml", f"{hook.url}/hook", datasources=datasources)
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
