"""Slack receiver (``slack_configs``): Block Kit messages through slack-sdk.

Two ways to reach Slack:

* **Bot token** (``token``/``token_file``, our extension): ``chat.postMessage`` to ``channel``. The
  first notification of a group starts a message; later ones update that message and reply in its
  thread (a firing update is broadcast to the channel, the resolve is not), so a resolve never shows
  up as a stray new message. The group -> (channel, ts) map lives in the key-value store the pipeline
  passes in ``global_config["_thread_store"]`` (see :mod:`alerting.notify.kvstore`); without one, a
  process-local map is used and threads survive only as long as the process.
  Every message carries the notification's idempotency key in Slack message metadata
  (``event_type`` ``alerting_notification``). A retry whose earlier attempt's outcome is unknown
  (a worker killed mid-send, an answer lost) first looks for a message with that key in the
  channel's recent history (``conversations.history``, or ``conversations.replies`` for a thread
  reply, with ``include_all_metadata``) and counts a hit as sent: the channel shows it once.
  A channel given by name is resolved to its ID through ``conversations.list`` for that look-up
  (remembered in the store); without that scope the retry is simply sent (at-least-once).
* **Slack app token** (``app_token``/``app_token_file`` or the global ``slack_app_token``, newer
  Alertmanager fields): the bot token above, posting to ``app_url`` (or the global ``slack_app_url``).
* **Incoming webhook** (``api_url``/``api_url_file``, or the global ``slack_api_url``): one new message
  per notification, exactly as Alertmanager does.

Every label and annotation value is escaped for mrkdwn (``&``, ``<``, ``>``), so a label cannot ping
``<!channel>`` or forge a link. Messages stay within Slack's limits (50 blocks, 3000 characters per
section, 150 per header); what does not fit is summarised as "and N more".

Alertmanager fields we accept but do not render (so existing files load): ``callback_id``,
``mrkdwn_in``, ``short_fields``, ``image_url``, ``thumb_url``, ``link_names`` (mentions are never
parsed), ``actions``, ``fields``.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from alerting.notify import entries, kvstore, templates, wording
from alerting.notify.base import (
    DeliveryError,
    Notification,
    NotifyAlert,
    unreachable,
)
from alerting.transport import (
    JSON_HEADERS,
    HTTPConfig,
    SecretFileError,
    TLSConfig,
    client_for,
    read_secret_file,
    retry_after,
    tls_context,
)

log = structlog.get_logger(__name__)

DEFAULT_API = "https://slack.com/api/"
SLACK_APP_URL = "https://slack.com/api/chat.postMessage"  # where an app token posts by default
MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
MAX_FIELDS = 10
BUTTON_TEXT_LIMIT = 75
FALLBACK_LIMIT = 3000  # the notification text; Slack truncates far later, phones much earlier
THREAD_TTL = 14 * 86400.0  # long enough for any incident; a group that fires again later starts anew
EVENT_TYPE = "alerting_notification"  # Slack message metadata type carrying our idempotency key
HISTORY_LIMIT = 200  # how far back (messages) a retry of unknown outcome looks for its message
CHANNEL_ID_TTL = 7 * 86400.0
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")

# Slack error codes that mean "try again later"; every other ok:false is about the request itself.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# chat.update errors after which we give up on the old message and start a new one.
_LOST_MESSAGE_ERRORS = frozenset(
    {"message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found"}
)

_COLOURS = {"critical": "#d7263d", "error": "#f46036", "warning": "#f2c14e", "info": "#2e86ab"}
_RESOLVED_COLOUR = "#2eb67d"
_ICONS = {"critical": ":red_circle:", "error": ":large_orange_circle:", "warning": ":large_yellow_circle:"}
_ICONS["info"] = ":large_blue_circle:"

# Fields that are Go templates over the notification (besides channel, username and icons).
_TEMPLATE_FIELDS = ("color", "title", "title_link", "pretext", "text", "footer", "fallback")

_FIELDS = (
    "send_resolved",
    "api_url",
    "api_url_file",
    "token",
    "token_file",
    "app_token",
    "app_token_file",
    "app_url",
    "channel",
    "username",
    "icon_emoji",
    "icon_url",
    "color",
    "title",
    "title_link",
    "pretext",
    "text",
    "footer",
    "fallback",
    "max_alerts",
    "timeout",
    "http_config",
    # accepted for Alertmanager compatibility, not rendered (see the module docstring)
    "callback_id",
    "mrkdwn_in",
    "short_fields",
    "image_url",
    "thumb_url",
    "link_names",
    "actions",
    "fields",
)


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_escaped(text: str, limit: int) -> str:
    """Cut mrkdwn to ``limit`` without splitting an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


