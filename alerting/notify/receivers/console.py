"""Console receiver: readable lines on stdout plus one structured log line per notification.

It is the default receiver when nothing is configured, and it stands in for any integration whose
credentials are missing, so no notification is ever dropped silently.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from alerting.errors import ConfigError, Position
from alerting.notify.base import Notification, NotifyAlert
from alerting.routing.matchers import labels_string

log = structlog.get_logger(__name__)
_FIELDS = ("send_resolved", "stands_for")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(alert: NotifyAlert) -> str:
    labels = dict(alert.labels)
    name = labels.pop("alertname", "")
    text = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    if alert.status == "resolved":
        span = f"since {_when(alert.starts_at)}, resolved {_when(alert.ends_at)}"
    else:
        span = f"since {_when(alert.starts_at)}"
    return f"  {alert.status.upper():<8} {name}{labels_string(labels)} {span}" + (f": {text}" if text else "")


class ConsoleIntegration:
    """Writes each notification to a text stream (stdout unless a test gives another)."""

    kind = "console"

    def __init__(
        self, send_resolved: bool = True, stands_for: str = "", stream: TextIO | None = None
    ) -> None:
        self.send_resolved = send_resolved
        self.stands_for = stands_for
        self._stream = stream

    def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stdout
        firing, resolved = notification.firing, notification.resolved
        head = f"[{notification.status.upper()}:{len(firing)}] receiver={notification.receiver}"
        if self.stands_for:
            head += f" (console instead of {self.stands_for})"
        lines = [f"{head} group={labels_string(notification.group_labels)}"]
        lines.extend(_line(a) for a in (*firing, *resolved))
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        log.info(
            "notification.console",
            msg=head,
            receiver=notification.receiver,
            status=notification.status,
            firing=len(firing),
            resolved=len(resolved),
            group_key=notification.group_key,
            alertname=notification.common_labels.get("alertname", ""),
            stands_for=self.stands_for or None,
        )


def console_integration(cfg: Mapping[str, Any], global_config: Mapping[str, Any]) -> ConsoleIntegration:
    pos: Position | None = getattr(cfg, "pos", None)
    for key in cfg:
        if key not in _FIELDS:
            key_pos = getattr(cfg, "key_pos", {}).get(key, pos)
            raise ConfigError(f'unknown field "{key}" in console_configs', key_pos)
    send_resolved = cfg.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError("send_resolved must be true or false", pos)
    return ConsoleIntegration(send_resolved=send_resolved, stands_for=str(cfg.get("stands_for") or ""))
