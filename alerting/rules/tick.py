"""One tick of one group: claim the slot, query every rule, step the state machine, save, hand off.

This is the imperative shell around :mod:`alerting.rules.evaluation`. An :class:`Evaluator` is built
once from everything a tick needs (state store, source lookup, sink, settings) and is called the same
way by the Celery task, the CLI, the backtest and the benchmark. The engine never imports the
notification side: what a tick produced goes to a :class:`Sink`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from alerting import templating
from alerting.core import RuleHealth, Sample, group_name
from alerting.errors import AlertingError, DatasourceError, QueryError
from alerting.ops.logs import get_logger
from alerting.remotewrite import STALE_NAN, Series
from alerting.rules import recording
from alerting.rules.evaluation import (
    Alert,
    Expand,
    Failure,
    State,
    Step,
    Transition,
    restart_pending,
    step,
)
from alerting.rules.model import AnyRule, Group, Labels, RecordingRule, Rule
from alerting.rules.state import DATASOURCES_GROUP, NOT_GIVEN, NotGiven, SlotSuperseded
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
SourceFor = Callable[[AnyRule], Source]
Result = Sequence[Sample] | Failure


@dataclass(frozen=True)
class Evaluated:
    """One rule's outcome in a tick."""

    rule: Rule
    alerts: dict[str, Alert]
    events: list[Transition]
    health: RuleHealth


@dataclass(frozen=True)
class RecordEvaluated:
    """One recording rule's outcome in a tick: the series it recorded (labels with ``__name__``,
    value) and those it marked stale, or its error. ``written`` is False when a write this tick's
    later rules waited for was not accepted."""

    rule: RecordingRule
    series: tuple[tuple[Labels, float], ...]
    stale: tuple[Labels, ...]
    health: RuleHealth
    written: bool = True


@dataclass
class GroupOutcome:
    group: Group
    slot: float
    skipped: str | None = None  # why nothing was done (slot already claimed, ...)
    rules: list[Evaluated] = field(default_factory=list)
    datasources_down: list[str] = field(default_factory=list)
    missed_slots: int = 0
    duration: float = 0.0
    # The shared AlertingDatasourceDown alerts this tick stepped (kept apart from the group's rules:
    # they belong to every group that uses the datasource).
    datasource_alerts: list[Evaluated] = field(default_factory=list)
    recorded: list[RecordEvaluated] = field(default_factory=list)

    @property
    def handed_off(self) -> list[Evaluated]:
        """What the sink receives: the rules' outcomes, then the datasource alerts."""
        return self.rules + self.datasource_alerts


class Sink(Protocol):
    """Where a tick's outcome goes once its state is saved (history, console, notifications)."""

    def hand_off(self, outcome: GroupOutcome) -> None: ...


class Writer(Protocol):
    """Where recorded series (and, when asked, the ALERTS series) are written: remote write."""

    def write(self, series: Sequence[Series], *, wait: float | None = None) -> bool: ...


class Store(Protocol):
    """What a tick needs of the state store: :class:`~alerting.rules.state.StateStore` (Redis) in
    the worker and the CLI, memory in the backtest."""

    def load_group(self, group_id: str) -> dict[str, dict[str, Alert]]: ...

    def load_health(self, group_id: str) -> tuple[dict[str, RuleHealth], dict[str, Any]]: ...

    def save_group(
        self,
        group_id: str,
        alerts: Mapping[str, Mapping[str, Alert]],
        health: Mapping[str, RuleHealth],
        group_health: Mapping[str, Any],
        keep_rules: Iterable[str] | None = None,
        *,
        after_slot: float | None | NotGiven = NOT_GIVEN,
        recorded: Mapping[str, Sequence[Labels]] | None = None,
    ) -> None: ...

    def load_recorded(self, group_id: str) -> dict[str, list[Labels]]: ...

    def delete_group(self, group_id: str) -> None: ...

    def claim(self, group_id: str, slot: float, owner: str, lease: float) -> bool: ...

    def finish_claim(self, group_id: str, slot: float, keep: float) -> None: ...

    def release_claim(self, group_id: str, slot: float) -> None: ...

    def lock(self, name: str, timeout: float = 30.0) -> AbstractContextManager[Any]: ...


