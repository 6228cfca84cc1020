"""The default message of the chat receivers that speak Markdown (Microsoft Teams, Mattermost,
Rocket.Chat): what broke, where, each alert with its value, the links and the silence command.

Every label and annotation value is escaped, so it shows as written and cannot become a link,
emphasis or a mention. The message always fits the service's limit: alerts that would not are
counted in an "and N more" line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from alerting.notify import wording
from alerting.notify.base import Notification, NotifyAlert
from alerting.notify.receivers.posting import truncate

MAX_ALERTS = 10  # alerts listed one by one; the rest are counted
_SPECIAL = frozenset("\\`*_[]()<>#~|!@")
_SUMMARY_LIMIT = 300
_DESCRIPTION_LIMIT = 600


def escape(text: str) -> str:
    """``text`` shown literally in Markdown (and never a mention)."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


def code(text: str) -> str:
    """``text`` as inline code; a backtick inside would end it, so it becomes a quote."""
    return "`" + text.replace("`", "'") + "`"


def _alert(alert: NotifyAlert, common: Mapping[str, str]) -> str:
    line = f"- **{escape(truncate(wording.alert_summary(alert), _SUMMARY_LIMIT))}**"
    value = wording.format_value(alert.value)
    if value:
        line += f" {code(value)}"
    if alert.status == "resolved":
        line += " (resolved)"
    own = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    if own:
        line += " \u00b7 " + " ".join(code(truncate(item, 150)) for item in own)
    description = wording.alert_description(alert)
    if description:
        line += "\n  " + escape(truncate(" ".join(description.split()), _DESCRIPTION_LIMIT))
    return line


def frame(
    notification: Notification, *, title: bool = True, escape: Callable[[str], str] = escape
) -> tuple[list[str], list[str]]:
    """The lines around a Markdown message's alerts: before them the bold title (unless ``title``
    is off) and the labels that say where; after them the links and the silence command.
    ``escape`` is the service's own escaping of label values."""
    head: list[str] = []
    if title:
        head.append(f"**{escape(wording.title(notification))}**")
    where = wording.key_labels(notification)
    if where:
        head.append(" \u00b7 ".join(f"{escape(k)}: **{escape(truncate(v, 150))}**" for k, v in where))
    tail: list[str] = []
    links = [f"[{text}]({url.replace(')', '%29')})" for text, url in wording.links(notification)]
    if links:
        tail.append(" \u00b7 ".join(links))
    if notification.firing:
        tail.append("Silence: " + code(wording.silence_command(notification)))
    return head, tail


def message(notification: Notification, limit: int, *, title: bool = True, line_break: str = "\n") -> str:
    """Our default message, at most ``limit`` characters; ``title`` leads with the bold title
    (services that show a title of their own leave it out); ``line_break`` joins the lines."""
    head, tail = frame(notification, title=title)
    alerts = list(notification.firing + notification.resolved)
    # Budget on the text before its line breaks are widened, so the result always fits.
    room = limit // len(line_break)
    budget = room - len("\n\n".join(head + tail)) - 40
    shown: list[str] = []
    for alert in alerts[:MAX_ALERTS]:
        section = _alert(alert, notification.common_labels)
        if len(section) + 1 > budget:
            break
        shown.append(section)
        budget -= len(section) + 1
    if len(shown) < len(alerts):
        shown.append(f"- *and {len(alerts) - len(shown)} more*")
    blocks = ["\n".join(head), "\n".join(shown), "\n".join(tail)]
    text = truncate("\n\n".join(b for b in blocks if b), room)
    return text.replace("\n", line_break)
