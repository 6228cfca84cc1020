"""Builders for the notifications the receiver tests send."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from alerting.notify.base import Notification, NotifyAlert

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# A severity label as people write it, and the level receivers map it to (error when unknown).
SEVERITY_LEVELS = [
    ("P1", "critical"),
    ("critical", "critical"),
    ("Critical", "critical"),
    ("P2", "error"),
    ("high", "error"),
    ("error", "error"),
    ("warning", "warning"),
    ("P3", "warning"),
    ("medium", "warning"),
    ("info", "info"),
    ("low", "info"),
    ("P4", "info"),
    ("", "error"),
    ("something-else", "error"),
]


def alert(
    status: str = "firing",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    value: float | None = 3.2,
    starts_at: float = T0,
    ends_at: float | None = None,
    generator_url: str = "http://prometheus.example:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29",
) -> NotifyAlert:
    labels = {"alertname": "HighErrorRate", "service": "api", "severity": "critical", **(labels or {})}
    notes = {
        "summary": "5xx 3.2/s",
        "description": "The api answers 5xx to 3.2 requests per second.",
        "runbook_url": "https://runbooks.example/high-error-rate",
        **(annotations or {}),
    }
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return NotifyAlert(
        status=status,
        labels=labels,
        annotations=notes,
        starts_at=starts_at,
        ends_at=ends_at if ends_at is not None or status == "firing" else starts_at + 600,
        generator_url=generator_url,
        fingerprint=fingerprint,
        value=value,
    )


def notification(
    *alerts: NotifyAlert,
    receiver: str = "oncall",
    group_labels: Mapping[str, str] | None = None,
    group_key: str = '{}:{alertname="HighErrorRate"}',
    external_url: str = "http://alerting.example:8080",
) -> Notification:
    return Notification(
        receiver=receiver,
        group_key=group_key,
        group_labels=dict(group_labels) if group_labels is not None else {"alertname": "HighErrorRate"},
        alerts=tuple(alerts) or (alert(),),
        external_url=external_url,
    )
