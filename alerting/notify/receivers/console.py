"""Console receiver: each notification as a message block on stdout, plus one structured log line.

It is the default receiver when nothing is configured, and it stands in for any integration whose
credentials are missing, so no notification is ever dropped silently. The block says what the
Slack and PagerDuty messages say (title, where, each alert's summary, description, value and
labels, runbook, the query, the silence command), from the same template data and wording.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

from alerting.errors import ConfigError, Position
from alerting.notify import wording
from alerting.notify.base import Notification, NotifyAlert
from alerting.notify.templates import Alert, template_data

log = structlog.get_logger(__name__)
_FIELDS = ("send_resolved", "stands_for")

_BOLD, _DIM, _RED, _GREEN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[0m"


class _Paint:
    """ANSI colour on a terminal; plain text anywhere else (a file, a pipe, a test)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, text: str, *codes: str) -> str:
        return f"{''.join(codes)}{text}{_RESET}" if self.on and text else text

    def status(self, status: str) -> str:
        return self(f"{status.upper():<8}", _BOLD, _RED if status == "firing" else _GREEN)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _pairs(items: Any) -> str:
    return ", ".join(f"{pair.Name}={pair.Value}" for pair in items)


def _alert_lines(alert: NotifyAlert, data: Alert, group: Mapping[str, str], paint: _Paint) -> list[str]:
    value = wording.format_value(alert.value)
    head = f"  {paint.status(alert.status)} {paint(wording.alert_summary(alert), _BOLD)}"
    lines = [head + (f"  (value {value})" if value else "")]
    description = wording.alert_description(alert)
    lines.extend(f"           {line}" for line in description.splitlines())
    labels = [p for p in data.Labels.SortedPairs() if p.Name != "alertname" and p.Name not in group]
    if labels:
        lines.append(f"           {paint('labels', _DIM)}  {_pairs(labels)}")
    since = wording.when(alert.starts_at)
    if alert.status == "resolved" and alert.ends_at is not None:
        since += f", resolved {wording.when(alert.ends_at)}"
    lines.append(f"           {paint('since', _DIM)}   {since}")
    if wording.is_web_link(data.GeneratorURL):
        lines.append(f"           {paint('query', _DIM)}   {data.GeneratorURL}")
    return lines


def message(notification: Notification, *, stands_for: str = "", colour: bool = False) -> str:
    """The block the console prints for ``notification`` (ends with a blank line)."""
    paint = _Paint(colour)
    data = template_data(notification)
    receiver = data.Receiver + (f" (console instead of {stands_for})" if stands_for else "")
    facts = [("receiver", receiver), ("group", _pairs(data.GroupLabels.SortedPairs()) or "-")]
    severity = wording.notification_severity(notification)
    if severity:
        facts.append(("severity", severity))
    where = wording.key_labels(notification)
    if where:
        facts.append(("where", ", ".join(f"{k}={v}" for k, v in where)))
    lines = [paint(wording.title(notification), _BOLD)]
    lines += [f"  {paint(f'{name:<10}', _DIM)}{text}" for name, text in facts]
    # Firing first, then resolved; the template data holds the alerts in the notification's order.
    pairs = list(zip(notification.alerts, data.Alerts, strict=True))
    for status in ("firing", "resolved"):
        for alert, shown in pairs:
            if alert.status == status:
                lines += _alert_lines(alert, shown, notification.group_labels, paint)
    links = [
        ("runbook", wording.runbook_url(notification)),
        ("dashboard", wording.dashboard_url(notification)),
    ]
    if notification.firing:
        links.append(("silence", wording.silence_command(notification)))
    lines += [f"  {paint(f'{name:<10}', _DIM)}{text}" for name, text in links if text]
    return "\n".join(lines) + "\n\n"


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
        stream.write(message(notification, stands_for=self.stands_for, colour=_is_terminal(stream)))
        stream.flush()
        firing, resolved = notification.firing, notification.resolved
        log.info(
            "notification.console",
            msg=wording.title(notification),
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
