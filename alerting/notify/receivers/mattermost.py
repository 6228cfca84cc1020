"""Mattermost receiver (``mattermost_configs``): one post per notification through an incoming
webhook.

On the wire it is what Alertmanager sends: ``POST {webhook_url}`` with JSON ``{"text", "channel",
"username", "icon_url", "icon_emoji", "attachments", "type", "props", "priority"}`` (the empty ones
left out), the text cut to Mattermost's 16383 characters. Every text is a template. ``priority``
follows Mattermost's rules: an unknown priority is sent as ``standard``, ``requested_ack`` only
beside ``important`` or ``urgent`` and ``persistent_notifications`` only beside ``urgent``.

The webhook URL comes from ``webhook_url`` or ``webhook_url_file`` (read at send time), else the
global ``mattermost_webhook_url`` or ``mattermost_webhook_url_file``; it stays out of every error.
Alertmanager reads the entry's own attachment-style fields (``title``, ``color``, ``fields``...) but
sends none of them; here, when any is set, they make one attachment ahead of ``attachments``.

Our default text (also ``{{ template "mattermost.default.text" . }}``) is Mattermost Markdown: what
broke with the value, where, the runbook and the silence command, label values escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import markdown, posting
from alerting.notify.receivers.posting import Secret, deliver, truncate
from alerting.transport import HTTPConfig

log = structlog.get_logger(__name__)

TEXT_LIMIT = 16383
PRIORITIES = ("urgent", "important", "standard")

# The attachment fields (each a template), at the top level of an entry and inside ``attachments``.
_ATTACHMENT_TEXTS = (
    "fallback",
    "color",
    "pretext",
    "text",
    "author_name",
    "author_link",
    "author_icon",
    "title",
    "title_link",
    "thumb_url",
    "footer",
    "footer_icon",
    "image_url",
)
_TOP_TEXTS = ("channel", "username", "icon_url", "icon_emoji", "type")
_FIELDS = (
    "send_resolved",
    "http_config",
    "webhook_url",
    "webhook_url_file",
    *_TOP_TEXTS,
    *_ATTACHMENT_TEXTS,
    "fields",
    "attachments",
    "props",
    "priority",
)


@dataclass(frozen=True)
class Attachment:
    texts: Mapping[str, str]  # attachment field -> template
    fields: tuple[tuple[str, str, bool | None], ...] = ()  # (title, value, short)


@dataclass(frozen=True)
class MattermostSettings:
    top: Mapping[str, str]  # channel, username, icons, type -> template
    text: str = ""  # "" means our default
    attachments: tuple[Attachment, ...] = ()
    card: str = ""
    priority: str = ""
    requested_ack: bool = False
    persistent_notifications: bool = False
    send_resolved: bool = True


def default_text(notification: Notification) -> str:
    return markdown.message(notification, TEXT_LIMIT)


def mattermost_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``mattermost.default.*`` template names render to here."""
    return {
        "mattermost.default.text": lambda: default_text(notification),
        "mattermost.default.title": lambda: wording.title(notification),
        "mattermost.default.fallback": lambda: wording.title(notification),
        "mattermost.default.titlelink": lambda: notification.external_url,
        "mattermost.default.username": lambda: "alerting",
        "mattermost.default.color": lambda: "danger" if notification.status == "firing" else "good",
    }


def _priority(settings: MattermostSettings, render: Any) -> dict[str, Any] | None:
    if not settings.priority:
        return None
    priority = render("priority.priority", settings.priority).strip().lower()
    if priority not in PRIORITIES:
        log.warning("mattermost_priority_unknown", priority=priority, sent="standard")
        priority = "standard"
    out: dict[str, Any] = {"priority": priority}
    if settings.requested_ack and priority != "standard":
        out["requested_ack"] = True
    if settings.persistent_notifications and priority == "urgent":
        out["persistent_notifications"] = True
    return out


def request_body(notification: Notification, settings: MattermostSettings) -> dict[str, Any]:
    defaults = mattermost_defaults(notification)

    def render(name: str, text: str) -> str:
        return templates.render_or(text, notification, name, lambda: "", defaults=defaults)

    text = templates.render_or(
        settings.text, notification, "text", lambda: default_text(notification), defaults=defaults
    )
    body: dict[str, Any] = {"text": truncate(text, TEXT_LIMIT)}
    for name, template in settings.top.items():
        value = render(name, template)
        if value:
            body[name] = value
    attachments = []
    for index, attachment in enumerate(settings.attachments):
        out: dict[str, Any] = {}
        for name, template in attachment.texts.items():
            value = render(f"attachments[{index}].{name}", template)
            if value:
                out[name] = value
        if attachment.fields:
            out["fields"] = [
                {
                    "title": render("fields.title", title),
                    "value": render("fields.value", value),
                    **({"short": short} if short is not None else {}),
                }
                for title, value, short in attachment.fields
            ]
        attachments.append(out)
    if attachments:
        body["attachments"] = attachments
    if settings.card:
        body["props"] = {"card": render("props.card", settings.card)}
    priority = _priority(settings, render)
    if priority:
        body["priority"] = priority
    return body


