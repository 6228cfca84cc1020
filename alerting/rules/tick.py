"""One tick of one group: claim the slot, query every rule, step the state machine, save, hand off.

This is the imperative shell around :mod:`alerting.rules.evaluation`; Celery tasks and the CLI call it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from alerting import templating
from alerting.core import RuleHealth, Sample, group_name
from alerting.errors import AlertingError, DatasourceError, QueryError
from alerting.notify.base import NotifyAlert
from alerting.ops.logs import get_logger
from alerting.rules.evaluation import Alert, Failure, State, Step, Transition, restart_pending, step
from alerting.rules.model import Group, Rule
from alerting.rules.state import DATASOURCES_GROUP, StateStore, json_number
from alerting.sources import Source

log = get_logger(__name__)

DATASOURCE_DOWN = Rule(
    name="AlertingDatasourceDown",
    kind="internal",
    query=None,
    datasource="",
    labels=(("severity", "critical"),),
    annotations=(
        ("summary", "Datasource {{ $labels.datasource }} is not answering"),
        (
            "description",
            "Every query to datasource {{ $labels.datasource }} failed in the "
            "last evaluation; rules using it are frozen (nothing resolves) "
            "until it answers again.",
        ),
    ),
)

_T = TypeVar("_T")
SourceFor = Callable[[Rule], Source]
Dispatch = Callable[[Group, Sequence["Evaluated"], float], None]


@dataclass(frozen=True)
class Evaluated:
    """One rule's outcome in a tick."""

    rule: Rule
    alerts: dict[str, Alert]
    events: list[Transition]
    health: RuleHealth


@dataclass
class GroupOutcome:
    group: Group
    slot: float
    skipped: str | None = None  # why nothing was done (slot already claimed, ...)
    rules: list[Evaluated] = field(default_factory=list)
    datasources_down: list[str] = field(default_factory=list)
    missed_slots: int = 0
    duration: float = 0.0


def run_queries(
    group: Group, source_for: SourceFor, at: float, concurrency: int
) -> Iterator[Sequence[Sample] | Failure]:
    """Query every rule of the group at ``at`` (bounded concurrency); failures become Failure.

    Results come in rule order, each as soon as it is in, so the caller steps the first rules while
    the queries of the later ones are still out.
    """

    def one(rule: Rule) -> Sequence[Sample] | Failure:
        try:
            return source_for(rule).query(rule.query, at)
        except DatasourceError as exc:
            return Failure(str(exc), datasource_down=True)
        except QueryError as exc:
            return Failure(str(exc))
        except AlertingError as exc:
            return Failure(str(exc))
        except Exception as exc:  # a source bug must not take the other rules down
            log.exception("query.crashed", msg=f"query crashed: {exc!r}", rule=rule.name)
            return Failure(f"internal error: {type(exc).__name__}: {exc}")

    if concurrency <= 1 or len(group.rules) <= 1:
        return (one(r) for r in group.rules)
    return _pool(concurrency).map(one, group.rules)


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    """One query pool per process and size: threads are reused across ticks, never shared
    across a fork."""
    key = (os.getpid(), size)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="query")
    return _pools[key]


def make_expand(
    slot: float, external_url: str, query_source: Source | None, alertname: str = ""
) -> Callable[[str, Mapping[str, str], float], str]:
    def query(expr: str) -> Sequence[Sample]:
        if query_source is None:
            raise AlertingError("no Prometheus datasource for query")
        return query_source.query(expr, slot)

    def expand(text: str, labels: Mapping[str, str], value: float) -> str:
        if "{{" not in text:
            return text
        return templating.expand_alert(
            text,
            labels=labels,
            value=value,
            external_url=external_url,
            at=slot,
            query=query,
            alertname=alertname,
        )

    return expand


