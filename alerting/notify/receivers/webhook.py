"""Webhook receiver: Alertmanager's webhook payload (version 4), so its consumers consume ours.

``max_alerts`` truncates the alert list (``truncatedAlerts`` says by how many); ``http_config`` is
Prometheus's (see :mod:`alerting.transport`). ``url_file`` and the credential files are read at send
time, so rotated secrets apply without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from alerting import __version__
from alerting.core import fingerprint
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.routing.matchers import alert_sort_key
from alerting.transport import (
    HTTPConfig,
    SecretFileError,
    check_tls_files,
    client_for,
    parse_http_config,
    read_secret_file,
    retry_after,
)

_FIELDS = ("url", "url_file", "send_resolved", "max_alerts", "http_config", "timeout")
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_REGEX_META = set("\\.+*?()|[]{}^$")


def go_time(ts: float | None) -> str:
    """A unix time as Go marshals a time.Time to JSON (RFC3339 with trimmed nanoseconds)."""
    if ts is None:
        return _GO_ZERO_TIME
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _quote_meta(text: str) -> str:
    # Alertmanager hands integrations the receiver name regex-quoted; consumers see it that way.
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in text)


def alert_json(alert: NotifyAlert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": go_time(alert.starts_at),
        "endsAt": go_time(alert.ends_at if alert.status == "resolved" else None),
        "generatorURL": alert.generator_url,
        "fingerprint": fingerprint(alert.labels),
    }


def payload(notification: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """The webhook v4 body for a notification."""
    alerts = sorted(notification.alerts, key=lambda a: alert_sort_key(a.labels))
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "receiver": _quote_meta(notification.receiver),
        "status": notification.status,
        "alerts": [alert_json(a) for a in shown],
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
    }


class WebhookIntegration:
    kind = "webhook"

    def __init__(
        self,
        url: str | None,
        url_file: str | None = None,
        send_resolved: bool = True,
        max_alerts: int = 0,
        http: HTTPConfig | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.url_file = url, url_file
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts
        self.http = http or HTTPConfig()
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        try:
            url = read_secret_file(self.url_file, "url_file") if self.url_file else self.url
        except SecretFileError as exc:
            raise DeliveryError(str(exc), retryable=True) from None
        body = json.dumps(payload(notification, self.max_alerts)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"alerting/{__version__}"}
        if notification.notification_id:
            # Repeats of one notification carry the same key, so a receiver can answer them once.
            headers["Idempotency-Key"] = notification.notification_id
        try:
            response = client_for(self.http, self.timeout).post(str(url), content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"webhook timed out after {self.timeout:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook request failed: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"webhook answered HTTP {status}: {response.text[:200]}"
        if status == 429 or status >= 500:
            raise DeliveryError(detail, retryable=True, retry_after=retry_after(response.headers))
        raise DeliveryError(detail, retryable=False)


def _check(cfg: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in cfg:
        if key not in allowed:
            pos = getattr(cfg, "key_pos", {}).get(key) or getattr(cfg, "pos", None)
            raise ConfigError(f'unknown field "{key}" in {what}', pos)


def _pos(cfg: Mapping[str, Any], key: str) -> Position | None:
    at = getattr(cfg, "at", None)
    return at(key) if at else None


def webhook_integration(cfg: Mapping[str, Any], global_config: Mapping[str, Any]) -> WebhookIntegration:
    _check(cfg, _FIELDS, "webhook_configs")
    pos = getattr(cfg, "pos", None)
    url, url_file = cfg.get("url"), cfg.get("url_file")
    if url and url_file:
        raise ConfigError("webhook_configs: use url or url_file, not both", _pos(cfg, "url"))
    if not url and not url_file:
        raise ConfigError("webhook_configs: url (or url_file) is required", pos)
    if url and not str(url).startswith(("http://", "https://")):
        raise ConfigError(
            f"webhook_configs: url must start with http:// or https://, got {url!r}", _pos(cfg, "url")
        )
    send_resolved = cfg.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError("send_resolved must be true or false", _pos(cfg, "send_resolved"))
    max_alerts = cfg.get("max_alerts", 0)
    if not isinstance(max_alerts, int) or isinstance(max_alerts, bool) or max_alerts < 0:
        raise ConfigError("max_alerts must be a whole number, 0 for no limit", _pos(cfg, "max_alerts"))
    timeout = 10.0
    if cfg.get("timeout") is not None:
        try:
            timeout = parse_duration(str(cfg["timeout"]))
        except DurationError as exc:
            raise ConfigError(f"timeout: {exc}", _pos(cfg, "timeout")) from None
    raw_http = cfg.get("http_config", global_config.get("http_config"))
    http = parse_http_config(raw_http, "webhook_configs http_config", _pos(cfg, "http_config"))
    check_tls_files(http.tls_config, "webhook_configs", _pos(cfg, "http_config"))
    return WebhookIntegration(
        str(url) if url else None,
        str(url_file) if url_file else None,
        send_resolved,
        max_alerts,
        http,
        timeout or 10.0,
    )
