"""Alertmanager's decision whether a group must notify a receiver again, against the notification log.

The log remembers, per group and receiver integration, which alerts were firing and which resolved
at the last successful notification, and when it happened.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogEntry:
    """One notification-log entry: what the receiver was last told, and when."""

    firing: frozenset[str]
    resolved: frozenset[str]
    timestamp: float
    seq: float = 0.0  # flush that produced it; a delivery of an older flush is stale

    def to_dict(self) -> dict[str, Any]:
        return {
            "firing": sorted(self.firing),
            "resolved": sorted(self.resolved),
            "timestamp": self.timestamp,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(
            frozenset(data["firing"]),
            frozenset(data["resolved"]),
            float(data["timestamp"]),
            float(data.get("seq", 0.0)),
        )


def needs_update(
    entry: LogEntry | None,
    firing: Collection[str],
    resolved: Collection[str],
    send_resolved: bool,
    repeat_interval: float,
    now: float,
) -> tuple[bool, str]:
    """Whether to notify, and why (the reason is logged either way)."""
    if entry is None:
        # A group that was never notified stays quiet about alerts that are already resolved.
        return (True, "first notification") if firing else (False, "only resolved alerts, never notified")
    if not set(firing) <= entry.firing:
        return True, "new firing alerts"
    if not firing:
        # Regardless of send_resolved, so that the log forgets the alerts that were firing.
        if entry.firing:
            return True, "all alerts resolved"
        return False, "nothing firing and nothing was firing at the last notification"
    if send_resolved and not set(resolved) <= entry.resolved:
        return True, "new resolved alerts"
    if entry.timestamp < now - repeat_interval:
        return True, "repeat interval elapsed"
    return False, "no change since the last notification"
