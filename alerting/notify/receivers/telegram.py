"""Telegram receiver (``telegram_configs``): one message to one chat through the Bot API's sendMessage.

On the wire it is what Alertmanager sends: ``POST {api_url}/bot<token>/sendMessage`` with a JSON
object of string values (``chat_id``, ``text``, ``parse_mode`` unless empty, ``disable_notification``
when set, link previews off), the text cut to Telegram's 4096 characters. ``api_url`` defaults to
the global ``telegram_api_url``, then to Telegram's own; the bot token to the global
``telegram_bot_token`` (or ``telegram_bot_token_file``). A token file is read at send time, so a
rotated token applies without a restart.

In the ``HTML`` parse mode (the default) every label and annotation value a ``message`` template
inserts is HTML-escaped as Alertmanager's HTML templates escape it; the template's own markup is
not. Our default message (also what ``{{ template "telegram.default.message" . }}`` gives) says
what broke, where, with the value, the runbook and the silence command, in the chat's parse mode.

The bot token is part of the request URL: it is kept out of every error message this module raises.
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
from alerting.notify.receivers import posting
from alerting.notify.receivers.posting import Secret
from alerting.transport import HTTPConfig, client_for, retry_after

DEFAULT_API = "https://api.telegram.org"
MESSAGE_LIMIT = 4096  # characters of text Telegram accepts in one message
PARSE_MODES = ("HTML", "Markdown", "MarkdownV2", "")
TIMEOUT = 10.0
MAX_ALERTS = 10  # alerts our default message lists one by one; the rest are counted
_DESCRIPTION_LIMIT = 600  # characters of one alert's description in our default message
_SUMMARY_LIMIT = 300
_REDACTED = "<redacted>"

_FIELDS = (
    "send_resolved",
    "api_url",
    "bot_token",
    "bot_token_file",
    "chat_id",
    "message",
    "disable_notifications",
    "parse_mode",
    "http_config",
)

_ICONS = {"critical": "\U0001f534", "error": "\U0001f7e0", "warning": "\U0001f7e1", "info": "\U0001f535"}
_RESOLVED_ICON = "\u2705"

# What Go's html/template writes for the characters it escapes in text (Alertmanager's HTML mode).
_HTML_ENTITIES = str.maketrans(
    {"\0": "\ufffd", '"': "&#34;", "&": "&amp;", "'": "&#39;", "+": "&#43;", "<": "&lt;", ">": "&gt;"}
)
# Our own default message needs only the four entities Telegram names (links keep their ``+``).
_TELEGRAM_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_MARKDOWN_V2_SPECIAL = frozenset("_*[]()~`>#+-=|{}.!\\")
_MARKDOWN_SPECIAL = frozenset("_*`[\\")


def escape_html(text: str) -> str:
    """``text`` safe inside Telegram HTML, escaped exactly as Alertmanager's HTML templates do."""
    return text.translate(_HTML_ENTITIES)


def _html(text: str) -> str:
    return text.translate(_TELEGRAM_ENTITIES)


