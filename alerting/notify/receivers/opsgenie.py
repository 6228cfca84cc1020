"""Opsgenie receiver (``opsgenie_configs``): one Opsgenie alert per aggregation group, Alert API v2.

On the wire it is what Alertmanager sends: a firing group is ``POST {api_url}v2/alerts`` with the
group's alias (the SHA-256 of its group key), message (cut to Opsgenie's 130 characters),
description, details (the common labels plus ``details``), source, responders, tags, note,
priority, entity and actions; with ``update_alerts`` the message and description of an alert that
already exists are replaced too (``PUT .../message`` and ``.../description``). A resolved group
closes the alert (``POST .../v2/alerts/<alias>/close?identifierType=alias``). Every request carries
``Authorization: GenieKey <api_key>``; the key (or ``api_key_file``, read at send time) falls back
to the global ``opsgenie_api_key``, the URL to ``opsgenie_api_url``.

Our default message says what broke and where in one line; the default description is the plain
text every receiver shares: the value, the runbook and the ``alerting silence add`` command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import posting
from alerting.notify.receivers.posting import deliver, group_hash, truncate

DEFAULT_API = "https://api.opsgenie.com/"
MESSAGE_LIMIT = 130  # characters Opsgenie keeps of an alert's message
DESCRIPTION_LIMIT = 15000
RESPONDER_TYPES = ("team", "teams", "user", "escalation", "schedule")

_FIELDS = (
    *posting.KEYED_API_FIELDS,
    "message",
    "description",
    "source",
    "details",
    "entity",
    "responders",
    "actions",
    "tags",
    "note",
    "priority",
    "update_alerts",
)
_RESPONDER_FIELDS = ("id", "name", "username", "type")
_TEMPLATE_FIELDS = ("message", "description", "source", "entity", "actions", "tags", "note", "priority")


@dataclass(frozen=True)
class Responder:
    id: str = ""
    name: str = ""
    username: str = ""
    type: str = ""


@dataclass(frozen=True)
class OpsgenieSettings:
    message: str = ""  # templates; "" means our default
    description: str = ""
    source: str = ""
    entity: str = ""
    actions: str = ""
    tags: str = ""
    note: str = ""
    priority: str = ""
    details: tuple[tuple[str, str], ...] = ()
    responders: tuple[Responder, ...] = ()
    update_alerts: bool = False
    send_resolved: bool = True


# ---------------------------------------------------------------------------------------------------
# The default texts


def default_message(notification: Notification) -> str:
    """One line: ``HighErrorRate: 5xx 3.2/s (3.2) · service=api instance=web-1``, or a count."""
    name = wording.alertname(notification) or "alert"
    alerts = notification.firing or notification.alerts
    if notification.status == "resolved":
        what = "resolved"
    elif len(alerts) == 1:
        (alert,) = alerts
        what = wording.alert_summary(alert)
        value = wording.format_value(alert.value)
        if value and value not in what:
            what += f" ({value})"
    else:
        what = f"{len(alerts)} firing"
    where = " ".join(f"{k}={v}" for k, v in wording.key_labels(notification))
    text = f"{name}: {what}" if what != name else name
    return truncate(f"{text} \u00b7 {where}" if where else text, MESSAGE_LIMIT)


def default_description(notification: Notification) -> str:
    return truncate(wording.default_text(notification).rstrip(), DESCRIPTION_LIMIT)


def opsgenie_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``opsgenie.default.*`` template names render to here."""
    return {
        "opsgenie.default.message": lambda: default_message(notification),
        "opsgenie.default.description": lambda: default_description(notification),
        "opsgenie.default.source": lambda: notification.external_url,
        "opsgenie.default.tags": lambda: "",
        "opsgenie.default.teams": lambda: "",
    }


def _split(text: str) -> list[str]:
    # As Alertmanager splits tags and actions: on commas, empty items dropped, the rest as written.
    return [item for item in text.strip().split(",") if item]


# ---------------------------------------------------------------------------------------------------
# The requests


