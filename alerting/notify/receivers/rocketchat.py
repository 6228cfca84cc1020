"""Rocket.Chat receiver (``rocketchat_configs``): one message per notification through the REST API's
``chat.postMessage``.

On the wire it is what Alertmanager sends: ``POST {api_url}/api/v1/chat.postMessage`` with the
headers ``X-Auth-Token`` and ``X-User-Id`` and JSON ``{"channel", "emoji", "avatar", "attachments":
[{"title", "title_link", "text", "image_url", "thumb_url", "color", "fields", "actions"}]}`` (the empty
ones left out), the title cut to 1024 characters. Every text is a template; a field's ``short``
falls back on ``short_fields``; actions are buttons. ``api_url`` defaults to the global
``rocketchat_api_url``, then ``https://open.rocket.chat/``; the token and its user id come from the
entry or the global ``rocketchat_token``/``rocketchat_token_id`` (or their ``_file``, read at send
time). Rocket.Chat can refuse a message with ``200 {"success": false}``: that is a permanent failure.

``send_resolved`` is off by default, as in Alertmanager. Our default text is Rocket.Chat Markdown:
what broke with the value, where, the runbook and the silence command, label values escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers import markdown, posting
from alerting.notify.receivers.posting import Secret, deliver, error_text, truncate
from alerting.transport import HTTPConfig

DEFAULT_API = "https://open.rocket.chat/"
TITLE_LIMIT = 1024
TEXT_LIMIT = 5000  # Rocket.Chat's default maximum message size

_TEXTS = ("channel", "color", "title", "title_link", "text", "emoji", "icon_url", "image_url", "thumb_url")
_FIELDS = (
    "send_resolved",
    "http_config",
    "api_url",
    "token",
    "token_file",
    "token_id",
    "token_id_file",
    *_TEXTS,
    "fields",
    "short_fields",
    "link_names",
    "actions",
)


@dataclass(frozen=True)
class RocketChatSettings:
    texts: Mapping[str, str]  # field -> template ("" where we default)
    fields: tuple[tuple[str, str, bool | None], ...] = ()
    short_fields: bool = False
    actions: tuple[tuple[str, str, str], ...] = ()  # (text, url, msg)
    send_resolved: bool = False


def default_text(notification: Notification) -> str:
    return markdown.message(notification, TEXT_LIMIT, title=False)


def default_colour(notification: Notification) -> str:
    return "red" if notification.status == "firing" else "green"


def rocketchat_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``rocketchat.default.*`` template names render to here."""
    return {
        "rocketchat.default.title": lambda: wording.title(notification),
        "rocketchat.default.titlelink": lambda: notification.external_url,
        "rocketchat.default.text": lambda: default_text(notification),
        "rocketchat.default.emoji": lambda: "",
        "rocketchat.default.iconurl": lambda: "",
    }


def request_body(notification: Notification, settings: RocketChatSettings) -> dict[str, Any]:
    defaults = rocketchat_defaults(notification)
    fallbacks = {
        "title": lambda: wording.title(notification),
        "title_link": lambda: notification.external_url,
        "text": lambda: default_text(notification),
        "color": lambda: default_colour(notification),
    }

    def render(name: str) -> str:
        fallback = fallbacks.get(name, lambda: "")
        return templates.render_or(
            settings.texts.get(name, ""), notification, name, fallback, defaults=defaults
        )

    def text(template: str, name: str) -> str:
        return templates.render_or(template, notification, name, lambda: "", defaults=defaults)

    attachment: dict[str, Any] = {}
    for name in ("title", "title_link", "text", "image_url", "thumb_url", "color"):
        value = render(name)
        if name == "title":
            value = truncate(value, TITLE_LIMIT)
        if value:
            attachment[name] = value
    if settings.fields:
        attachment["fields"] = [
            {
                "short": settings.short_fields if short is None else short,
                "title": text(title, "fields.title"),
                "value": text(value, "fields.value"),
            }
            for title, value, short in settings.fields
        ]
    if settings.actions:
        attachment["actions"] = [
            {
                "type": "button",
                "text": text(label, "actions.text"),
                "url": text(url, "actions.url"),
                "msg": text(msg, "actions.msg"),
                "is_webview": False,
                "msg_in_chat_window": False,
            }
            for label, url, msg in settings.actions
        ]
    body: dict[str, Any] = {}
    for key, name in (("channel", "channel"), ("emoji", "emoji"), ("avatar", "icon_url")):
        value = render(name)
        if value:
            body[key] = value
    body["attachments"] = [attachment]
    return body


