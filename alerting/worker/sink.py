"""The worker's end of a tick: record transitions in history, log each one, and queue what fires or
resolves into the notification pipeline (with the link back to the expression)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

import redis

from alerting.config.settings import DatasourceConfig
from alerting.notify.base import NotifyAlert
from alerting.notify.live import RoutingConfig
from alerting.notify.pipeline import ingest
from alerting.ops.history import HistoryWriter
from alerting.ops.logs import get_logger
from alerting.rules.evaluation import State
from alerting.rules.model import Group, Rule
from alerting.rules.state import json_number
from alerting.rules.tick import Evaluated, GroupOutcome
from alerting.sources.prometheus import without_credentials

log = get_logger(__name__)


class WorkerSink:
    """Hands a tick's outcome to history, the console log and the notification pipeline.

    ``routing`` and ``datasources`` are read at each hand-off: both reload while the worker runs.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        routing: Callable[[], RoutingConfig],
        history: Callable[[], HistoryWriter],
        datasources: Callable[[], Mapping[str, DatasourceConfig]],
        external_url: str = "",
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.routing = routing
        self.history = history
        self.datasources = datasources
        self.external_url = external_url

    def hand_off(self, outcome: GroupOutcome) -> None:
        evaluated = outcome.handed_off
        self.history().record_evaluated(outcome.group.name, evaluated, outcome.slot)
        log_transitions(outcome.group, evaluated, outcome.slot)
        alerts = notify_alerts(evaluated, self.generator_url)
        # The state is saved already; a Redis hiccup here is retried at the next tick, which sends the
        # same alerts again (the pipeline is idempotent per alert).
        try:
            ingest(self.redis, self.prefix, self.routing(), alerts, time.time())
        except redis.RedisError as exc:
            log.error("notify.ingest_failed", msg=f"Redis unavailable, alerts not queued: {exc}")

    def generator_url(self, rule: Rule) -> str:
        """Where the on-call can see the condition: Prometheus's graph of the expression for PromQL
        rules, the configured external URL otherwise."""
        if rule.kind == "promql":
            config = self.datasources().get(rule.datasource)
            base = str(config.options.get("url", "")) if config else ""
            if base:
                # Receivers (and whoever they forward to) see this link: never with URL credentials.
                base = without_credentials(base)
                return f"{base.rstrip('/')}/graph?g0.expr={quote(rule.query)}&g0.tab=1"
        return self.external_url


def notify_alerts(evaluated: Sequence[Evaluated], generator_url: Callable[[Rule], str]) -> list[NotifyAlert]:
    """What goes to the notification pipeline after a tick: every firing alert, and every alert
    resolved within the retention (as Prometheus sends to Alertmanager). Pending ones never go.

    Firing alerts carry no end time: they stay firing until this evaluator says otherwise, so a
    stopped worker never produces a "resolved" (the Watchdog's silence reports it instead)."""
    out = []
    for item in evaluated:
        url = generator_url(item.rule)
        for alert in item.alerts.values():
            if alert.state is State.PENDING or alert.fired_at is None:
                continue
            out.append(
                NotifyAlert(
                    status="resolved" if alert.resolved else "firing",
                    labels=dict(alert.labels),
                    annotations=dict(alert.annotations),
                    starts_at=alert.fired_at,
                    ends_at=alert.resolved_at,
                    generator_url=url,
                    fingerprint=alert.fingerprint,
                    value=alert.value,
                )
            )
    return out


def log_transitions(group: Group, evaluated: Sequence[Evaluated], slot: float) -> None:
    """Every transition as one structured line (the receiver of last resort)."""
    for item in evaluated:
        for event in item.events:
            alert = event.alert
            labels = dict(alert.labels)
            where = ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname")
            summary = dict(alert.annotations).get("summary", "").strip().split("\n")[0]
            log.info(
                f"alert.{event.kind}",
                # "Watchdog firing: The alert evaluator is running (severity=none)"
                msg=f"{alert.name} {event.kind}"
                + (f": {summary}" if summary else "")
                + (f" ({where})" if where else ""),
                group=group.name,
                rule=item.rule.name,
                alertname=alert.name,
                fingerprint=alert.fingerprint,
                labels=labels,
                annotations=dict(alert.annotations),
                value=json_number(alert.value),
                active_at=alert.active_at,
                slot=slot,
            )
