"""Where acknowledgements made outside the worker are read: a reaction on the group's Slack message,
a PagerDuty incident acknowledged. Built from the routing by :func:`build_ack_sources`.

Both are asked by the flush, before an escalation step or a repeat would go out, so neither Slack
nor PagerDuty needs to reach the worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pagerduty
import structlog

from alerting.config.env import expand
from alerting.notify.acks import AckSeen, AckSource, AckStore
from alerting.notify.base import Notification
from alerting.notify.live import RoutingConfig
from alerting.notify.receivers.pagerduty import dedup_key
from alerting.notify.receivers.slack import SlackBot
from alerting.notify.store import NotifyStore
from alerting.transport import HTTPConfig, TLSConfig, read_secret_file, tls_context

log = structlog.get_logger(__name__)

ACKNOWLEDGED = "acknowledged"


class SlackReactions:
    """A reaction with ``emoji`` on the group's message, in any channel a bot-token Slack
    integration posted it to, acknowledges the group; the first user to react is who did."""

    name = "slack"

    def __init__(self, bots: Sequence[tuple[str, SlackBot]], emoji: str) -> None:
        self.bots = tuple(bots)
        self.emoji = emoji

    def acknowledged(
        self, store: AckStore, nid: str, group_key: str, group_labels: Mapping[str, str]
    ) -> AckSeen | None:
        for receiver, bot in self.bots:
            probe = Notification(receiver=receiver, group_key=group_key, group_labels=group_labels, alerts=())
            message = bot.message_of(probe)
            if message is None:
                continue
            users = bot.reactions(*message).get(self.emoji)
            if users:
                return AckSeen(by=f"slack:{users[0]}", at=time.time(), source=self.name)
        return None


class PagerDutyIncidents:
    """A PagerDuty incident for the group (found by the dedup key our events carry) that someone
    acknowledged in PagerDuty acknowledges the group. Only groups a PagerDuty integration has told
    (``integrations``: their notification-log keys) are looked up: no other group has an incident."""

    name = "pagerduty"

    def __init__(
        self, token: str, url: str, http: HTTPConfig, integrations: Sequence[str], timeout: float = 10.0
    ) -> None:
        self.token, self.url, self.timeout = token, url.rstrip("/"), timeout
        self.integrations = tuple(integrations)
        self.options: dict[str, Any] = {}
        if http.tls_config != TLSConfig():
            self.options["verify"] = tls_context(http.tls_config)
        if http.proxy_url:
            self.options["proxy"] = http.proxy_url

    def acknowledged(
        self, store: AckStore, nid: str, group_key: str, group_labels: Mapping[str, str]
    ) -> AckSeen | None:
        told = NotifyStore(store.r, store.n.removesuffix(":notify")).nflog_get_pairs(
            [(nid, integration) for integration in self.integrations]
        )
        if not any(told):
            return None
        client = pagerduty.RestApiV2Client(self.token, base_url=self.url, **self.options)
        client.max_http_attempts = 1
        client.max_network_attempts = 0
        client.timeout = self.timeout  # type: ignore[assignment]  # httpx takes float seconds
        with client:
            response = client.get(
                "/incidents", params={"incident_key": dedup_key(group_key), "statuses[]": ["acknowledged"]}
            )
            if response.status_code != 200:
                raise RuntimeError(f"PagerDuty answered {response.status_code} to GET /incidents")
            incidents: list[dict[str, Any]] = response.json().get("incidents") or []
        for incident in incidents:
            if incident.get("status") != ACKNOWLEDGED:
                continue
            acks = incident.get("acknowledgements") or [{}]
            first = acks[0]
            who = (first.get("acknowledger") or {}).get("summary") or "someone"
            return AckSeen(by=f"pagerduty:{who}", at=_time(first.get("at")), source=self.name)
        return None


def _time(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def build_ack_sources(config: RoutingConfig, env: Mapping[str, str]) -> list[AckSource]:
    """The sources the routing configures: Slack reactions wherever a Slack integration posts with a
    bot token; PagerDuty incidents when ``acknowledgements.pagerduty`` has an API token."""
    section = config.acknowledgements
    if section is None:
        return []
    sources: list[AckSource] = []
    bots = [
        (receiver.name, integ.integration)
        for receiver in config.receivers.values()
        for integ in receiver.integrations
        if isinstance(integ.integration, SlackBot)
    ]
    if bots:
        sources.append(SlackReactions(bots, section.slack_emoji))
    token = ""
    if section.pagerduty_api_token_file:
        try:
            token = read_secret_file(
                section.pagerduty_api_token_file, "acknowledgements.pagerduty.api_token_file"
            )
        except Exception as exc:
            log.error("config.invalid", msg=str(exc))
    elif section.pagerduty_api_token:
        token = str(expand(section.pagerduty_api_token, env).value)
    if token:
        url = str(expand(section.pagerduty_api_url, env).value)
        integrations = [
            integ.key
            for receiver in config.receivers.values()
            for integ in receiver.integrations
            if integ.kind == "pagerduty" and not integ.stands_for
        ]
        sources.append(PagerDutyIncidents(token, url, section.pagerduty_http_config, integrations))
    return sources