class Evaluator:
    """Evaluates groups, one slot at a time, across any number of workers sharing the store.

    Built once per process from its dependencies; ``owner`` names this process in slot claims,
    ``prometheus`` answers templates' ``query`` function, ``writer`` takes what recording rules
    record (and the ALERTS series, with ``alert_series``); ``write_wait`` bounds how long rules
    reading a series recorded earlier in their group wait for it to be written. Query threads are
    its own, created on first use and never carried across a fork.
    """

    def __init__(
        self,
        store: Store,
        source_for: SourceFor,
        sink: Sink | None = None,
        *,
        owner: str,
        concurrency: int = 8,
        outage_tolerance: float = 3600.0,
        external_url: str = "",
        prometheus: Source | None = None,
        writer: Writer | None = None,
        alert_series: bool = False,
        write_wait: float = 30.0,
    ) -> None:
        self.store = store
        self.writer = writer
        self.alert_series = alert_series and writer is not None
        self.write_wait = write_wait
        self.source_for = source_for
        self.sink = sink
        self.owner = owner
        self.concurrency = concurrency
        self.outage_tolerance = outage_tolerance
        self.external_url = external_url
        self.prometheus = prometheus
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    # --- a tick ---------------------------------------------------------------------------------
    def tick(self, group: Group, slot: float, *, claim: bool = True) -> GroupOutcome:
        """Evaluate ``group`` at ``slot`` once across all workers, saving state atomically per rule.

        With ``claim`` false the slot is evaluated whether or not a worker has it (the CLI)."""
        store = self.store
        outcome = GroupOutcome(group, slot)
        started = time.monotonic()
        lease = max(60.0, group.interval)
        if claim and not store.claim(group.id, slot, self.owner, lease):
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
                if slot - last_slot > self.outage_tolerance:
                    previous = {k: restart_pending(v, slot) for k, v in previous.items()}
            at = slot - group.query_offset
            results: list[Result] = []
            later: list[Series] = []  # written without waiting (no rule of this tick reads them)
            recorded: dict[str, list[Labels]] | None = None
            answers: Iterable[Result]
            # The recorded-series state is read only for groups that record, or did until now
            # (their removed rules' series get stale markers once).
            if group.recording or group_health.get("recording"):
                before = store.load_recorded(group.id)
                answers, outcome.recorded, later = self._staged(group, at, before)
                recorded = _still_recorded(group, before, outcome.recorded)
                later.extend(_stale(_gone_rules(group, before), at))
            else:
                answers = self._queries(group.rules, at)
            outcome.rules = step_group(group, previous, _kept(answers, results), slot, self.expander(slot))
            if self.alert_series:
                later.extend(alert_series(outcome.rules, previous, at))
            outcome.rules.extend(_retired(group, previous, slot))
            down, up = datasources_down(group, results)
            outcome.datasources_down = sorted(down)
            outcome.duration = time.monotonic() - started
            missed = int(group_health.get("missed", 0)) + outcome.missed_slots
            live = {r.key for r in group.rules} | {r.key for r in group.recording}
            if later and self.writer is not None:
                # Queued before the state is saved: the next tick of the group starts only after
                # the save, so its samples queue after these (a series' samples stay in order). A
                # tick that dies between here and the save is evaluated again and writes the same
                # samples, which a receiver stores once.
                self.writer.write(later)
            store.save_group(
                group.id,
                {e.rule.key: e.alerts for e in outcome.rules if e.rule.key in live},
                {
                    key: replace(health, duration=outcome.duration)
                    for key, health in [
                        *((e.rule.key, e.health) for e in outcome.rules),
                        *((e.rule.key, e.health) for e in outcome.recorded),
                    ]
                    if key in live
                },
                {
                    "last_slot": slot,
                    "duration": outcome.duration,
                    "missed": missed,
                    "recording": bool(recorded),
                },
                keep_rules=live,
                # Two ticks of one group may overlap (a slow tick, a backlog after a broker
                # failover); the one whose start state is no longer current saves nothing, so a
                # transition is never made twice.
                after_slot=last_slot,
                recorded=recorded,
            )
            expand = make_expand(slot, self.external_url, self.prometheus, DATASOURCE_DOWN.name)
            outcome.datasource_alerts = update_datasource_alerts(store, down, up, slot, expand)
            if claim:
                store.finish_claim(group.id, slot, keep=3 * group.interval)
        except SlotSuperseded:
            if claim:
                store.finish_claim(group.id, slot, keep=3 * group.interval)
            outcome.skipped = "another tick of the group saved first"
            outcome.rules = []
            return outcome
        except BaseException:
            if claim:
                store.release_claim(group.id, slot)
            raise
        if self.sink is not None:
            self.sink.hand_off(outcome)
        return outcome

    def retire(self, group_id: str, now: float) -> GroupOutcome:
        """A group gone from the rule files: its firing alerts resolve at ``now`` (once: its state
        goes) and are handed off. The outcome's ``rules`` hold what resolved."""
        name = group_name(group_id)
        group = Group(name=name, file="", interval=1.0, rules=())
        with self.store.lock(f"retire:{group_id}", timeout=30):
            previous = self.store.load_group(group_id)
            gone = self.store.load_recorded(group_id)
            outcome = GroupOutcome(group, now, rules=_retired(group, previous, now))
            self.store.delete_group(group_id)
        if self.writer is not None:
            # What the group recorded (and its ALERTS series) end here, as when Prometheus drops it.
            ended = _stale(gone, now)
            if self.alert_series:
                ended.extend(alert_series(outcome.rules, previous, now))
            if ended:
                self.writer.write(ended)
        if outcome.rules:
            log.info(
                "group.retired",
                msg=f"group {group_id} is gone from the rule files; its alerts resolve",
                group=name,
            )
            if self.sink is not None:
                self.sink.hand_off(outcome)
        return outcome

    def expander(self, slot: float) -> Callable[[Rule], Expand]:
        """Per rule, the template expander of a tick at ``slot``."""
        return lambda rule: make_expand(slot, self.external_url, self.prometheus, rule.name)

    # --- queries --------------------------------------------------------------------------------
    def _queries(self, rules: Sequence[AnyRule], at: float) -> Iterator[Result]:
        """Every rule queried at ``at`` (bounded concurrency); failures become Failure.

        Results come in rule order, each as soon as it is in, so the first rules are stepped while
        the queries of the later ones are still out.
        """
        source_for = self.source_for

        def one(rule: AnyRule) -> Result:
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

        if self.concurrency <= 1 or len(rules) <= 1:
            return (one(r) for r in rules)
        return self._query_pool().map(one, rules)

    def _staged(
        self, group: Group, at: float, before: Mapping[str, Sequence[Labels]]
    ) -> tuple[list[Result], list[RecordEvaluated], list[Series]]:
        """A group with recording rules, stage by stage: the alerting rules' answers in rule
        order, each recording rule's outcome, and the series left to write.

        What a stage records is written, and accepted, before the next stage queries: the next
        stage holds the rules that read it. A rule whose input could not be written fails this tick
        (it freezes) rather than see the series missing.
        """
        answers: list[Result] = [Failure("not evaluated")] * len(group.rules)
        outcomes: list[RecordEvaluated] = []
        unwritten: set[str] = set()
        pending: list[Series] = []
        ms, slot = round(at * 1000), at + group.query_offset
        for stage in range(group.stages):
            records = [r for r in group.recording if r.stage == stage]
            alerting = [(i, r) for i, r in enumerate(group.rules) if r.stage == stage]
            rules: list[AnyRule] = [*records, *(r for _, r in alerting)]
            got = [_blocked(r, a, unwritten) for r, a in zip(rules, self._queries(rules, at), strict=True)]
            written: list[Series] = []
            done: list[RecordEvaluated] = []
            for rule, result in zip(records, got[: len(records)], strict=True):
                outcome = _recorded(rule, result, before.get(rule.key, ()), slot, group.limit)
                done.append(outcome)
                written.extend(Series(labels, value, ms) for labels, value in outcome.series)
                written.extend(Series(labels, STALE_NAN, ms) for labels in outcome.stale)
            for (index, _), result in zip(alerting, got[len(records) :], strict=True):
                answers[index] = result
            if stage == group.stages - 1 or self.writer is None:
                pending.extend(written)
            elif written and not self.writer.write(written, wait=self.write_wait):
                unwritten.update(r.record for r in records)
                done = [replace(o, written=False) for o in done]
            outcomes.extend(done)
        return answers, outcomes, pending

    def _query_pool(self) -> ThreadPoolExecutor:
        # Threads are reused across ticks; a forked child (Celery's prefork) starts its own, as the
        # parent's threads do not exist in it.
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="query")
                self._pool_pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Stop the query threads (the store, sources and sink belong to whoever built them)."""
        with self._pool_lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=False)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def make_expand(slot: float, external_url: str, query_source: Source | None, alertname: str = "") -> Expand:
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
    expand_for: Callable[[Rule], Expand],
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


def _blocked(rule: AnyRule, result: Result, unwritten: set[str]) -> Result:
    """``result``, unless ``rule`` reads a series of this tick that could not be written."""
    if not unwritten or isinstance(result, Failure) or not isinstance(rule.query, str):
        return result
    missing = sorted(name for name in unwritten if recording.reads(rule.query, name))
    if not missing:
        return result
    return Failure(f"reads {', '.join(missing)}, recorded this tick but not written (remote write failed)")


def _recorded(
    rule: RecordingRule, result: Result, before: Sequence[Labels], slot: float, limit: int
) -> RecordEvaluated:
    """One recording rule's outcome at ``slot``: what it records, what goes stale, its health."""
    if isinstance(result, Failure):
        outcome = recording.Recorded(error=result.message)
    else:
        outcome = recording.record(rule, result, limit)
    if outcome.error is not None:
        return RecordEvaluated(rule, (), (), RuleHealth("err", outcome.error, slot, 0.0))
    stale = tuple(recording.gone(before, outcome.series))
    return RecordEvaluated(rule, outcome.series, stale, RuleHealth("ok", None, slot, 0.0))


