"""Webex receiver (``webex_configs``): one Markdown message to one room through the Messages API.

On the wire it is what Alertmanager sends: ``POST {api_url}`` (default: the global ``webex_api_url``,
then ``https://webexapis.com/v1/messages``) with ``{"markdown": ..., "roomId": ...}``, the text cut
to Webex's 7439 bytes. The bot's token travels as ``http_config.authorization`` (``credentials`` or
``credentials_file``), which Alertmanager requires and so do we.

Our default message (also what ``{{ template "webex.default.message" . }}`` gives) is Markdown:
what broke, where, each alert with its value, the runbook and the silence command; label and
annotation values are escaped so they cannot turn into markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from alerting import __version__
from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.notify.receivers.posting import answer_error, request
from alerting.transport import HTTPConfig

DEFAULT_API = "https://webexapis.com/v1/messages"
MESSAGE_LIMIT = 7439  # bytes of markdown Webex accepts in one message
TIMEOUT = 10.0
MAX_ALERTS = 20  # alerts our default message lists one by one; the rest are counted

_FIELDS = ("send_resolved", "http_config", "api_url", "message", "room_id")
# Enough to keep a value literal: emphasis, code, links and HTML; Webex leaves a lone ``-`` or ``.`` alone.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>~|")


def escape_markdown(text: str) -> str:
    """``text`` shown literally in Webex Markdown."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def truncate_bytes(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """At most ``limit`` UTF-8 bytes, the last character an ellipsis when cut, no character split."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - len("\u2026".encode())].decode("utf-8", "ignore") + "\u2026"


@dataclass(frozen=True)
class WebexSettings:
    room_id: str  # sent as written: Alertmanager 0.25 does not template it
    message: str = ""  # a template; "" means our default
    send_resolved: bool = True


def _alert_line(alert: NotifyAlert, common: Mapping[str, str]) -> str:
    line = f"- **{escape_markdown(wording.alert_summary(alert))}**"
    value = wording.format_value(alert.value)
    if value:
        line += f" `{value}`"
    if alert.status == "resolved":
        line += " (resolved)"
    own = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    if own:
        line += " \u00b7 " + escape_markdown(", ".join(own))
    description = wording.alert_description(alert)
    if description:
        line += "\n  " + escape_markdown(" ".join(description.split()))
    return line


def default_message(notification: Notification) -> str:
    """Our default message in Webex Markdown."""
    lines = [f"**{escape_markdown(wording.title(notification))}**"]
    where = wording.key_labels(notification)
    if where:
        lines.append(" \u00b7 ".join(f"{escape_markdown(k)}: **{escape_markdown(v)}**" for k, v in where))
    lines.append("")
    alerts = list(notification.firing + notification.resolved)
    lines += [_alert_line(a, notification.common_labels) for a in alerts[:MAX_ALERTS]]
    if len(alerts) > MAX_ALERTS:
        lines.append(f"- _and {len(alerts) - MAX_ALERTS} more_")
    links = [f"[{text}]({url})" for text, url in wording.links(notification)]
    if links:
        lines += ["", " \u00b7 ".join(links)]
    if notification.firing:
        lines += ["", f"Silence: `{wording.silence_command(notification)}`"]
    return truncate_bytes("\n".join(lines))


def webex_defaults(notification: Notification) -> templates.Defaults:
    return {"webex.default.message": lambda: default_message(notification)}


def request_body(notification: Notification, settings: WebexSettings) -> dict[str, str]:
    defaults = webex_defaults(notification)

    def fallback() -> str:
        return default_message(notification)

    text = templates.render_or(settings.message, notification, "message", fallback, defaults=defaults)
    return {"markdown": truncate_bytes(text if text.strip() else fallback()), "roomId": settings.room_id}


def _error(response: httpx.Response) -> DeliveryError:
    status = response.status_code
    try:
        answer = response.json()
    except ValueError:
        answer = None
    detail = ""
    if isinstance(answer, dict):
        detail = str(answer.get("message") or "")
        errors = answer.get("errors")
        if isinstance(errors, list):
            detail = "; ".join(
                [detail] + [str(e.get("description", e)) for e in errors if isinstance(e, dict)]
            )
    detail = detail.strip("; ")[:300] or response.text.strip()[:300] or f"HTTP {status}"
    return answer_error(response, "Webex", detail, retryable=status == 429 or status >= 500)


class Webex:
    kind = "webex"

    def __init__(
        self, settings: WebexSettings, api_url: str, http: HTTPConfig, timeout: float = TIMEOUT
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.api_url = api_url
        self.http = http
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Webex(room_id={self.settings.room_id!r}, api_url={self.api_url!r})"

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        body = json.dumps(request_body(notification, self.settings)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"alerting/{__version__}"}
        response = request(
            self.http,
            "POST",
            self.api_url,
            service="Webex",
            headers=headers,
            content=body,
            timeout=self.timeout,
        )
        if not 200 <= response.status_code < 300:
            raise _error(response)


def webex_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Webex:
    """Build a Webex integration from one ``webex_configs`` entry."""
    what = "webex_configs"
    entries.check_fields(config, _FIELDS, what)
    room_id = entries.string(config, "room_id", what).strip()
    if not room_id:
        raise entries.config_error(config, None, f"{what}: room_id is required")
    http = entries.http_config(config, what, global_config)
    if http.authorization is None or not (
        http.authorization.credentials or http.authorization.credentials_file
    ):
        key = "http_config" if "http_config" in config else None
        raise entries.config_error(
            config, key, f"{what}: http_config.authorization with the bot's token (credentials) is required"
        )
    api_url = entries.string(config, "api_url", what)
    where: Mapping[str, Any] = config
    if not api_url:
        api_url = entries.string(global_config, "webex_api_url", "global") or DEFAULT_API
        where = global_config
    if not wording.is_web_link(api_url):
        key = "api_url" if where is config else "webex_api_url"
        raise entries.config_error(where, key, f"{what}: {key} must be an http(s) URL, got {api_url!r}")
    settings = WebexSettings(
        room_id=room_id,
        message=templates.check_template(config, "message", what),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return Webex(settings, api_url, http)
