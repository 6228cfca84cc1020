"""Escalation steps and acknowledgements: who else a group must tell, and when, as pure decisions.

A route's ``escalate`` steps name further receivers and how long after the group's first
notification to the route's own receiver each one joins in. A step is *reached* while the group has
firing alerts, nobody acknowledged them, and its ``after`` has passed; a reached step's receiver is
then notified like the route's own receiver (dedup, ``send_resolved``, ``repeat_interval``). A
receiver that was told the group fired keeps hearing its resolves even when its step is no longer
reached (the group was acknowledged, or the escalation started over).

An acknowledgement holds for the firing set it was made for: it stops repeats and escalation until
an alert joins that set (or it expires). It never mutes a new alert.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerting.errors import Position
from alerting.routing.dedup import LogEntry, needs_update

DEFAULT_ACK_DURATION = 24 * 3600.0
REASON_ESCALATION = "escalation"


@dataclass(frozen=True)
class EscalationStep:
    """``after`` seconds past the group's first notification, also notify ``receiver``."""

    after: float
    receiver: str
    pos: Position | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Acknowledgement:
    """Someone took a group in hand: no repeats or escalation for ``firing`` until ``expires_at``."""

    group_key: str
    firing: frozenset[str]
    by: str
    at: float
    expires_at: float
    comment: str = ""
    source: str = "cli"  # cli, api, slack, pagerduty
    group_labels: Mapping[str, str] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def covers(self, firing: Collection[str], now: float) -> bool:
        """Whether it still holds for a group firing ``firing`` at ``now``."""
        return not self.expired(now) and set(firing) <= self.firing

    def describe(self, when: str) -> str:
        """How a notification says it: ``acknowledged by alice via slack at <when> (comment)``."""
        text = f"acknowledged by {self.by or 'unknown'} via {self.source} at {when}"
        return f"{text} ({self.comment})" if self.comment else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_key": self.group_key,
            "firing": sorted(self.firing),
            "by": self.by,
            "at": self.at,
            "expires_at": self.expires_at,
            "comment": self.comment,
            "source": self.source,
            "group_labels": dict(self.group_labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Acknowledgement:
        return cls(
            group_key=str(data["group_key"]),
            firing=frozenset(data.get("firing", ())),
            by=str(data.get("by", "")),
            at=float(data["at"]),
            expires_at=float(data["expires_at"]),
            comment=str(data.get("comment", "")),
            source=str(data.get("source", "cli")),
            group_labels=dict(data.get("group_labels", {})),
        )


def reached(
    step: EscalationStep, since: float | None, now: float, *, firing: bool, acknowledged: bool
) -> bool:
    """Whether ``step`` is reached: something fires, nobody acknowledged it, ``after`` has passed
    since the first notification to the route's own receiver (``since``; None before it)."""
    if not firing or acknowledged or since is None:
        return False
    return now >= since + step.after


def next_step_at(
    steps: Sequence[EscalationStep], since: float | None, now: float, *, firing: bool, acknowledged: bool
) -> float | None:
    """When the next step not yet reached will be, so the group's timer can fire then (None: never)."""
    if not firing or acknowledged or since is None:
        return None
    return min((since + s.after for s in steps if since + s.after > now), default=None)


def decide(
    step: EscalationStep | None,
    entry: LogEntry | None,
    firing: Collection[str],
    resolved: Collection[str],
    send_resolved: bool,
    repeat_interval: float,
    now: float,
    *,
    since: float | None,
    acknowledged: bool,
) -> tuple[bool, str]:
    """Whether one receiver integration of a group must be notified now, and why.

    ``step`` is None for the route's own receiver, else the escalation step the receiver belongs to;
    ``entry`` is what the notification log says it was last told.
    """
    # An acknowledgement stops repeats: only the repeat branch of the dedup depends on the interval.
    repeat = math.inf if acknowledged else repeat_interval
    if step is None:
        return needs_update(entry, firing, resolved, send_resolved, repeat, now)
    if reached(step, since, now, firing=bool(firing), acknowledged=acknowledged):
        needed, why = needs_update(entry, firing, resolved, send_resolved, repeat, now)
        if needed and (entry is None or not entry.firing):
            return True, REASON_ESCALATION
        return needed, why
    if entry is None or not entry.firing:
        return False, "escalation step not reached"
    # It was told the group fired: it hears the resolves, and nothing else, until its step is reached.
    if not firing:
        return True, "all alerts resolved"
    if send_resolved and (set(resolved) & entry.firing) - entry.resolved:
        return True, "new resolved alerts"
    return False, "escalation step not reached"
