"""The alert state machine, pure: (rule, previous alerts, query result, t) -> (alerts, events).

It follows Prometheus's alerting rule evaluation transition by transition: new samples start
pending, pending fires once ``t - active_at >= for``, a pending alert that vanishes is dropped
silently, a firing one resolves unless ``keep_firing_for`` holds it, resolved alerts are kept
for 15 minutes. A failed query freezes the rule's alerts. No I/O and no clock in here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property

from alerting.core import Sample, fingerprint
from alerting.rules.model import Labels, Rule

RESOLVED_RETENTION = 15 * 60.0

# expand(template_text, labels_of_the_sample, value) -> rendered text
Expand = Callable[[str, Mapping[str, str], float], str]


class State(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class Alert:
    """One alert instance, identified by its final label set."""

    labels: Labels  # sorted (name, value) pairs, alertname included
    annotations: Labels
    state: State
    active_at: float
    value: float
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None
    last_eval: float = 0.0

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return dict(self.labels).get("alertname", "")

    @property
    def resolved(self) -> bool:
        return self.state is State.INACTIVE


@dataclass(frozen=True)
class Transition:
    """A state change worth telling someone about: ``pending``, ``firing`` or ``resolved``."""

    kind: str
    alert: Alert


@dataclass(frozen=True)
class Failure:
    """A query that did not produce a result; freezes the rule (or fires it, with on_error)."""

    message: str
    datasource_down: bool = False


@dataclass(frozen=True)
class Step:
    alerts: dict[str, Alert]
    events: list[Transition]
    error: str | None = None


def step(
    rule: Rule,
    previous: Mapping[str, Alert],
    result: Sequence[Sample] | Failure,
    t: float,
    expand: Expand,
    limit: int = 0,
) -> Step:
    """Advance one rule's alerts to time ``t`` given this tick's query result."""
    if isinstance(result, Failure):
        if rule.on_error != "firing":
            return Step(dict(previous), [], result.message)
        samples: Sequence[Sample] = [Sample({"error": result.message}, math.nan)]
        error: str | None = result.message
    else:
        samples, error = result, None
        if rule.condition is not None:
            samples = [s for s in samples if rule.condition.holds(s.value)]

    # Every alert of every rule passes through this loop each tick: Alerts are built directly
    # (dataclasses.replace costs several times more, see make_alert) and keep the fingerprint already
    # computed.
    current: dict[str, Alert] = {}
    fresh: list[str] = []
    for sample in samples:
        labels = _alert_labels(rule, sample, expand)
        fp = fingerprint(labels)
        if fp in current:
            return Step(
                dict(previous),
                [],
                "vector contains metrics with the same labelset after applying alert labels",
            )
        annotations = tuple([(k, expand(v, sample.labels, sample.value)) for k, v in rule.annotations])
        old = previous.get(fp)
        if old is not None and old.state is not State.INACTIVE:
            # Known and active: refresh value and annotations; being present ends keep_firing_for.
            alert = make_alert(
                old.labels,
                annotations,
                old.state,
                old.active_at,
                sample.value,
                old.fired_at,
                old.resolved_at,
                None,
                t,
                fp,
            )
        else:  # new, or a resolved alert that came back: starts pending again
            alert = make_alert(labels, annotations, State.PENDING, t, sample.value, None, None, None, t, fp)
            fresh.append(fp)
        current[fp] = alert

    alerts: dict[str, Alert] = dict(current)
    # At most one event per alert: firing replaces pending.
    events: dict[str, Transition] = {fp: Transition("pending", current[fp]) for fp in fresh}

    for fp, old in previous.items():
        if fp in current:
            continue
        if old.state is State.PENDING:
            continue  # a pending alert that disappears is deleted silently
        if old.state is State.INACTIVE:
            if old.resolved_at is not None and _ms(t - old.resolved_at) > _ms(RESOLVED_RETENTION):
                continue
            alerts[fp] = old
            continue
        since = old.keep_firing_since if old.keep_firing_since is not None else t
        if rule.keep_firing_for > 0 and _ms(t - since) < _ms(rule.keep_firing_for):
            alerts[fp] = replace(old, keep_firing_since=since, last_eval=t)
            continue
        resolved = replace(old, state=State.INACTIVE, resolved_at=t, keep_firing_since=None, last_eval=t)
        alerts[fp] = resolved
        events[fp] = Transition("resolved", resolved)

    for fp, alert in alerts.items():
        if alert.state is State.PENDING and _ms(t - alert.active_at) >= _ms(rule.for_):
            fired = replace(alert, state=State.FIRING, fired_at=t)
            alerts[fp] = fired
            events[fp] = Transition("firing", fired)

    active = sum(1 for a in alerts.values() if a.state is not State.INACTIVE) if limit else 0
    if limit and active > limit:
        # Prometheus drops every alert here; dropping would send false "resolved" notices, so the
        # rule freezes instead, like any other evaluation error.
        return Step(dict(previous), [], f"exceeded limit of {limit} with {active} alerts")
    return Step(alerts, list(events.values()), error)


def make_alert(
    labels: Labels,
    annotations: Labels,
    state: State,
    active_at: float,
    value: float,
    fired_at: float | None = None,
    resolved_at: float | None = None,
    keep_firing_since: float | None = None,
    last_eval: float = 0.0,
    fingerprint: str | None = None,
) -> Alert:
    """``Alert(...)``, with its fingerprint when known, built as the dataclass builds it (field by
    field, in order) but in one step: a frozen dataclass sets each field through
    ``object.__setattr__``, and every alert of every tick is built here, by the state machine and
    by the state store reading it back."""
    fields = {
        "labels": labels,
        "annotations": annotations,
        "state": state,
        "active_at": active_at,
        "value": value,
        "fired_at": fired_at,
        "resolved_at": resolved_at,
        "keep_firing_since": keep_firing_since,
        "last_eval": last_eval,
    }
    if fingerprint is not None:
        fields["fingerprint"] = fingerprint
    alert = _new(Alert)
    _set(alert, "__dict__", fields)
    return alert


_new = object.__new__
_set = object.__setattr__


def _ms(seconds: float) -> int:
    """A span in whole milliseconds. Times are unix seconds with millisecond slots, computed as grid
    plus offset; their float differences can be off by a hair (0.0999999 for 100ms), and Prometheus
    compares such spans exactly, in integer time: so do we, or an alert would fire one tick late."""
    return round(seconds * 1000)


def _alert_labels(rule: Rule, sample: Sample, expand: Expand) -> Labels:
    labels = dict(sample.labels)  # a copy made in C, then the name dropped: a third of the time
    labels.pop("__name__", None)
    for name, template in rule.labels:
        value = expand(template, sample.labels, sample.value)
        if value:
            labels[name] = value
        else:
            labels.pop(name, None)  # a label templated to "" is removed, as in Prometheus
    labels["alertname"] = rule.name
    return tuple(sorted(labels.items()))


def restart_pending(alerts: Mapping[str, Alert], t: float) -> dict[str, Alert]:
    """After an outage longer than the tolerance, pending timers start again at ``t``."""
    return {fp: replace(a, active_at=t) if a.state is State.PENDING else a for fp, a in alerts.items()}