def step_group(
    group: Group,
    previous: Mapping[str, Mapping[str, Alert]],
    results: Iterable[Sequence[Sample] | Failure],
    slot: float,
    expand_for: Callable[[Rule], Callable[[str, Mapping[str, str], float], str]],
    durations: Sequence[float] | None = None,
) -> list[Evaluated]:
    """Pure: step each rule of the group with its query result."""
    out = []
    for index, (rule, result) in enumerate(zip(group.rules, results, strict=True)):
        outcome: Step = step(rule, previous.get(rule.key, {}), result, slot, expand_for(rule), group.limit)
        health = RuleHealth(
            "err" if outcome.error else "ok", outcome.error, slot, durations[index] if durations else 0.0
        )
        out.append(Evaluated(rule, outcome.alerts, outcome.events, health))
    return out


def datasources_down(
    group: Group, results: Sequence[Sequence[Sample] | Failure]
) -> tuple[set[str], set[str]]:
    """(down, up): a datasource is down when every query of this tick to it failed to connect."""
    seen: dict[str, bool] = {}
    for rule, result in zip(group.rules, results, strict=True):
        failed = isinstance(result, Failure) and result.datasource_down
        seen[rule.datasource] = seen.get(rule.datasource, True) and failed
    return {d for d, down in seen.items() if down}, {d for d, down in seen.items() if not down}


def evaluate_group(
    store: StateStore,
    group: Group,
    slot: float,
    source_for: SourceFor,
    *,
    owner: str,
    concurrency: int = 8,
    outage_tolerance: float = 3600.0,
    external_url: str = "",
    dispatch: Dispatch | None = None,
    claim: bool = True,
    prometheus: Source | None = None,
) -> GroupOutcome:
    """Evaluate ``group`` at ``slot`` once across all workers, saving state atomically per rule."""
    outcome = GroupOutcome(group, slot)
    started = time.monotonic()
    lease = max(60.0, group.interval)
    if claim and not store.claim(group.id, slot, owner, lease):
        outcome.skipped = "slot already claimed"
        return outcome
    try:
        previous = store.load_group(group.id)
        _, group_health = store.load_health(group.id)
        last_slot = group_health.get("last_slot")
        if last_slot is not None and slot <= last_slot:
            outcome.skipped = "slot not newer than the last evaluated one"
            return outcome
        if last_slot is not None:
            outcome.missed_slots = max(0, round((slot - last_slot) / group.interval) - 1)
            if slot - last_slot > outage_tolerance:
                previous = {k: restart_pending(v, slot) for k, v in previous.items()}
        results: list[Sequence[Sample] | Failure] = []
        answers = run_queries(group, source_for, slot - group.query_offset, concurrency)
        outcome.rules = step_group(
            group,
            previous,
            _kept(answers, results),
            slot,
            lambda rule: make_expand(slot, external_url, prometheus, rule.name),
        )
        expand = make_expand(slot, external_url, prometheus, DATASOURCE_DOWN.name)
        outcome.rules.extend(_retired(group, previous, slot))
        down, up = datasources_down(group, results)
        outcome.datasources_down = sorted(down)
        outcome.duration = time.monotonic() - started
        missed = int(group_health.get("missed", 0)) + outcome.missed_slots
        live = {r.key for r in group.rules}
        store.save_group(
            group.id,
            {e.rule.key: e.alerts for e in outcome.rules if e.rule.key in live},
            {
                e.rule.key: replace(e.health, duration=outcome.duration)
                for e in outcome.rules
                if e.rule.key in live
            },
            {"last_slot": slot, "duration": outcome.duration, "missed": missed},
            keep_rules=[r.key for r in group.rules],
        )
        synthetic = update_datasource_alerts(store, down, up, slot, expand)
        if claim:
            store.finish_claim(group.id, slot, keep=3 * group.interval)
    except BaseException:
        if claim:
            store.release_claim(group.id, slot)
        raise
    if dispatch is not None:
        dispatch(group, outcome.rules + synthetic, slot)
    return outcome


def _kept(items: Iterable[_T], into: list[_T]) -> Iterator[_T]:
    """``items`` passed through one by one, each also appended to ``into``."""
    for item in items:
        into.append(item)
        yield item