def escape_markdown(text: str, parse_mode: str) -> str:
    """``text`` shown literally in the Markdown or MarkdownV2 parse mode."""
    special = _MARKDOWN_V2_SPECIAL if parse_mode == "MarkdownV2" else _MARKDOWN_SPECIAL
    return "".join("\\" + ch if ch in special else ch for ch in text)


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """At most ``limit`` characters, the last one an ellipsis when cut (Alertmanager's rule)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clip(text: str, limit: int) -> str:
    # Cut plain text before it is escaped, so an entity is never split.
    return truncate(text.strip(), limit)


@dataclass(frozen=True)
class TelegramSettings:
    chat_id: int
    message: str = ""  # a template; "" means our default message
    parse_mode: str = "HTML"
    disable_notifications: bool = False
    send_resolved: bool = True


# ---------------------------------------------------------------------------------------------------
# The message


def _header(notification: Notification) -> str:
    """``🔴 FIRING:2 · critical · HighErrorRate`` with the status and the alert name in bold."""
    if notification.status == "resolved":
        icon, status = _RESOLVED_ICON, "RESOLVED"
    else:
        level = wording.level({"severity": wording.notification_severity(notification)}, default="error")
        icon, status = _ICONS[level], f"FIRING:{len(notification.firing)}"
    severity, name = (
        _html(wording.notification_severity(notification)),
        _html(wording.alertname(notification)),
    )
    parts = [f"<b>{status}</b>", severity, f"<b>{name}</b>" if name else ""]
    return f"{icon} " + " \u00b7 ".join(p for p in parts if p)


def _alert_html(alert: NotifyAlert, common: Mapping[str, str]) -> str:
    line = f"<b>{_html(_clip(wording.alert_summary(alert), _SUMMARY_LIMIT))}</b>"
    value = wording.format_value(alert.value)
    if value:
        line += f" <code>{_html(value)}</code>"
    if alert.status == "resolved":
        line = f"{_RESOLVED_ICON} {line}"
    lines = [line]
    description = wording.alert_description(alert)
    if description:
        lines.append(_html(_clip(description, _DESCRIPTION_LIMIT)))
    own = [(k, v) for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    if own:
        lines.append(" ".join(f"<code>{_html(_clip(f'{k}={v}', 200))}</code>" for k, v in own))
    if wording.is_web_link(alert.generator_url):
        lines.append(f'<a href="{_html(alert.generator_url)}">query</a>')
    return "\n".join(lines)


def _more(hidden: list[NotifyAlert]) -> str:
    firing = sum(1 for a in hidden if a.status == "firing")
    counts = [
        f"{firing} firing" if firing else "",
        f"{len(hidden) - firing} resolved" if len(hidden) > firing else "",
    ]
    return f"<i>and {len(hidden)} more ({', '.join(c for c in counts if c)})</i>"


def html_message(notification: Notification, max_alerts: int = MAX_ALERTS) -> str:
    """Our default message in Telegram's HTML: header, where, each alert, links, silence command.

    It always fits Telegram's limit: alerts that would not are counted in an "and N more" line.
    """
    head = [_header(notification)]
    where = wording.key_labels(notification)
    if where:
        head.append(" \u00b7 ".join(f"{_html(k)}: <b>{_html(_clip(v, 200))}</b>" for k, v in where))

    tail: list[str] = []
    links = [f'<a href="{_html(url)}">{text}</a>' for text, url in wording.links(notification)]
    if links:
        tail.append(" \u00b7 ".join(links))
    if notification.firing:
        tail.append(f"Silence: <code>{_html(wording.silence_command(notification))}</code>")

    alerts = list(notification.firing + notification.resolved)
    common = notification.common_labels
    # The raw HTML is never shorter than the text Telegram counts, so budgeting on it is safe.
    budget = MESSAGE_LIMIT - len("\n\n".join(head + tail)) - 2 * len("\n\n") - len(_more(alerts))
    sections: list[str] = []
    for alert in alerts[:max_alerts]:
        section = _alert_html(alert, common)
        if len(section) + len("\n\n") > budget:
            break
        sections.append(section)
        budget -= len(section) + len("\n\n")
    hidden = alerts[len(sections) :]
    if hidden:
        sections.append(_more(hidden))
    parts = ["\n".join(head), *sections]
    if tail:
        parts.append("\n".join(tail))
    return truncate("\n\n".join(parts))


def plain_message(notification: Notification, parse_mode: str = "") -> str:
    """Our default message for the other parse modes: the plain text, shown literally."""
    text = wording.default_text(notification).rstrip()
    if not parse_mode:
        return truncate(text)
    # Cut the text, not its escaped form, so no backslash is left without its character.
    limit = MESSAGE_LIMIT
    while True:
        escaped = escape_markdown(truncate(text, limit), parse_mode)
        if len(escaped) <= MESSAGE_LIMIT:
            return escaped
        limit -= len(escaped) - MESSAGE_LIMIT


def default_message(notification: Notification, parse_mode: str) -> str:
    return html_message(notification) if parse_mode == "HTML" else plain_message(notification, parse_mode)


def telegram_defaults(notification: Notification, parse_mode: str) -> templates.Defaults:
    """What Alertmanager's ``telegram.default.message`` template name renders to here."""
    return {"telegram.default.message": lambda: default_message(notification, parse_mode)}


def message_text(notification: Notification, settings: TelegramSettings) -> str:
    """The ``text`` sent for ``notification``: the ``message`` template or our default, cut to size."""

    def fallback() -> str:
        return default_message(notification, settings.parse_mode)

    # Alertmanager escapes the data in the HTML parse mode only; Markdown templates get it as is.
    escape = escape_html if settings.parse_mode == "HTML" else str
    text = templates.render_or(
        settings.message,
        notification,
        "message",
        fallback,
        escape=escape,
        defaults=telegram_defaults(notification, settings.parse_mode),
    )
    # Telegram refuses an empty message; the on-call person still gets the page.
    return truncate(text if text.strip() else fallback())


def request_body(notification: Notification, settings: TelegramSettings) -> dict[str, str]:
    """sendMessage's parameters, every value a string as Alertmanager's client sends them."""
    body = {
        "chat_id": str(settings.chat_id),
        "text": message_text(notification, settings),
        "disable_web_page_preview": "true",
    }
    if settings.parse_mode:
        body["parse_mode"] = settings.parse_mode
    if settings.disable_notifications:
        body["disable_notification"] = "true"
    return body


