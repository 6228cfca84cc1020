"""The data a receiver gets (Alertmanager's notification model) and the integration protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from alerting.errors import AlertingError


@dataclass(frozen=True)
class NotifyAlert:
    """One alert inside a notification, as Alertmanager hands it to integrations."""

    status: str  # "firing" or "resolved"
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float  # unix seconds
    ends_at: float | None = None
    generator_url: str = ""
    fingerprint: str = ""
    value: float | None = None


@dataclass(frozen=True)
class Notification:
    """What one aggregation group sends to one receiver at one flush."""

    receiver: str
    group_key: str  # stable per aggregation group; PagerDuty's dedup_key derives from it
    group_labels: Mapping[str, str]
    alerts: tuple[NotifyAlert, ...]
    external_url: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The same for every attempt at this one notification (a retry, a task redelivered after a
    # worker died mid-send), different for the next one: receivers that can, drop repeats by it.
    notification_id: str = ""
    # An earlier attempt with this notification_id began and never learnt its outcome (the worker
    # died, or the answer was lost): a receiver that can look its sent messages up does so first.
    earlier_attempt: bool = False

    # The views below are computed once: a receiver's templates ask for them again and again, and
    # each walks every alert (a notification is never changed once built).
    @cached_property
    def firing(self) -> tuple[NotifyAlert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @cached_property
    def resolved(self) -> tuple[NotifyAlert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @cached_property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @cached_property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @cached_property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    @cached_property
    def annotation_names(self) -> frozenset[str]:
        """Every annotation name some alert has."""
        return frozenset(name for a in self.alerts for name in a.annotations)


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    # The shared (name, value) pairs, intersected map by map in C (a group's alerts differ in a
    # label or two and in every summary, so little is left after the first few), then written in
    # the first map's order.
    try:
        shared = maps[0].items() & maps[1].items() if len(maps) > 1 else maps[0].items()
        for m in maps[2:]:
            if not shared:
                break
            shared &= m.items()
    except TypeError:  # a value that cannot be hashed: compared one by one instead
        common = dict(maps[0])
        for m in maps[1:]:
            common = {k: v for k, v in common.items() if m.get(k) == v}
        return common
    return {k: v for k, v in maps[0].items() if (k, v) in shared}


class DeliveryError(AlertingError):
    """A send that failed. ``retryable`` failures are retried with backoff; others are reported."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)


def unreachable(what: str, exc: BaseException) -> DeliveryError:
    """A retryable failure to reach ``what`` (refused, timed out, dropped), naming the cause."""
    return DeliveryError(f"{what} unreachable: {type(exc).__name__}: {exc}", retryable=True)


class Integration(Protocol):
    """One configured receiver integration (one entry of ``slack_configs`` and so on)."""

    kind: str
    send_resolved: bool

    def send(self, notification: Notification) -> None: ...


# Builds one integration from its configuration entry and the ``global`` section (see receivers/).
IntegrationFactory = Callable[[Mapping[str, Any], Mapping[str, Any]], Integration]