@dataclass(frozen=True)
class SlackSettings:
    channel: str = ""
    username: str = ""
    icon_emoji: str = ""
    icon_url: str = ""
    color: str = ""
    title: str = ""
    title_link: str = ""
    pretext: str = ""
    text: str = ""
    footer: str = ""
    fallback: str = ""
    max_alerts: int = 10
    send_resolved: bool = False
    timeout: float = 10.0


# ---------------------------------------------------------------------------------------------------
# The message


def _level(notification: Notification) -> str:
    return wording.level({"severity": wording.notification_severity(notification)}, default="error")


def header_text(notification: Notification) -> str:
    """``:red_circle: FIRING:2 · critical · HighErrorRate`` (status, count, severity, alert name)."""
    icon = ":white_check_mark:" if notification.status == "resolved" else _ICONS[_level(notification)]
    status = notification.status.upper()
    if notification.firing:
        status += f":{len(notification.firing)}"
    parts = [status, wording.notification_severity(notification), wording.alertname(notification)]
    return f"{icon} " + " · ".join(p for p in parts if p)


def _alert_section(alert: NotifyAlert, common: Mapping[str, str]) -> str:
    line = f"*{escape(wording.alert_summary(alert))}*"
    value = wording.format_value(alert.value)
    if value:
        line += f"  `{escape(value)}`"
    if alert.status == "resolved":
        line = ":white_check_mark: " + line
    lines = [line]
    description = wording.alert_description(alert)
    if description:
        lines.append(escape(description))
    own = [(k, v) for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    if own:
        lines.append(" ".join(f"`{escape(k)}={escape(v)}`" for k, v in own))
    if wording.is_web_link(alert.generator_url):
        lines.append(f"<{escape(alert.generator_url)}|query>")
    return _cut_escaped("\n".join(lines), SECTION_LIMIT)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut_escaped(text, SECTION_LIMIT)}}


def _button(text: str, url: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": _cut(text, BUTTON_TEXT_LIMIT)},
        "url": url,
    }


def _alert_sections(notification: Notification, room: int) -> tuple[list[str], str]:
    """mrkdwn for up to ``room`` alerts (firing first), and the "and N more" line for the rest."""
    alerts = notification.firing + notification.resolved
    common = notification.common_labels
    shown = [_alert_section(a, common) for a in alerts[:room]]
    hidden = alerts[room:]
    if not hidden:
        return shown, ""
    firing = sum(1 for a in hidden if a.status == "firing")
    counts = [
        f"{firing} firing" if firing else "",
        f"{len(hidden) - firing} resolved" if len(hidden) > firing else "",
    ]
    return shown, f"and {len(hidden)} more ({', '.join(c for c in counts if c)})"


def slack_defaults(notification: Notification, max_alerts: int = 10) -> templates.Defaults:
    """What Alertmanager's ``slack.default.*`` template names render to here."""
    return {
        "slack.default.title": lambda: header_text(notification),
        "slack.default.text": lambda: _default_text(notification, max_alerts),
        "slack.default.fallback": lambda: escape(wording.title(notification)),
        "slack.default.titlelink": lambda: notification.external_url,
        "slack.default.username": lambda: "alerting",
        "slack.default.pretext": lambda: "",
        "slack.default.footer": lambda: "",
        "slack.default.iconemoji": lambda: "",
        "slack.default.iconurl": lambda: "",
        "slack.default.callbackid": lambda: "",
    }


def _default_text(notification: Notification, max_alerts: int) -> str:
    shown, more = _alert_sections(notification, max_alerts)
    return "\n\n".join([*shown, more] if more else shown)