# ---------------------------------------------------------------------------------------------------
# Sending


def _answer_error(response: httpx.Response) -> DeliveryError | None:
    """None for a message Telegram took; otherwise the failure, retryable or not."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    status = response.status_code
    if 200 <= status < 300 and answer.get("ok") is not False:
        return None
    code = answer.get("error_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    description = str(answer.get("description") or f"HTTP {status}").strip()[:300]
    parameters = answer.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if code == 429 or status == 429:
        after = parameters.get("retry_after")
        wait = float(after) if isinstance(after, int | float) and not isinstance(after, bool) else None
        return DeliveryError(
            f"Telegram rate limited the bot: {description}",
            retryable=True,
            retry_after=wait if wait is not None else retry_after(response.headers),
        )
    if status >= 500 or code >= 500:
        return DeliveryError(f"Telegram answered {code}: {description}", retryable=True)
    moved = parameters.get("migrate_to_chat_id")
    if moved:
        description += f" (the group is now the supergroup {moved}: set chat_id to it)"
    return DeliveryError(f"Telegram refused the message ({code}): {description}", retryable=False)


class Telegram:
    kind = "telegram"

    def __init__(
        self,
        settings: TelegramSettings,
        api_url: str,
        bot_token: str,
        bot_token_file: str = "",
        http: HTTPConfig | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.api_url = api_url.rstrip("/")
        self._token, self._token_file = bot_token, bot_token_file
        self.http = http or HTTPConfig()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Telegram(chat_id={self.settings.chat_id}, api_url={self.api_url!r})"

    def _bot_token(self) -> str:
        return Secret(self._token, self._token_file, "bot_token_file").value()

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        token = self._bot_token()
        body = json.dumps(request_body(notification, self.settings)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"alerting/{__version__}"}
        try:
            response = client_for(self.http, self.timeout).post(
                f"{self.api_url}/bot{token}/sendMessage", content=body, headers=headers
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"Telegram timed out after {self.timeout:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            detail = redact(f"{type(exc).__name__}: {exc}", token)
            raise DeliveryError(f"Telegram unreachable: {detail}", retryable=True) from None
        failure = _answer_error(response)
        if failure is not None:
            raise DeliveryError(
                redact(str(failure), token), retryable=failure.retryable, retry_after=failure.retry_after
            ) from None


def redact(text: str, token: str) -> str:
    """``text`` without ``token`` (which rides in the request URL)."""
    return text.replace(token, _REDACTED) if token else text


# ---------------------------------------------------------------------------------------------------
# Configuration


def _chat_id(config: Mapping[str, Any], what: str) -> int:
    raw = config.get("chat_id")
    if raw is None or raw == "" or raw == 0:
        raise entries.config_error(config, "chat_id", f"{what}: chat_id is required")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise entries.config_error(
        config, "chat_id", f"{what}: chat_id must be a chat's numeric id (like -1001234567890), got {raw!r}"
    )


def telegram_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Telegram:
    """Build a Telegram integration from one ``telegram_configs`` entry."""
    what = "telegram_configs"
    entries.check_fields(config, _FIELDS, what)
    token, token_file = posting.inline_or_file(config, "bot_token", what)
    if not token and not token_file:
        token, token_file = posting.inline_or_file(global_config, "telegram_bot_token", "global")
    if not token and not token_file:
        raise entries.config_error(
            config,
            None,
            f"{what}: bot_token (or bot_token_file, or the global telegram_bot_token) is required",
        )
    chat_id = _chat_id(config, what)
    parse_mode = entries.string(config, "parse_mode", what, "HTML")
    if parse_mode not in PARSE_MODES:
        raise entries.config_error(
            config,
            "parse_mode",
            f'{what}: parse_mode must be "HTML", "Markdown", "MarkdownV2" or empty, got "{parse_mode}"',
        )
    settings = TelegramSettings(
        chat_id=chat_id,
        message=templates.check_template(config, "message", what),
        parse_mode=parse_mode,
        disable_notifications=entries.boolean(config, "disable_notifications", what, False),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    api_url = entries.string(config, "api_url", what)
    where: Mapping[str, Any] = config
    if not api_url:
        api_url = entries.string(global_config, "telegram_api_url", "global") or DEFAULT_API
        where = global_config
    if not wording.is_web_link(api_url):
        key = "api_url" if where is config else "telegram_api_url"
        raise entries.config_error(where, key, f"{what}: {key} must be an http(s) URL, got {api_url!r}")
    return Telegram(settings, api_url, token, token_file, entries.http_config(config, what, global_config))
