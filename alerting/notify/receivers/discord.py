"""Discord receiver (``discord_configs``): one embed per group notification through a channel webhook.

On the wire it is what Alertmanager 0.25 sends: ``POST {webhook_url}`` with JSON
``{"content": "", "embeds": [{"title", "description", "color"}]}``, red while firing and green once
resolved. Unlike 0.25, which sends them uncut for Discord to refuse, the title is cut to Discord's
256 characters and the description to 4096, as later Alertmanager versions do. The webhook URL
(or ``webhook_url_file``, a newer Alertmanager field, read at send time) is a secret: it is kept
out of every error message and log line.

Our default description uses Discord's markdown: what broke with the value, where, the runbook and
the ``alerting silence add`` command; label and annotation values are escaped so they show as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification, NotifyAlert
from alerting.notify.receivers import markdown, posting
from alerting.notify.receivers.posting import Secret, deliver, truncate
from alerting.transport import HTTPConfig

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIRING_COLOUR = 0x992D22
RESOLVED_COLOUR = 0x2ECC71
MAX_ALERTS = 10  # alerts our default description lists one by one; the rest are counted

_FIELDS = ("send_resolved", "http_config", "webhook_url", "webhook_url_file", "title", "message")
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#-])")


def escape(text: str) -> str:
    """``text`` shown as written in Discord markdown."""
    return _MARKDOWN.sub(r"\\\1", text)


@dataclass(frozen=True)
class DiscordSettings:
    title: str = ""  # templates; "" means our default
    message: str = ""
    send_resolved: bool = True


def _alert_markdown(alert: NotifyAlert, common: Mapping[str, str]) -> str:
    line = f"**{escape(truncate(wording.alert_summary(alert), 300))}**"
    value = wording.format_value(alert.value)
    if value:
        line += f" {markdown.code(value)}"
    if alert.status == "resolved":
        line = "\u2705 " + line
    lines = [line]
    description = wording.alert_description(alert)
    if description:
        lines.append(escape(truncate(description, 500)))
    own = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    if own:
        lines.append(" ".join(markdown.code(truncate(item, 150)) for item in own))
    return "\n".join(lines)


def default_message(notification: Notification) -> str:
    """Our embed description; it always fits Discord's limit (alerts that would not are counted)."""
    head, tail = markdown.frame(notification, title=False, escape=escape)
    alerts = list(notification.firing + notification.resolved)
    budget = DESCRIPTION_LIMIT - len("\n\n".join(head + tail)) - 60
    sections: list[str] = []
    for alert in alerts[:MAX_ALERTS]:
        section = _alert_markdown(alert, notification.common_labels)
        if len(section) + 2 > budget:
            break
        sections.append(section)
        budget -= len(section) + 2
    if len(sections) < len(alerts):
        sections.append(f"*and {len(alerts) - len(sections)} more*")
    return truncate("\n\n".join(["\n".join(head), *sections, "\n".join(tail)]).strip(), DESCRIPTION_LIMIT)


def discord_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``discord.default.*`` template names render to here."""
    return {
        "discord.default.title": lambda: wording.title(notification),
        "discord.default.message": lambda: default_message(notification),
    }


class Discord:
    kind = "discord"

    def __init__(self, settings: DiscordSettings, webhook_url: Secret, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._url = webhook_url
        self.http = http

    def __repr__(self) -> str:
        return "Discord()"

    def request_body(self, notification: Notification) -> dict[str, Any]:
        s = self.settings
        defaults = discord_defaults(notification)
        title = templates.render_or(
            s.title, notification, "title", lambda: wording.title(notification), defaults=defaults
        )
        description = templates.render_or(
            s.message, notification, "message", lambda: default_message(notification), defaults=defaults
        )
        colour = RESOLVED_COLOUR if notification.status == "resolved" else FIRING_COLOUR
        embed = {
            "title": truncate(title, TITLE_LIMIT),
            "description": truncate(description, DESCRIPTION_LIMIT),
            "color": colour,
        }
        return {"content": "", "embeds": [embed]}

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        url = self._url.value()
        token = url.rstrip("/").rsplit("/", 1)[-1]
        deliver(
            self.http,
            "POST",
            url,
            service="Discord",
            secrets=(url, token),
            json_body=self.request_body(notification),
        )


def discord_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Discord:
    """Build a Discord integration from one ``discord_configs`` entry."""
    what = "discord_configs"
    entries.check_fields(config, _FIELDS, what)
    webhook = posting.required_secret(config, "webhook_url", what)
    url, path = webhook.inline, webhook.file
    if url and not wording.is_web_link(url):
        # Never echo the URL: it carries the webhook's token.
        raise entries.config_error(config, "webhook_url", f"{what}: webhook_url must be an http(s) URL")
    settings = DiscordSettings(
        title=templates.check_template(config, "title", what),
        message=templates.check_template(config, "message", what),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return Discord(
        settings, Secret(url, path, "webhook_url_file"), entries.http_config(config, what, global_config)
    )