def addressing(notification: Notification, settings: SlackSettings) -> dict[str, str]:
    """``channel``, ``username``, ``icon_emoji``, ``icon_url`` (each a template), those that are set."""
    defaults = slack_defaults(notification, settings.max_alerts)
    out = {}
    for name in ("channel", "username", "icon_emoji", "icon_url"):
        value = templates.render_or(
            getattr(settings, name), notification, name, lambda: "", defaults=defaults
        ).strip()
        if value:
            out[name] = value
    return out


def build_message(notification: Notification, settings: SlackSettings) -> dict[str, Any]:
    """The ``text`` and ``attachments`` of the message for ``notification`` (no channel/thread).

    Template fields run over the notification's data; in mrkdwn fields (``text``, ``pretext``,
    ``footer``, ``fallback``) the data is escaped, the template's own text is not.
    """
    resolved = notification.status == "resolved"
    defaults = slack_defaults(notification, settings.max_alerts)

    def plain(field: str, text: str, fallback: str) -> str:
        return templates.render_or(text, notification, field, lambda: fallback, defaults=defaults)

    def mrkdwn(field: str, text: str, fallback: str) -> str:
        return templates.render_or(
            text, notification, field, lambda: fallback, escape=escape, defaults=defaults
        )

    title = plain("title", settings.title, header_text(notification))
    head: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT)}}
    ]
    title_link = plain("title_link", settings.title_link, "")
    if wording.is_web_link(title_link):
        head.append(_section(f"<{escape(title_link)}|{escape(title)}>"))
    pretext = mrkdwn("pretext", settings.pretext, "")
    if pretext.strip():
        head.append(_section(pretext))
    where = wording.key_labels(notification)[:MAX_FIELDS]
    if where:
        fields = [
            {"type": "mrkdwn", "text": _cut_escaped(f"*{escape(k)}*\n{escape(v)}", FIELD_LIMIT)}
            for k, v in where
        ]
        head.append({"type": "section", "fields": fields})

    tail: list[dict[str, Any]] = []
    buttons = [_button(text, url) for text, url in wording.links(notification)]
    if buttons:
        tail.append({"type": "actions", "elements": buttons})
    notes = []
    footer = mrkdwn("footer", settings.footer, "")
    if footer.strip():
        notes.append(_cut_escaped(footer, SECTION_LIMIT))
    if not resolved:
        notes.append(f"Silence: `{escape(wording.silence_command(notification))}`")
    if notes:
        tail.append({"type": "context", "elements": [{"type": "mrkdwn", "text": n} for n in notes]})

    body: list[dict[str, Any]] = []
    text = mrkdwn("text", settings.text, "") if settings.text else ""
    if text.strip():
        body.append(_section(text))
    else:
        # One section per alert, as many as fit beside the fixed blocks.
        room = max(0, min(settings.max_alerts, MAX_BLOCKS - len(head) - len(tail) - 1))
        shown, more = _alert_sections(notification, room)
        body = [_section(section) for section in shown]
        if more:
            body.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})

    default_colour = _RESOLVED_COLOUR if resolved else _COLOURS[_level(notification)]
    colour = plain("color", settings.color, default_colour).strip() or default_colour
    fallback = mrkdwn("fallback", settings.fallback, escape(wording.title(notification)))
    return {
        "text": _cut_escaped(fallback, FALLBACK_LIMIT),
        "attachments": [{"color": colour, "blocks": head + body + tail}],
    }


# ---------------------------------------------------------------------------------------------------
# Errors


def _api_error(exc: SlackApiError, method: str) -> DeliveryError:
    response = exc.response
    status = response.status_code
    error = response.get("error") if isinstance(response.data, dict) else None
    if status == 429 or error == "ratelimited":
        after = retry_after(response.headers)
        return DeliveryError(f"Slack {method}: rate limited", retryable=True, retry_after=after)
    if status >= 500 or error in _TRANSIENT_ERRORS:
        return DeliveryError(f"Slack {method}: {error or f'HTTP {status}'}", retryable=True)
    return DeliveryError(f"Slack {method} failed: {error or f'HTTP {status}'}", retryable=False)


# ---------------------------------------------------------------------------------------------------
# Integrations


