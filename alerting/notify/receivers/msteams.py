"""Microsoft Teams receiver (``msteams_configs``): one MessageCard per notification through an
incoming webhook (Office 365 connector).

On the wire it is what Alertmanager sends: ``POST {webhook_url}`` with JSON
``{"@context": "http://schema.org/extensions", "type": "MessageCard", "title", "summary", "text",
"themeColor"}``. ``title``, ``summary`` and ``text`` are templates; ``send_resolved`` is on by
default. The webhook URL (or ``webhook_url_file``, read at send time) is a secret: it stays out of
every error message and log line.

Our default text is Teams Markdown (what broke with the value, where, the runbook and the
``alerting silence add`` command); the theme colour follows the group's severity, green once resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import markdown, posting
from alerting.notify.receivers.posting import Secret, deliver, truncate
from alerting.transport import HTTPConfig

TEXT_LIMIT = 20000  # characters; Teams refuses cards over about 28 KB
# Teams shows a lone newline as a space: a paragraph break keeps our lines apart.
LINE_BREAK = "\n\n"
COLOURS = {"critical": "D7263D", "error": "F46036", "warning": "F2C14E", "info": "2E86AB"}
RESOLVED_COLOUR = "2EB67D"

_FIELDS = ("send_resolved", "http_config", "webhook_url", "webhook_url_file", "title", "summary", "text")


def default_text(notification: Notification) -> str:
    return markdown.message(notification, TEXT_LIMIT, title=False, line_break=LINE_BREAK)


def theme_colour(notification: Notification) -> str:
    if notification.status == "resolved":
        return RESOLVED_COLOUR
    return COLOURS[wording.level({"severity": wording.notification_severity(notification)})]


def msteams_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``msteams.default.*`` template names render to here."""
    return {
        "msteams.default.title": lambda: wording.title(notification),
        "msteams.default.summary": lambda: wording.title(notification),
        "msteams.default.text": lambda: default_text(notification),
    }


@dataclass(frozen=True)
class TeamsSettings:
    title: str = ""  # templates; "" means our default
    summary: str = ""
    text: str = ""
    send_resolved: bool = True


class TeamsWebhook:
    """What the MessageCard and Adaptive Card integrations share: the URL, sending, the answer."""

    kind = "msteams"
    service = "Microsoft Teams"

    def __init__(self, settings: Any, webhook_url: Secret, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved: bool = settings.send_resolved
        self._url = webhook_url
        self.http = http

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def request_body(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        url = self._url.value()
        # The path after the host carries the webhook's signature: keep all of it out of errors.
        secrets = (url, url.split("://", 1)[-1].split("/", 1)[-1])
        body = self.request_body(notification)
        deliver(self.http, "POST", url, service=self.service, secrets=secrets, json_body=body)


class MSTeams(TeamsWebhook):
    def request_body(self, notification: Notification) -> dict[str, Any]:
        s = self.settings
        defaults = msteams_defaults(notification)

        def field(name: str, text: str, fallback: str) -> str:
            return templates.render_or(text, notification, name, lambda: fallback, defaults=defaults)

        title = field("title", s.title, wording.title(notification))
        return {
            "@context": "http://schema.org/extensions",
            "type": "MessageCard",
            "title": title,
            "summary": field("summary", s.summary, title),
            "text": truncate(field("text", s.text, default_text(notification)), TEXT_LIMIT),
            "themeColor": theme_colour(notification),
        }


def webhook_url(config: Mapping[str, Any], what: str) -> Secret:
    """The entry's ``webhook_url`` or ``webhook_url_file`` (exactly one), never echoed in errors."""
    secret = posting.required_secret(config, "webhook_url", what)
    if secret.inline and not wording.is_web_link(secret.inline):
        raise entries.config_error(config, "webhook_url", f"{what}: webhook_url must be an http(s) URL")
    return Secret(secret.inline, secret.file, "webhook_url_file")


def msteams_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> MSTeams:
    """Build a Microsoft Teams integration from one ``msteams_configs`` entry."""
    what = "msteams_configs"
    entries.check_fields(config, _FIELDS, what)
    url = webhook_url(config, what)
    settings = TeamsSettings(
        title=templates.check_template(config, "title", what),
        summary=templates.check_template(config, "summary", what),
        text=templates.check_template(config, "text", what),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return MSTeams(settings, url, entries.http_config(config, what, global_config))
