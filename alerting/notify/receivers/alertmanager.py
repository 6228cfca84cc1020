"""Alertmanager forwarder (``alertmanager_configs``, our extension): hands alerts to an existing
Alertmanager through ``POST /api/v2/alerts``, for teams that keep their Alertmanager.

Alertmanager treats a firing alert without news as resolved once its ``endsAt`` passes. We only
forward when the group notifies (at most every ``repeat_interval``), so firing alerts are sent with
``endsAt = now + valid_for``; ``valid_for`` must exceed the route's ``repeat_interval`` (default 4h,
hence the 5h default) or Alertmanager would resolve alerts that still fire. Resolved alerts are sent
with their real end time, which resolves them in Alertmanager at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alerting.notify import entries, wording
from alerting.notify.base import DeliveryError, Notification, NotifyAlert, unreachable
from alerting.transport import HTTPConfig, client_for, retry_after

_FIELDS = ("url", "send_resolved", "valid_for", "timeout", "http_config")


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``, for error messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertmanagerSettings:
    url: str  # base URL of the Alertmanager, e.g. http://alertmanager:9093
    send_resolved: bool = True
    valid_for: float = 5 * 3600.0
    timeout: float = 10.0


def postable_alert(alert: NotifyAlert, now: float, valid_for: float) -> dict[str, Any]:
    """One entry of the ``POST /api/v2/alerts`` body."""
    ends = alert.ends_at if alert.status == "resolved" and alert.ends_at is not None else now + valid_for
    if alert.status == "resolved" and alert.ends_at is None:
        ends = now  # resolved without a recorded end: resolve it now
    out: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _rfc3339(alert.starts_at),
        "endsAt": _rfc3339(ends),
    }
    if wording.is_web_link(alert.generator_url):  # Alertmanager rejects the whole batch over a bad URI
        out["generatorURL"] = alert.generator_url
    return out


class AlertmanagerForwarder:
    """Posts a group's alerts to one Alertmanager."""

    kind = "alertmanager"

    def __init__(self, settings: AlertmanagerSettings, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._http = http

    def send(self, notification: Notification) -> None:
        alerts = notification.alerts
        if not self.send_resolved:
            alerts = tuple(a for a in alerts if a.status == "firing")
        if not alerts:
            return
        now = time.time()
        body = [postable_alert(a, now, self.settings.valid_for) for a in alerts]
        url = self.settings.url.rstrip("/") + "/api/v2/alerts"
        where = _without_userinfo(self.settings.url)
        try:
            response = client_for(self._http, self.settings.timeout).post(url, json=body)
        except httpx.HTTPError as exc:
            raise unreachable(f"Alertmanager {where}", exc) from None
        if response.is_success:
            return
        answer = response.text.strip()[:300]
        status = response.status_code
        if status == 429 or status >= 500:
            raise DeliveryError(
                f"Alertmanager answered {status}: {answer}",
                retryable=True,
                retry_after=retry_after(response.headers),
            )
        raise DeliveryError(f"Alertmanager rejected the alerts ({status}): {answer}", retryable=False)


def alertmanager_integration(
    config: Mapping[str, Any], global_config: Mapping[str, Any]
) -> AlertmanagerForwarder:
    """Build a forwarder from one ``alertmanager_configs`` entry."""
    what = "alertmanager_configs"
    entries.check_fields(config, _FIELDS, what)
    url = entries.string(config, "url", what)
    if not wording.is_web_link(url):
        raise entries.config_error(
            config, "url", f"{what}: url (the Alertmanager's http(s) base URL) is required"
        )
    settings = AlertmanagerSettings(
        url=url.removesuffix("/").removesuffix("/api/v2/alerts"),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
        valid_for=entries.duration(config, "valid_for", what, 5 * 3600.0),
        timeout=entries.duration(config, "timeout", what, 10.0),
    )
    return AlertmanagerForwarder(settings, entries.http_config(config, what, global_config))