def _retired(group: Group, previous: Mapping[str, Mapping[str, Alert]], slot: float) -> list[Evaluated]:
    """Rules removed from the file: their firing alerts resolve now (once; the state goes)."""
    live = {r.key for r in group.rules}
    out = []
    for key, alerts in previous.items():
        if key in live:
            continue
        resolved = {
            fp: replace(a, state=State.INACTIVE, resolved_at=slot, last_eval=slot)
            for fp, a in alerts.items()
            if a.state is State.FIRING
        }
        name = next(iter(alerts.values())).name if alerts else key
        rule = Rule(name=name, kind="removed", query=None, datasource="", key=key)
        out.append(
            Evaluated(
                rule,
                resolved,
                [Transition("resolved", a) for a in resolved.values()],
                RuleHealth("ok", None, slot, 0.0),
            )
        )
    return out


def retire_group(store: StateStore, group_id: str, now: float) -> list[Evaluated]:
    """A group gone from the rule files: resolve its firing alerts and forget its state.
    Returns what resolved, for the caller to hand to the notification pipeline."""
    previous = store.load_group(group_id)
    name = group_name(group_id)
    retired = _retired(Group(name=name, file="", interval=1.0, rules=()), previous, now)
    store.delete_group(group_id)
    return retired


def update_datasource_alerts(
    store: StateStore,
    down: set[str],
    up: set[str],
    slot: float,
    expand: Callable[[str, Mapping[str, str], float], str],
) -> list[Evaluated]:
    """One ``AlertingDatasourceDown`` per datasource, shared by every group that uses it."""
    touched = down | up
    if not touched:
        return []
    with store.lock(DATASOURCES_GROUP, timeout=10):
        previous = store.load_group(DATASOURCES_GROUP)
        if not down and not any(previous.get(d) for d in up):
            return []
        out = []
        for name in sorted(touched):
            rule = replace(DATASOURCE_DOWN, key=name)
            samples = [Sample({"datasource": name}, 1.0)] if name in down else []
            outcome = step(rule, previous.get(name, {}), samples, slot, expand)
            out.append(Evaluated(rule, outcome.alerts, outcome.events, RuleHealth("ok", None, slot, 0.0)))
        store.save_group(
            DATASOURCES_GROUP,
            {e.rule.key: e.alerts for e in out},
            {e.rule.key: e.health for e in out},
            {"last_slot": slot},
        )
    return out


def notify_alerts(evaluated: Sequence[Evaluated], generator_url: Callable[[Rule], str]) -> list[NotifyAlert]:
    """What goes to the notification pipeline after a tick: every firing alert, and every alert
    resolved within the retention (as Prometheus sends to Alertmanager). Pending ones never go.

    Firing alerts carry no end time: they stay firing until this evaluator says otherwise, so a
    stopped worker never produces a "resolved" (the Watchdog's silence reports it instead)."""
    out = []
    for item in evaluated:
        url = generator_url(item.rule)
        for alert in item.alerts.values():
            if alert.state is State.PENDING or alert.fired_at is None:
                continue
            out.append(
                NotifyAlert(
                    status="resolved" if alert.resolved else "firing",
                    labels=dict(alert.labels),
                    annotations=dict(alert.annotations),
                    starts_at=alert.fired_at,
                    ends_at=alert.resolved_at,
                    generator_url=url,
                    fingerprint=alert.fingerprint,
                    value=alert.value,
                )
            )
    return out


def console_dispatch(group: Group, evaluated: Sequence[Evaluated], slot: float) -> None:
    """Print every transition as one structured line (the receiver of last resort)."""
    for item in evaluated:
        for event in item.events:
            alert = event.alert
            labels = dict(alert.labels)
            log.info(
                f"alert.{event.kind}",
                msg=f"{alert.name} {event.kind}: "
                + ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname"),
                group=group.name,
                rule=item.rule.name,
                alertname=alert.name,
                fingerprint=alert.fingerprint,
                labels=labels,
                annotations=dict(alert.annotations),
                value=json_number(alert.value),
                active_at=alert.active_at,
                slot=slot,
            )