class Opsgenie(posting.KeyedAPI[OpsgenieSettings]):
    kind = "opsgenie"

    def _field(self, notification: Notification, name: str, text: str, fallback: str = "") -> str:
        return templates.render_or(
            text, notification, name, lambda: fallback, defaults=opsgenie_defaults(notification)
        )

    def create_body(self, notification: Notification) -> dict[str, Any]:
        """The create request's JSON (``alias`` through ``actions``), empty optional fields left out."""
        s = self.settings

        def field(name: str, fallback: str = "") -> str:
            return self._field(notification, name, getattr(s, name), fallback)

        details = dict(notification.common_labels)
        for key, text in s.details:
            details[key] = self._field(notification, f"details.{key}", text)
        # Opsgenie refuses an alert without a message: a template rendering nothing gets ours.
        message = field("message", default_message(notification))
        if not message.strip():
            message = default_message(notification)
        body: dict[str, Any] = {
            "alias": group_hash(notification.group_key),
            "message": truncate(message, MESSAGE_LIMIT),
            "description": field("description", default_description(notification)),
            "details": details,
            "source": field("source", notification.external_url),
        }
        responders = self._responders(notification)
        optional: dict[str, Any] = {
            "responders": responders,
            "tags": _split(field("tags")),
            "note": field("note"),
            "priority": field("priority"),
            "entity": field("entity"),
            "actions": _split(field("actions")),
        }
        body.update({k: v for k, v in optional.items() if v})
        if not body["description"]:
            del body["description"]
        return body

    def _responders(self, notification: Notification) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for i, r in enumerate(self.settings.responders):
            rendered = {
                key: self._field(notification, f"responders[{i}].{key}", getattr(r, key))
                for key in _RESPONDER_FIELDS
            }
            if not any(rendered.values()):
                continue  # filled from labels that this group does not have
            if rendered["type"] == "teams":
                out += [{"name": team, "type": "team"} for team in _split(rendered["name"])]
                continue
            out.append({k: v for k, v in rendered.items() if v or k == "type"})
        return out

    def send(self, notification: Notification) -> None:
        resolved = notification.status == "resolved"
        if resolved and not self.send_resolved:
            return
        key = self._api_key(notification)
        headers = {"Authorization": f"GenieKey {key}"}
        alias = group_hash(notification.group_key)
        by_alias = {"identifierType": "alias"}

        def call(
            method: str, path: str, body: Mapping[str, Any], params: Mapping[str, str] | None = None
        ) -> None:
            deliver(
                self.http,
                method,
                self.api_url + path,
                service="Opsgenie",
                secrets=(key,),
                json_body=body,
                params=params,
                headers=headers,
            )

        if resolved:
            source = self._field(notification, "source", self.settings.source, notification.external_url)
            call("POST", f"v2/alerts/{alias}/close", {"source": source}, by_alias)
            return
        body = self.create_body(notification)
        call("POST", "v2/alerts", body)
        if self.settings.update_alerts:
            message = {"message": body["message"]} if body.get("message") else {}
            description = {"description": body["description"]} if body.get("description") else {}
            call("PUT", f"v2/alerts/{alias}/message", message, by_alias)
            call("PUT", f"v2/alerts/{alias}/description", description, by_alias)

    def _api_key(self, notification: Notification) -> str:
        key = self._key.value()
        # Alertmanager runs the key through the template engine; a plain key comes out unchanged.
        if "{{" in key:
            key = templates.render_or(key, notification, "api_key", lambda: key)
        return key.strip()


# ---------------------------------------------------------------------------------------------------
# Configuration


def _responders(config: Mapping[str, Any], what: str) -> tuple[Responder, ...]:
    items = config.get("responders") or []
    if not isinstance(items, list):
        raise entries.config_error(config, "responders", f"{what}: responders must be a list")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise entries.config_error(config, "responders", f"{what}: each responder is a mapping")
        entries.check_fields(item, _RESPONDER_FIELDS, f"{what} responder")
        values = {key: templates.check_template(item, key, what) for key in _RESPONDER_FIELDS}
        if not (values["id"] or values["name"] or values["username"]):
            raise entries.config_error(item, None, f"{what}: a responder needs an id, a name or a username")
        kind = values["type"]
        # Checked in any case but sent as written, as Alertmanager does ("teams" must be lower case
        # to be split into teams).
        if "{{" not in kind and kind.lower() not in RESPONDER_TYPES:
            raise entries.config_error(
                item,
                "type",
                f"{what}: responder type must be one of {', '.join(RESPONDER_TYPES)}, got {kind!r}",
            )
        out.append(Responder(values["id"], values["name"], values["username"], kind))
    return tuple(out)


def opsgenie_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Opsgenie:
    """Build an Opsgenie integration from one ``opsgenie_configs`` entry."""
    what = "opsgenie_configs"
    entries.check_fields(config, _FIELDS, what)
    details = config.get("details") or {}
    if not isinstance(details, Mapping):
        raise entries.config_error(config, "details", f"{what}: details must be a mapping of name to text")
    settings = OpsgenieSettings(
        **{key: templates.check_template(config, key, what) for key in _TEMPLATE_FIELDS},
        details=tuple((str(k), templates.check_template(details, k, what)) for k in details),
        responders=_responders(config, what),
        update_alerts=entries.boolean(config, "update_alerts", what, False),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    key = posting.api_key(config, global_config, what, "opsgenie_api_key")
    api_url = posting.api_url(config, global_config, what, "opsgenie_api_url", DEFAULT_API)
    return Opsgenie(settings, api_url, key, entries.http_config(config, what, global_config))
