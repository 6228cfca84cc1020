"""Microsoft Teams receiver for Power Automate workflows (``msteamsv2_configs``): one Adaptive Card
per notification.

On the wire it is what Alertmanager sends: ``POST {webhook_url}`` with JSON ``{"type": "message",
"attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
"content": <an AdaptiveCard 1.2 of two TextBlocks, the title and the text, full width>}]}``. The
title block is coloured ``Attention`` while firing and ``Good`` once resolved. ``title`` and
``text`` are templates; ``send_resolved`` is on by default; the webhook URL (or
``webhook_url_file``, read at send time) stays out of every error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import markdown
from alerting.notify.receivers.msteams import TeamsSettings, TeamsWebhook, webhook_url
from alerting.notify.receivers.posting import truncate

TEXT_LIMIT = 20000
_FIELDS = ("send_resolved", "http_config", "webhook_url", "webhook_url_file", "title", "text")


def default_text(notification: Notification) -> str:
    # Adaptive Card TextBlocks take a Markdown subset: bold, italics, lists and links.
    return markdown.message(notification, TEXT_LIMIT, title=False)


def msteamsv2_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``msteamsv2.default.*`` template names render to here."""
    return {
        "msteamsv2.default.title": lambda: wording.title(notification),
        "msteamsv2.default.text": lambda: default_text(notification),
    }


def adaptive_card(title: str, text: str, colour: str) -> dict[str, Any]:
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": [
            {
                "type": "TextBlock",
                "text": title,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "style": "heading",
                "color": colour,
            },
            {"type": "TextBlock", "text": text, "wrap": True},
        ],
        "msteams": {"width": "full"},
    }


class MSTeamsV2(TeamsWebhook):
    kind = "msteamsv2"

    def request_body(self, notification: Notification) -> dict[str, Any]:
        s = self.settings
        defaults = msteamsv2_defaults(notification)

        def field(name: str, text: str, fallback: str) -> str:
            return templates.render_or(text, notification, name, lambda: fallback, defaults=defaults)

        title = field("title", s.title, wording.title(notification))
        text = truncate(field("text", s.text, default_text(notification)), TEXT_LIMIT)
        colour = "Good" if notification.status == "resolved" else "Attention"
        attachment = {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": adaptive_card(title, text, colour),
        }
        return {"type": "message", "attachments": [attachment]}


def msteamsv2_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> MSTeamsV2:
    """Build a Microsoft Teams (workflows) integration from one ``msteamsv2_configs`` entry."""
    what = "msteamsv2_configs"
    entries.check_fields(config, _FIELDS, what)
    url = webhook_url(config, what)
    settings = TeamsSettings(
        title=templates.check_template(config, "title", what),
        text=templates.check_template(config, "text", what),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return MSTeamsV2(settings, url, entries.http_config(config, what, global_config))