class Mattermost:
    kind = "mattermost"

    def __init__(self, settings: MattermostSettings, webhook_url: Secret, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._url = webhook_url
        self.http = http

    def __repr__(self) -> str:
        return "Mattermost()"

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        url = self._url.value()
        # The hook's id is the last part of its path: a secret like the whole URL.
        secrets = (url, url.rstrip("/").rsplit("/", 1)[-1])
        deliver(
            self.http,
            "POST",
            url,
            service="Mattermost",
            secrets=secrets,
            json_body=request_body(notification, self.settings),
        )


# ---------------------------------------------------------------------------------------------------
# Configuration


def _fields(config: Mapping[str, Any], what: str) -> tuple[tuple[str, str, bool | None], ...]:
    raw = config.get("fields") or []
    if not isinstance(raw, list):
        raise entries.config_error(config, "fields", f"{what}: fields must be a list")
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise entries.config_error(config, "fields", f"{what}: each field needs a title and a value")
        entries.check_fields(item, ("title", "value", "short"), f"{what} field")
        title = templates.check_template(item, "title", what)
        value = templates.check_template(item, "value", what)
        if not title or not value:
            raise entries.config_error(item, None, f"{what}: each field needs a title and a value")
        short = item.get("short")
        if short is not None and not isinstance(short, bool):
            raise entries.config_error(item, "short", f"{what}: short must be true or false")
        out.append((title, value, short))
    return tuple(out)


def _attachment(config: Mapping[str, Any], what: str, skip: tuple[str, ...] = ()) -> Attachment:
    names = [k for k in _ATTACHMENT_TEXTS if k not in skip and config.get(k)]
    texts = {k: templates.check_template(config, k, what) for k in names}
    return Attachment(texts, _fields(config, what))


def _webhook(config: Mapping[str, Any], global_config: Mapping[str, Any], what: str) -> Secret:
    for source, key, where in (
        (config, "webhook_url", what),
        (global_config, "mattermost_webhook_url", "global"),
    ):
        inline, path = posting.inline_or_file(source, key, where)
        if inline and not wording.is_web_link(inline):
            raise entries.config_error(source, key, f"{where}: {key} must be an http(s) URL")
        if inline or path:
            return Secret(inline, path, f"{key}_file")
    raise entries.config_error(
        config,
        None,
        f"{what}: webhook_url (or webhook_url_file) is required, or mattermost_webhook_url in global",
    )


def mattermost_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Mattermost:
    """Build a Mattermost integration from one ``mattermost_configs`` entry."""
    what = "mattermost_configs"
    entries.check_fields(config, _FIELDS, what)
    url = _webhook(config, global_config, what)
    attachments: list[Attachment] = []
    # The entry's own ``text`` is the post's text, not an attachment's.
    top_level = _attachment(config, what, skip=("text",))
    if top_level.texts or top_level.fields:
        attachments.append(top_level)
    raw = config.get("attachments") or []
    if not isinstance(raw, list) or not all(isinstance(a, Mapping) for a in raw):
        raise entries.config_error(config, "attachments", f"{what}: attachments must be a list of mappings")
    for item in raw:
        entries.check_fields(item, (*_ATTACHMENT_TEXTS, "fields"), f"{what} attachment")
        attachments.append(_attachment(item, what))
    props = entries.mapping(config, "props", what)
    entries.check_fields(props, ("card",), f"{what} props")
    priority = entries.mapping(config, "priority", what)
    entries.check_fields(
        priority, ("priority", "requested_ack", "persistent_notifications"), f"{what} priority"
    )
    settings = MattermostSettings(
        top={k: templates.check_template(config, k, what) for k in _TOP_TEXTS if config.get(k)},
        text=templates.check_template(config, "text", what),
        attachments=tuple(attachments),
        card=templates.check_template(props, "card", what) if props else "",
        priority=templates.check_template(priority, "priority", what) if priority else "",
        requested_ack=entries.boolean(priority, "requested_ack", what, False) if priority else False,
        persistent_notifications=(
            entries.boolean(priority, "persistent_notifications", what, False) if priority else False
        ),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return Mattermost(settings, url, entries.http_config(config, what, global_config))
