"""Drives the notification pipeline against real Redis with a simulated clock."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import redis

from alerting.notify.base import NotifyAlert
from alerting.notify.live import RoutingConfig
from alerting.notify.pipeline import Job, deliver, flush_due, ingest
from alerting.worker.compose import load_routing_config

T0 = 1_700_000_000.0


def alert(
    name: str,
    starts_at: float = T0,
    ends_at: float | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> NotifyAlert:
    return NotifyAlert(
        status="resolved" if ends_at is not None else "firing",
        labels={"alertname": name, **labels},
        annotations=annotations or {"summary": f"{name} is happening"},
        starts_at=starts_at,
        ends_at=ends_at,
    )


def load_config(tmp_path: Path, text: str, **subst: Any) -> RoutingConfig:
    path = tmp_path / f"alerting-{abs(hash(text)) % 10**8}.yml"
    path.write_text(textwrap.dedent(text).format(**subst))
    return load_routing_config(path)


class Harness:
    def __init__(self, client: redis.Redis, prefix: str, config: RoutingConfig) -> None:
        self.client, self.prefix, self.config = client, prefix, config

    def ingest(self, now: float, *alerts: NotifyAlert) -> None:
        ingest(self.client, self.prefix, self.config, list(alerts), now)

    def flush(self, now: float) -> list[Job]:
        return flush_due(self.client, self.prefix, self.config, now)

    def deliver(self, job: Job, now: float) -> bool:
        return deliver(self.client, self.prefix, self.config, job, now)

    def tick(self, now: float) -> list[Job]:
        """Flush what is due at ``now`` and deliver every job at once."""
        jobs = self.flush(now)
        for job in jobs:
            deliver(self.client, self.prefix, self.config, job, now)
        return jobs
