"""The live routing the notification pipeline runs on: the route tree and the other parsed
sections of alerting.yml, with every receiver's integrations built (see alerting.worker.compose)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerting.notify.base import Integration
from alerting.routing.inhibit import InhibitRule
from alerting.routing.route import Route
from alerting.routing.timeintervals import TimeInterval

CONSOLE = "console_configs"


@dataclass(frozen=True)
class ReceiverIntegration:
    """One integration of a receiver; ``key`` names it in the notification log."""

    receiver: str
    config_key: str
    index: int
    integration: Integration = field(compare=False)
    stands_for: str = ""  # set when a console integration replaces one whose secrets are missing

    @property
    def kind(self) -> str:
        return self.config_key.removesuffix("_configs")

    @property
    def key(self) -> str:
        if self.stands_for:  # its own log entries: a real integration configured later starts fresh
            return f"{self.receiver}/console-standin/{self.index}"
        return f"{self.receiver}/{self.kind}/{self.index}"

    @property
    def send_resolved(self) -> bool:
        return bool(getattr(self.integration, "send_resolved", True))


@dataclass(frozen=True)
class Receiver:
    name: str
    integrations: tuple[ReceiverIntegration, ...]
    fallback: str | None = None  # receiver that gets what this one permanently failed to deliver


@dataclass(frozen=True)
class RoutingConfig:
    """A loaded ``alerting.yml``: route tree, receivers, inhibition rules, time intervals."""

    route: Route
    receivers: Mapping[str, Receiver]
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: Mapping[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    global_config: Mapping[str, Any] = field(default_factory=dict)
    datasources: Any = None
    evaluation: Any = None
    templates: tuple[str, ...] = ()
    source: str = ""
    warnings: tuple[str, ...] = ()
    acknowledgements: Any = None  # alerting.config.acknowledgements.AcknowledgementsSection
    remote_write: tuple[Any, ...] = ()  # alerting.remotewrite.RemoteWriteTarget, one per entry
    routes_by_id: Mapping[str, Route] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.routes_by_id:
            object.__setattr__(self, "routes_by_id", {r.id: r for r in self.route.walk()})

    @property
    def external_url(self) -> str:
        return str(self.global_config.get("external_url") or "")

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        return self.route.match(labels)

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        """Receiver names an alert with these labels reaches, in tree order (like amtool)."""
        return [route.receiver for route in self.match(labels)]
