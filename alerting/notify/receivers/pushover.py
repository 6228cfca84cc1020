"""Pushover receiver (``pushover_configs``): one push notification per group notification.

On the wire it is what Alertmanager 0.25 sends: ``POST https://api.pushover.net/1/messages.json``
with every parameter in the query string and an empty body: ``token``, ``user``, ``title`` (cut to
250 characters), ``message`` (1024), ``url`` (512), ``url_title``, ``priority`` (emergency, 2, while
firing and normal, 0, once resolved, unless set), ``retry`` and ``expire`` in seconds (1m and 1h),
``sound``, and ``html=1`` when ``html`` is on, in which case label and annotation values a template
inserts are HTML-escaped. The address is fixed, as in Alertmanager: ``http_config`` (a proxy, TLS)
is how a different route is taken. Newer Alertmanager fields are accepted too: ``user_key_file``
and ``token_file`` (read at send time), ``device``, ``ttl`` and ``monospace``.

Our default message lists what broke with the value, where, and the silence command, in plain text
or in Pushover's HTML; the default link is the runbook. The token and user key ride in the URL:
they are kept out of every error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification, NotifyAlert
from alerting.notify.receivers import posting
from alerting.notify.receivers.posting import Secret, deliver, truncate
from alerting.notify.receivers.telegram import escape_html
from alerting.transport import HTTPConfig

API_URL = "https://api.pushover.net/1/messages.json"
TITLE_LIMIT = 250
MESSAGE_LIMIT = 1024
URL_LIMIT = 512
MAX_ALERTS = 5  # alerts our default message lists one by one; the rest are counted

_FIELDS = (
    "send_resolved",
    "http_config",
    "user_key",
    "user_key_file",
    "token",
    "token_file",
    "title",
    "message",
    "url",
    "url_title",
    "device",
    "sound",
    "priority",
    "retry",
    "expire",
    "ttl",
    "html",
    "monospace",
)
_TEMPLATE_FIELDS = ("title", "message", "url", "url_title", "device", "sound", "priority")
_PUSHOVER_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


@dataclass(frozen=True)
class PushoverSettings:
    title: str = ""  # templates; "" means our default
    message: str = ""
    url: str = ""
    url_title: str = ""
    device: str = ""
    sound: str = ""
    priority: str = ""
    retry: int = 60
    expire: int = 3600
    ttl: int = 0
    html: bool = False
    monospace: bool = False
    send_resolved: bool = True


# ---------------------------------------------------------------------------------------------------
# The default texts


def _html(text: str) -> str:
    return text.translate(_PUSHOVER_ENTITIES)


def _alert_line(alert: NotifyAlert, html: bool) -> str:
    summary = truncate(wording.alert_summary(alert), 200)
    value = wording.format_value(alert.value)
    mark = "\u2705 " if alert.status == "resolved" else ""
    if html:
        return f"{mark}<b>{_html(summary)}</b>" + (f" = {_html(value)}" if value else "")
    return f"{mark}{summary}" + (f" = {value}" if value else "")


def default_message(notification: Notification, html: bool = False) -> str:
    """What broke (each alert's summary and value), where, and the silence command; it always fits
    Pushover's 1024 characters: alerts that would not are counted in an "and N more" line."""
    esc = _html if html else str
    tail: list[str] = []
    where = wording.key_labels(notification)
    if where:
        tail.append("Where: " + esc(", ".join(f"{k}={truncate(v, 100)}" for k, v in where)))
    if notification.firing:
        tail.append("Silence: " + esc(wording.silence_command(notification)))
    tail_text = truncate("\n".join(tail), MESSAGE_LIMIT // 2)
    alerts = list(notification.firing + notification.resolved)
    budget = MESSAGE_LIMIT - len(tail_text) - 40
    lines: list[str] = []
    for alert in alerts[:MAX_ALERTS]:
        line = _alert_line(alert, html)
        if len(line) + 1 > budget:
            break
        lines.append(line)
        budget -= len(line) + 1
    hidden = len(alerts) - len(lines)
    if hidden:
        lines.append(f"and {hidden} more")
    return truncate("\n".join([*lines, tail_text] if tail_text else lines), MESSAGE_LIMIT)


def default_link(notification: Notification) -> tuple[str, str]:
    """The supplementary URL and its title: the runbook, else the dashboard, else the query."""
    for url, title in (
        (wording.runbook_url(notification), "Runbook"),
        (wording.dashboard_url(notification), "Dashboard"),
        (wording.generator_url(notification), "Query"),
    ):
        if url:
            return url, title
    return notification.external_url, ""


def pushover_defaults(notification: Notification, html: bool) -> templates.Defaults:
    """What Alertmanager's ``pushover.default.*`` template names render to here."""
    return {
        "pushover.default.title": lambda: wording.title(notification),
        "pushover.default.message": lambda: default_message(notification, html),
        "pushover.default.url": lambda: default_link(notification)[0],
    }


# ---------------------------------------------------------------------------------------------------
# The request


class Pushover:
    kind = "pushover"

    def __init__(
        self,
        settings: PushoverSettings,
        user_key: Secret,
        token: Secret,
        http: HTTPConfig,
        api_url: str = API_URL,
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._user, self._token = user_key, token
        self.http = http
        self.api_url = api_url

    def __repr__(self) -> str:
        return "Pushover()"

    def parameters(self, notification: Notification) -> dict[str, str]:
        """The message's parameters (without ``token`` and ``user``)."""
        s = self.settings
        defaults = pushover_defaults(notification, s.html)

        def text(name: str, fallback: str) -> str:
            return templates.render_or(
                getattr(s, name), notification, name, lambda: fallback, defaults=defaults
            )

        url, url_title = default_link(notification)
        message = templates.render_or(
            s.message,
            notification,
            "message",
            lambda: default_message(notification, s.html),
            escape=escape_html if s.html else str,
            defaults=defaults,
        )
        if not message.strip():
            message = default_message(notification, s.html)  # Pushover refuses an empty message
        firing = notification.status == "firing"
        params = {
            "title": truncate(text("title", wording.title(notification)), TITLE_LIMIT),
            "message": truncate(message, MESSAGE_LIMIT),
            "url": truncate(text("url", url), URL_LIMIT),
            "url_title": text("url_title", url_title if not s.url else ""),
            "priority": text("priority", "2" if firing else "0"),
            "retry": str(s.retry),
            "expire": str(s.expire),
            "sound": text("sound", ""),
        }
        if s.html:
            params["html"] = "1"
        if s.monospace:
            params["monospace"] = "1"
        if s.device:
            params["device"] = text("device", "")
        if s.ttl > 0:
            params["ttl"] = str(s.ttl)
        return params

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        token, user = self._token.value(), self._user.value()
        params = {"token": token, "user": user, **self.parameters(notification)}
        deliver(
            self.http,
            "POST",
            self.api_url,
            service="Pushover",
            secrets=(token, user),
            params=dict(sorted(params.items())),
            headers={"Content-Type": "text/plain"},
            content=b"",
        )


# ---------------------------------------------------------------------------------------------------
# Configuration


def _seconds(config: Mapping[str, Any], key: str, what: str, default: float) -> int:
    return int(entries.duration(config, key, what, default))


def pushover_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Pushover:
    """Build a Pushover integration from one ``pushover_configs`` entry."""
    what = "pushover_configs"
    entries.check_fields(config, _FIELDS, what)
    user_key = posting.required_secret(config, "user_key", what)
    token = posting.required_secret(config, "token", what)
    html = entries.boolean(config, "html", what, False)
    monospace = entries.boolean(config, "monospace", what, False)
    if html and monospace:
        raise entries.config_error(config, "monospace", f"{what}: set at most one of html and monospace")
    settings = PushoverSettings(
        **{key: templates.check_template(config, key, what) for key in _TEMPLATE_FIELDS},
        retry=_seconds(config, "retry", what, 60),
        expire=_seconds(config, "expire", what, 3600),
        ttl=_seconds(config, "ttl", what, 0) if config.get("ttl") else 0,
        html=html,
        monospace=monospace,
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return Pushover(settings, user_key, token, entries.http_config(config, what, global_config))