def _still_recorded(
    group: Group, before: Mapping[str, Sequence[Labels]], outcomes: Sequence[RecordEvaluated]
) -> dict[str, list[Labels]]:
    """Per live recording rule, the series it has out (a failed rule keeps what it had)."""
    live = {r.key for r in group.recording}
    out = {key: list(labels) for key, labels in before.items() if key in live}
    for item in outcomes:
        if item.health.error is None:
            out[item.rule.key] = [labels for labels, _ in item.series]
    return out


def _gone_rules(group: Group, before: Mapping[str, Sequence[Labels]]) -> dict[str, Sequence[Labels]]:
    """What recording rules removed from the group had recorded."""
    live = {r.key for r in group.recording}
    return {key: labels for key, labels in before.items() if key not in live}


def _stale(recorded: Mapping[str, Sequence[Labels]], at: float) -> list[Series]:
    ms = round(at * 1000)
    return [Series(labels, STALE_NAN, ms) for series in recorded.values() for labels in series]


def alert_series(
    evaluated: Sequence[Evaluated], previous: Mapping[str, Mapping[str, Alert]], at: float
) -> list[Series]:
    """Prometheus's ``ALERTS`` (1 per pending or firing alert, with ``alertstate``) and
    ``ALERTS_FOR_STATE`` (the alert's start, in whole seconds) as of this tick, plus stale
    markers for those the rules had out last tick and no longer have. A rule whose query failed
    writes nothing, as in Prometheus."""
    ms = round(at * 1000)
    out: list[Series] = []
    for item in evaluated:
        if item.health.error is not None:
            continue
        now = _alert_samples(item.alerts.values())
        out.extend(Series(labels, value, ms) for labels, value in now.items())
        was = _alert_samples(previous.get(item.rule.key, {}).values())
        out.extend(Series(labels, STALE_NAN, ms) for labels in was if labels not in now)
    return out


def _alert_samples(alerts: Iterable[Alert]) -> dict[Labels, float]:
    out: dict[Labels, float] = {}
    for alert in alerts:
        if alert.state is State.INACTIVE:
            continue
        base = [(k, v) for k, v in alert.labels if k not in ("__name__", "alertstate")]
        out[tuple(sorted([*base, ("__name__", "ALERTS"), ("alertstate", str(alert.state))]))] = 1.0
        # Prometheus 2.42 writes it for every active alert, whether or not its rule has a `for`.
        out[tuple(sorted([*base, ("__name__", "ALERTS_FOR_STATE")]))] = float(int(alert.active_at))
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


def update_datasource_alerts(
    store: Store,
    down: set[str],
    up: set[str],
    slot: float,
    expand: Expand,
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
