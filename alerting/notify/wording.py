"""What every receiver's default message says: the title (Alertmanager's ``__subject``), the key
labels, one alert's summary, the value, runbook and dashboard links, the ``alerting silence add``
hint and the severity levels.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import structlog

from alerting.notify.base import Notification, NotifyAlert

log = structlog.get_logger(__name__)


# Labels that say how urgent an alert is; the first one present wins.
SEVERITY_LABELS = ("severity", "priority")

# Our severity vocabulary folded onto the four levels PagerDuty (and our colours) know.
_LEVELS = {
    "p1": "critical",
    "critical": "critical",
    "p2": "error",
    "high": "error",
    "error": "error",
    "p3": "warning",
    "warning": "warning",
    "medium": "warning",
    "p4": "info",
    "low": "info",
    "info": "info",
}

# Labels that identify an alert rather than place it; they never count as "key labels".
_NOT_KEY = frozenset({"alertname", *SEVERITY_LABELS})


def severity(labels: Mapping[str, str]) -> str:
    """The alert's severity as written (``P1``, ``critical`` ...), or "" when it has none."""
    return next((labels[k] for k in SEVERITY_LABELS if labels.get(k)), "")


def level(labels: Mapping[str, str], default: str = "error") -> str:
    """``critical``/``error``/``warning``/``info`` for ``labels``; ``default`` when unknown."""
    return _LEVELS.get(severity(labels).strip().lower(), default)


_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def notification_severity(notification: Notification) -> str:
    """The most urgent severity among the group's firing alerts (all alerts when none fire)."""
    # Asked several times per message (header, colour, PagerDuty's severity): kept beside the
    # notification, which never changes, as its template data is.
    kept = vars(notification)
    found: str | None = kept.get("_severity")
    if found is None:
        found = kept["_severity"] = _most_urgent(notification.firing or notification.alerts)
    return found


def _most_urgent(alerts: tuple[NotifyAlert, ...]) -> str:
    best, best_rank = None, len(_RANK)
    for alert in alerts:  # the first of the most urgent, as min() picks it; nothing beats critical
        rank = _RANK[level(alert.labels, "info")]
        if rank < best_rank:
            best, best_rank = alert, rank
            if rank == 0:
                break
    return severity(best.labels) if best else ""


def title(notification: Notification) -> str:
    """Alertmanager's default subject: ``[FIRING:2] HighErrorRate (api critical)``."""
    status = notification.status.upper()
    head = f"[{status}:{len(notification.firing)}]" if notification.firing else f"[{status}]"
    group = notification.group_labels
    parts = [head, *(group[k] for k in sorted(group))]
    common = notification.common_labels
    rest = [common[k] for k in sorted(common) if k not in group]
    text = " ".join(p for p in parts if p)
    return f"{text} ({' '.join(rest)})" if rest else text


def key_labels(notification: Notification) -> list[tuple[str, str]]:
    """Labels that tell where the problem is: group labels first, then the other common labels."""
    group = notification.group_labels
    common = notification.common_labels
    ordered = [(k, group[k]) for k in sorted(group)] + [
        (k, common[k]) for k in sorted(common) if k not in group
    ]
    return [(k, v) for k, v in ordered if k not in _NOT_KEY and v]


def alertname(notification: Notification) -> str:
    name = notification.common_labels.get("alertname") or notification.group_labels.get("alertname")
    if name:
        return name
    names = sorted({a.labels.get("alertname", "") for a in notification.alerts} - {""})
    return ", ".join(names)


def alert_summary(alert: NotifyAlert) -> str:
    """One line saying what is wrong with ``alert``."""
    notes = alert.annotations
    for key in ("summary", "message", "description"):
        if notes.get(key):
            return notes[key].strip().splitlines()[0]
    return alert.labels.get("alertname", "alert")