class SlackBot:
    """Posts with a bot token and keeps one thread per aggregation group."""

    kind = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        token: str,
        base_url: str,
        http: HTTPConfig,
        store: kvstore.KeyValueStore,
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._store = store
        # No retry handlers: a failed call comes straight back as a DeliveryError, our task retries.
        self._client = WebClient(
            token=token,
            base_url=base_url,
            timeout=int(settings.timeout),
            ssl=_ssl_context(http),
            proxy=http.proxy_url or None,
            retry_handlers=[],
        )

    @staticmethod
    def _thread_key(channel: str, notification: Notification) -> str:
        digest = hashlib.sha256(f"{channel}\n{notification.group_key}".encode()).hexdigest()
        return f"slack-thread:{digest[:40]}"

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return self._client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _api_error(exc, method) from None
        except OSError as exc:  # URLError, timeouts, TLS failures
            raise unreachable(f"Slack {method}", exc) from None

    def _read(self, method: str, **params: Any) -> Any:
        """A read method (``conversations.*``): Slack takes their arguments as form fields, not JSON."""
        try:
            return self._client.api_call(method, http_verb="GET", params=params)
        except SlackApiError as exc:
            raise _api_error(exc, method) from None
        except OSError as exc:  # URLError, timeouts, TLS failures
            raise unreachable(f"Slack {method}", exc) from None

    def send(self, notification: Notification) -> None:
        resolved = notification.status == "resolved"
        if resolved and not self.send_resolved:
            return
        message = build_message(notification, self.settings)
        # Only new messages carry the key: an update must not relabel the group's first message.
        tagged = {**message, **_metadata(notification)}
        identity = addressing(notification, self.settings)
        key = self._thread_key(identity["channel"], notification)
        thread = self._lookup(key)
        if thread is not None:
            channel, ts = thread
            # Update first: it is idempotent, so a retry after a failed reply does no harm.
            if self._update(channel, ts, message):
                if not (notification.earlier_attempt and self._posted(notification, channel, thread_ts=ts)):
                    self._call(
                        "chat.postMessage",
                        channel=channel,
                        thread_ts=ts,
                        reply_broadcast=not resolved,
                        **tagged,
                        **{k: v for k, v in identity.items() if k != "channel"},
                    )
                if resolved:
                    self._remember(key, "", 1.0)
                return
        found = self._posted(notification, identity["channel"]) if notification.earlier_attempt else None
        if found is not None:
            channel, ts = found
        else:
            answer = self._call("chat.postMessage", **tagged, **identity)
            channel, ts = answer["channel"], answer["ts"]
            self._remember_channel(identity["channel"], channel)
        if not resolved:
            self._remember(key, f"{channel} {ts}", THREAD_TTL)

    def _posted(
        self, notification: Notification, channel: str, thread_ts: str | None = None
    ) -> tuple[str, str] | None:
        """(channel id, ts) of a message already carrying this notification's key, or None.

        Looks through the channel's latest messages (a thread's replies for a reply). A failed
        look-up is not a reason to keep quiet: it answers None and the message is sent."""
        channel_id = self._channel_id(channel)
        if channel_id is None:
            log.info("slack_lookup_skipped", reason=f"no ID known for channel {channel}")
            return None
        try:
            if thread_ts is None:
                answer = self._read(
                    "conversations.history",
                    channel=channel_id,
                    limit=HISTORY_LIMIT,
                    include_all_metadata=True,
                )
            else:
                answer = self._read(
                    "conversations.replies",
                    channel=channel_id,
                    ts=thread_ts,
                    limit=HISTORY_LIMIT,
                    include_all_metadata=True,
                )
        except DeliveryError as exc:
            log.warning("slack_lookup_failed", error=str(exc))
            return None
        for message in answer.get("messages") or ():
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == EVENT_TYPE and payload.get("id") == notification.notification_id:
                log.info(
                    "slack_already_posted", ts=message.get("ts"), notification_id=notification.notification_id
                )
                return channel_id, str(message.get("ts"))
        return None

    @staticmethod
    def _channel_key(channel: str) -> str:
        """Where the ID of a channel given by name is remembered."""
        return "slack-channel:" + hashlib.sha256(channel.encode()).hexdigest()[:40]

    def _channel_id(self, channel: str) -> str | None:
        """The ID of ``channel`` (an ID already, one remembered, or found by conversations.list)."""
        if _CHANNEL_ID.match(channel):
            return channel
        key = self._channel_key(channel)
        try:
            known = self._store.get(key)
        except Exception:  # the store is a cache here
            known = None
        if known:
            return known
        name = channel.removeprefix("#")
        cursor = ""
        for _ in range(20):  # 20 pages of 1000 channels
            try:
                answer = self._read(
                    "conversations.list",
                    limit=1000,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    **({"cursor": cursor} if cursor else {}),
                )
            except DeliveryError as exc:
                log.warning("slack_lookup_failed", error=f"cannot list channels: {exc}")
                return None
            for item in answer.get("channels") or ():
                if item.get("name") == name:
                    self._remember_channel(channel, str(item["id"]))
                    return str(item["id"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                break
        return None

    def _remember_channel(self, channel: str, channel_id: str) -> None:
        if channel != channel_id:
            key = self._channel_key(channel)
            self._remember(key, channel_id, CHANNEL_ID_TTL)

    def message_of(self, notification: Notification) -> tuple[str, str] | None:
        """(channel, ts) of the message this integration started for the notification's group."""
        identity = addressing(notification, self.settings)
        return self._lookup(self._thread_key(identity["channel"], notification))

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """Reactions on one message: emoji name -> ids of the users who reacted with it."""
        try:
            answer = self._client.reactions_get(channel=channel, timestamp=ts, full=True)
        except SlackApiError as exc:
            raise _api_error(exc, "reactions.get") from None
        except OSError as exc:
            raise unreachable("Slack reactions.get", exc) from None
        found = (answer.get("message") or {}).get("reactions") or []
        return {str(r.get("name")): [str(u) for u in r.get("users") or []] for r in found}

    def _update(self, channel: str, ts: str, message: dict[str, Any]) -> bool:
        """Update the group's first message; False when it is gone and a new one must start."""
        try:
            self._client.api_call("chat.update", json={"channel": channel, "ts": ts, **message})
        except SlackApiError as exc:
            if exc.response.get("error") in _LOST_MESSAGE_ERRORS:
                return False
            raise _api_error(exc, "chat.update") from None
        except OSError as exc:
            raise unreachable("Slack chat.update", exc) from None
        return True

    def _lookup(self, key: str) -> tuple[str, str] | None:
        try:
            value = self._store.get(key)
        except Exception as exc:  # a broken store costs the thread, never the notification
            log.warning("slack_thread_store_failed", operation="get", error=str(exc))
            return None
        if not value or " " not in value:
            return None
        channel, ts = value.split(" ", 1)
        return channel, ts

    def _remember(self, key: str, value: str, ttl: float) -> None:
        try:
            self._store.set(key, value, ttl)
        except Exception as exc:  # the message is already out; failing now would send it twice
            log.warning("slack_thread_store_failed", operation="set", error=str(exc))


def _metadata(notification: Notification) -> dict[str, Any]:
    """Slack message metadata carrying the notification's idempotency key (none without one)."""
    if not notification.notification_id:
        return {}
    return {"metadata": {"event_type": EVENT_TYPE, "event_payload": {"id": notification.notification_id}}}


class SlackWebhook:
    """Posts through an incoming webhook: one message per notification."""

    kind = "slack"

    def __init__(self, settings: SlackSettings, url: str, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._url = url
        self._http = http

    def warm(self) -> None:
        """Build the pooled client (its TLS context) now, rather than in a storm's first send."""
        client_for(self._http, self.settings.timeout)

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        # Legacy webhooks honour channel, username and icons; current ones ignore them, harmlessly.
        body = {**build_message(notification, self.settings), **addressing(notification, self.settings)}
        try:
            # The process's pooled client: a storm of messages reuses its connections (no TLS
            # handshake per message), where slack-sdk's webhook client opened one per message.
            response = client_for(self._http, self.settings.timeout).post(
                self._url, content=orjson.dumps(body), headers=JSON_HEADERS
            )
        except httpx.HTTPError as exc:
            raise unreachable("Slack webhook", exc) from None
        status = response.status_code
        if status == 200:
            return
        # The webhook URL is a secret: never put it into the message.
        answer = _cut(response.text.strip(), 200)
        if status == 429:
            after = retry_after(response.headers)
            raise DeliveryError("Slack webhook: rate limited", retryable=True, retry_after=after)
        if status >= 500:
            raise DeliveryError(f"Slack webhook answered {status}: {answer}", retryable=True)
        raise DeliveryError(f"Slack webhook rejected the message ({status}): {answer}", retryable=False)


def _ssl_context(http: HTTPConfig) -> ssl.SSLContext | None:
    """slack-sdk's TLS settings from http_config's tls_config; None leaves the library's default."""
    return tls_context(http.tls_config) if http.tls_config != TLSConfig() else None


def _bearer_credentials(config: Mapping[str, Any], http: HTTPConfig, what: str) -> str:
    """The credentials of an ``authorization`` of type Bearer (or a ``bearer_token``), read now."""
    authz = http.authorization
    if authz is None or authz.type != "Bearer":
        return ""
    if not authz.credentials_file:
        return authz.credentials
    try:
        return read_secret_file(authz.credentials_file, "authorization credentials_file")
    except SecretFileError as exc:
        raise entries.config_error(config, "http_config", f"{what}: {exc}") from None


def _bot_base_url(api_url: str) -> str:
    """The Web API base from ``api_url``; Alertmanager users point it at .../chat.postMessage."""
    if not api_url:
        return DEFAULT_API
    base = api_url.removesuffix("/").removesuffix("chat.postMessage")
    return base if base.endswith("/") else base + "/"


def _app_token(
    config: Mapping[str, Any], global_config: Mapping[str, Any], http: HTTPConfig, what: str
) -> tuple[str, str]:
    """A Slack app's bot token (``app_token``/``app_token_file``, else the global ones unless the
    entry has its own ``api_url`` or authorization) and where it posts (``app_url``, else the global
    ``slack_app_url``, else chat.postMessage); ("", "") when there is none."""
    local = config.get("app_token") or config.get("app_token_file")
    if local and (config.get("api_url") or config.get("api_url_file")):
        raise entries.config_error(
            config, None, f"{what}: set at most one of api_url/api_url_file and app_token/app_token_file"
        )
    if local:
        token = entries.secret(config, "app_token", what)
    elif not (config.get("api_url") or config.get("api_url_file") or http.authorization is not None):
        token = entries.secret(global_config, "slack_app_token", "global")
    else:
        token = ""
    if not token:
        return "", ""
    if http.authorization is not None:
        raise entries.config_error(
            config, "http_config", f"{what}: http_config authorization cannot be set with a Slack app token"
        )
    url = entries.string(config, "app_url", what) or entries.string(global_config, "slack_app_url", "global")
    return token, url or SLACK_APP_URL


def slack_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> SlackBot | SlackWebhook:
    """Build a Slack integration from one ``slack_configs`` entry."""
    what = "slack_configs"
    entries.check_fields(config, _FIELDS, what)
    max_alerts = config.get("max_alerts", 10)
    if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 1:
        raise entries.config_error(
            config, "max_alerts", f"{what}: max_alerts must be a whole number of at least 1"
        )
    template_fields = {
        key: templates.check_template(config, key, what)
        for key in (*_TEMPLATE_FIELDS, "channel", "username", "icon_emoji", "icon_url")
    }
    settings = SlackSettings(
        **template_fields,
        max_alerts=max_alerts,
        send_resolved=entries.boolean(config, "send_resolved", what, False),
        timeout=entries.duration(config, "timeout", what, 10.0),
    )
    http = entries.http_config(config, what, global_config)
    token = entries.secret(config, "token", what)
    api_url = entries.secret(config, "api_url", what)
    app_token, app_url = _app_token(config, global_config, http, what)
    if app_token:
        token, api_url = app_token, app_url
    # Alertmanager's way to use a bot token: api_url .../chat.postMessage + http_config authorization.
    if not token and api_url.rstrip("/").endswith("chat.postMessage"):
        token = _bearer_credentials(config, http, what)
    if token:
        if not settings.channel:
            raise entries.config_error(config, None, f"{what}: channel is required with a bot token")
        return SlackBot(settings, token, _bot_base_url(api_url), http, kvstore.store_from(global_config))
    url = api_url or entries.secret(global_config, "slack_api_url", "global")
    if not url:
        raise entries.config_error(
            config, None, f"{what}: set token (bot) or api_url (incoming webhook), or slack_api_url in global"
        )
    if not wording.is_web_link(url):
        raise entries.config_error(config, "api_url", f"{what}: api_url must be an http(s) URL")
    return SlackWebhook(settings, url, http)
