"""VictorOps (Splunk On-Call) receiver (``victorops_configs``): the REST endpoint integration.

On the wire it is what Alertmanager sends: ``POST {api_url}<api_key>/<routing_key>`` with a JSON
object of strings: ``message_type`` (``CRITICAL`` unless set to ``INFO`` or ``WARNING``;
``RECOVERY`` when the group is resolved), ``entity_id`` (the SHA-256 of the group key, so the
resolve closes the incident the trigger opened), ``entity_display_name``, ``state_message`` (cut to
20480 characters), ``monitoring_tool`` and every ``custom_fields`` entry. The API key (or
``api_key_file``, read at send time) falls back to the global ``victorops_api_key``, the URL to
``victorops_api_url``. The key is part of the URL: it is kept out of every error message.

Our default state message is the plain text every receiver shares (what broke, where, the value,
the runbook and the ``alerting silence add`` command); the display name is the group's title.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.errors import ConfigError
from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import posting
from alerting.notify.receivers.posting import deliver, group_hash, truncate

DEFAULT_API = "https://alert.victorops.com/integrations/generic/20131114/alert/"
STATE_MESSAGE_LIMIT = 20480
MESSAGE_TYPES = ("INFO", "WARNING", "CRITICAL")
MONITORING_TOOL = "alerting"
# Fields VictorOps or the integration itself sets: custom_fields may not replace them.
RESERVED_FIELDS = (
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "entity_id",
    "entity_state",
)

_FIELDS = (
    *posting.KEYED_API_FIELDS,
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "custom_fields",
)


@dataclass(frozen=True)
class VictorOpsSettings:
    routing_key: str  # a template
    message_type: str = ""  # templates; "" means our default
    state_message: str = ""
    entity_display_name: str = ""
    monitoring_tool: str = ""
    custom_fields: tuple[tuple[str, str], ...] = ()
    send_resolved: bool = True


def default_state_message(notification: Notification) -> str:
    return truncate(wording.default_text(notification).rstrip(), STATE_MESSAGE_LIMIT)


def victorops_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``victorops.default.*`` template names render to here."""
    return {
        "victorops.default.state_message": lambda: default_state_message(notification),
        "victorops.default.entity_display_name": lambda: wording.title(notification),
        "victorops.default.monitoring_tool": lambda: MONITORING_TOOL,
    }


class VictorOps(posting.KeyedAPI[VictorOpsSettings]):
    kind = "victorops"

    def _render(self, notification: Notification, name: str, text: str, fallback: str) -> str:
        return templates.render_or(
            text, notification, name, lambda: fallback, defaults=victorops_defaults(notification)
        )

    def request_body(self, notification: Notification) -> dict[str, str]:
        s = self.settings
        if notification.status == "resolved":
            message_type = "RECOVERY"
        else:
            message_type = self._render(notification, "message_type", s.message_type, "CRITICAL")
            if message_type not in MESSAGE_TYPES:
                message_type = "CRITICAL"
        body = {
            "message_type": message_type,
            "entity_id": group_hash(notification.group_key),
            "entity_display_name": self._render(
                notification, "entity_display_name", s.entity_display_name, wording.title(notification)
            ),
            "state_message": truncate(
                self._render(
                    notification, "state_message", s.state_message, default_state_message(notification)
                ),
                STATE_MESSAGE_LIMIT,
            ),
            "monitoring_tool": self._render(
                notification, "monitoring_tool", s.monitoring_tool, MONITORING_TOOL
            ),
        }
        for key, text in s.custom_fields:
            body[key] = self._render(notification, f"custom_fields.{key}", text, "")
        return body

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        key = self._key.value()
        routing_key = self._render(notification, "routing_key", self.settings.routing_key, "")
        deliver(
            self.http,
            "POST",
            f"{self.api_url}{key}/{routing_key}",
            service="VictorOps",
            secrets=(key,),
            json_body=self.request_body(notification),
        )


def victorops_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> VictorOps:
    """Build a VictorOps integration from one ``victorops_configs`` entry."""
    what = "victorops_configs"
    entries.check_fields(config, _FIELDS, what)
    routing_key = templates.check_template(config, "routing_key", what)
    if not routing_key:
        raise entries.config_error(config, None, f"{what}: routing_key is required")
    custom = entries.mapping(config, "custom_fields", what)
    for name in custom:
        if name in RESERVED_FIELDS:
            key_pos = getattr(custom, "key_pos", {})
            raise ConfigError(
                f"{what}: custom_fields may not set {name}, which the integration sets itself",
                key_pos.get(name) or entries.position(custom),
            )
    message_type = templates.check_template(config, "message_type", what)
    settings = VictorOpsSettings(
        routing_key=routing_key,
        message_type=message_type,
        state_message=templates.check_template(config, "state_message", what),
        entity_display_name=templates.check_template(config, "entity_display_name", what),
        monitoring_tool=templates.check_template(config, "monitoring_tool", what),
        custom_fields=tuple((str(k), templates.check_template(custom, k, what)) for k in custom),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    key = posting.api_key(config, global_config, what, "victorops_api_key")
    api_url = posting.api_url(config, global_config, what, "victorops_api_url", DEFAULT_API)
    return VictorOps(settings, api_url, key, entries.http_config(config, what, global_config))