def alert_description(alert: NotifyAlert) -> str:
    """The longer explanation, when there is one besides the summary."""
    notes = alert.annotations
    text = notes.get("description", "").strip()
    text = text if text and text != alert_summary(alert) else ""
    # Set on the notification that follows an acknowledgement (alerting.notify.pipeline).
    acknowledged = notes.get("acknowledged", "").strip()
    if acknowledged:
        note = acknowledged[:1].upper() + acknowledged[1:]
        text = f"{text} — {note}" if text else note
    return text


def format_value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def is_web_link(url: str) -> bool:
    """Only http(s) links become buttons and hrefs, so a label cannot smuggle ``javascript:``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _annotation_link(notification: Notification, *keys: str) -> str:
    if notification.annotation_names.isdisjoint(keys):  # as for most groups: no alert has one
        return ""
    for source in (notification.common_annotations, *(a.annotations for a in notification.alerts)):
        for key in keys:
            url = source.get(key, "")
            if url and is_web_link(url):
                return url.strip()
    return ""


def runbook_url(notification: Notification) -> str:
    return _annotation_link(notification, "runbook_url", "runbook")


def dashboard_url(notification: Notification) -> str:
    return _annotation_link(notification, "dashboard_url", "dashboard", "grafana_url")


def generator_url(notification: Notification) -> str:
    return next((a.generator_url for a in notification.alerts if is_web_link(a.generator_url)), "")


def links(notification: Notification) -> list[tuple[str, str]]:
    """The group's runbook, dashboard and query links that are set, each with its caption."""
    return [
        (text, url)
        for text, url in (
            ("Runbook", runbook_url(notification)),
            ("Dashboard", dashboard_url(notification)),
            ("Query", generator_url(notification)),
        )
        if url
    ]


def silence_command(notification: Notification) -> str:
    """The command that silences this group (its group labels, or its common labels)."""
    labels = notification.group_labels or notification.common_labels
    if not labels:
        labels = {"alertname": alertname(notification)} if alertname(notification) else {}
    matchers = [shlex.quote(f"{k}={v}") for k, v in sorted(labels.items())]
    return " ".join(["alerting silence add", *matchers, "--duration", "2h", "--comment", shlex.quote("...")])


def when(seconds: float | None) -> str:
    """``2026-01-01 00:00:00 UTC``; "" for no time."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_list_text(notification: Notification) -> str:
    """The firing and resolved alerts, one paragraph each, as plain text."""
    lines: list[str] = []
    for heading, alerts in (("Firing", notification.firing), ("Resolved", notification.resolved)):
        if not alerts:
            continue
        lines += ["", f"{heading} ({len(alerts)}):"]
        for alert in alerts:
            value = format_value(alert.value)
            lines.append(f"- {alert_summary(alert)}" + (f" (value {value})" if value else ""))
            description = alert_description(alert)
            if description:
                lines.append(f"  {description}")
            lines.append("  Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
            since = f"  Since: {when(alert.starts_at)}"
            if alert.status == "resolved" and alert.ends_at is not None:
                since += f", resolved: {when(alert.ends_at)}"
            lines.append(since)
            if alert.generator_url:
                lines.append(f"  Source: {alert.generator_url}")
    return "\n".join(lines).lstrip("\n")


def default_text(notification: Notification) -> str:
    """The plain-text body every receiver can fall back on (email text part, console, tests)."""
    lines = [title(notification), ""]
    sev = notification_severity(notification)
    if sev:
        lines.append(f"Severity: {sev}")
    where = key_labels(notification)
    if where:
        lines.append("Where: " + ", ".join(f"{k}={v}" for k, v in where))
    lines += ["", alert_list_text(notification), ""]
    if runbook_url(notification):
        lines.append(f"Runbook: {runbook_url(notification)}")
    if dashboard_url(notification):
        lines.append(f"Dashboard: {dashboard_url(notification)}")
    if notification.firing:
        lines.append(f"Silence: {silence_command(notification)}")
    return "\n".join(lines).rstrip() + "\n"
