"""The route tree: which routes (and so which receivers and groups) an alert's labels reach.

Depth-first; the first matching child wins unless it says ``continue: true``; a route whose children
all miss handles the alert itself. Group keys are spelled exactly as Alertmanager spells them
(``{}/{severity="critical"}:{alertname="X"}``) so logs and webhook payloads line up with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from alerting.errors import Position
from alerting.routing.escalation import EscalationStep
from alerting.routing.matchers import Matcher, labels_string, matches_all

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True)
class Route:
    """One node of the tree, with everything it inherited already filled in."""

    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ()
    group_by_all: bool = False
    continue_: bool = False
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    key: str = "{}"  # Alertmanager's route key: parent key + "/" + this route's matchers
    id: str = "0"  # position in the tree ("0", "0.2", "0.2.1"), unique even when keys collide
    pos: Position | None = None
    escalate: tuple[EscalationStep, ...] = ()  # inherited by child routes, like the timers

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that handle an alert with these labels ([] when this route does not match)."""
        if not matches_all(self.matchers, labels):
            return []
        handled: list[Route] = []
        for child in self.routes:
            found = child.match(labels)
            handled.extend(found)
            if found and not child.continue_:
                break
        return handled or [self]

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name this alert's aggregation group on this route."""
        if self.group_by_all:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}

    def group_key(self, group_labels: Mapping[str, str]) -> str:
        return f"{self.key}:{labels_string(group_labels)}"