class RocketChat:
    kind = "rocketchat"

    def __init__(
        self, settings: RocketChatSettings, api_url: str, token: Secret, token_id: Secret, http: HTTPConfig
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.url = api_url.rstrip("/") + "/api/v1/chat.postMessage"
        self._token, self._token_id = token, token_id
        self.http = http

    def __repr__(self) -> str:
        return f"RocketChat(url={self.url!r})"

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        token, user = self._token.value(), self._token_id.value()
        response = deliver(
            self.http,
            "POST",
            self.url,
            service="Rocket.Chat",
            secrets=(token,),
            json_body=request_body(notification, self.settings),
            headers={"X-Auth-Token": token, "X-User-Id": user},
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("success") is False:
            detail = posting.redact(error_text(response), (token,))
            raise DeliveryError(f"Rocket.Chat refused the message: {detail}", retryable=False)


# ---------------------------------------------------------------------------------------------------
# Configuration


def _secret(config: Mapping[str, Any], global_config: Mapping[str, Any], key: str, what: str) -> Secret:
    for source, name, where in ((config, key, what), (global_config, f"rocketchat_{key}", "global")):
        inline, path = posting.inline_or_file(source, name, where)
        if inline or path:
            return Secret(inline, path, f"{name}_file")
    raise entries.config_error(
        config, None, f"{what}: {key} (or {key}_file) is required, or rocketchat_{key} in global"
    )


def _fields(config: Mapping[str, Any], what: str) -> tuple[tuple[str, str, bool | None], ...]:
    raw = config.get("fields") or []
    if not isinstance(raw, list) or not all(isinstance(f, Mapping) for f in raw):
        raise entries.config_error(config, "fields", f"{what}: fields must be a list of mappings")
    out = []
    for item in raw:
        entries.check_fields(item, ("title", "value", "short"), f"{what} field")
        short = item.get("short")
        if short is not None and not isinstance(short, bool):
            raise entries.config_error(item, "short", f"{what}: short must be true or false")
        out.append(
            (
                templates.check_template(item, "title", what),
                templates.check_template(item, "value", what),
                short,
            )
        )
    return tuple(out)


_ACTION_FIELDS = (
    "type",
    "text",
    "url",
    "image_url",
    "is_webview",
    "webview_height_ratio",
    "msg",
    "msg_in_chat_window",
    "msg_processing_type",
)


def _actions(config: Mapping[str, Any], what: str) -> tuple[tuple[str, str, str], ...]:
    raw = config.get("actions") or []
    if not isinstance(raw, list) or not all(isinstance(a, Mapping) for a in raw):
        raise entries.config_error(config, "actions", f"{what}: actions must be a list of mappings")
    out = []
    for item in raw:
        entries.check_fields(item, _ACTION_FIELDS, f"{what} action")
        out.append(
            (
                templates.check_template(item, "text", what),
                templates.check_template(item, "url", what),
                templates.check_template(item, "msg", what),
            )
        )
    return tuple(out)


def rocketchat_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> RocketChat:
    """Build a Rocket.Chat integration from one ``rocketchat_configs`` entry."""
    what = "rocketchat_configs"
    entries.check_fields(config, _FIELDS, what)
    token_id = _secret(config, global_config, "token_id", what)
    token = _secret(config, global_config, "token", what)
    api_url = posting.api_url(config, global_config, what, "rocketchat_api_url", DEFAULT_API)
    settings = RocketChatSettings(
        texts={k: templates.check_template(config, k, what) for k in _TEXTS},
        fields=_fields(config, what),
        short_fields=entries.boolean(config, "short_fields", what, False),
        actions=_actions(config, what),
        send_resolved=entries.boolean(config, "send_resolved", what, False),
    )
    entries.boolean(config, "link_names", what, False)  # checked; Rocket.Chat links names itself
    return RocketChat(settings, api_url, token, token_id, entries.http_config(config, what, global_config))
