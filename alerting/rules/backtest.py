"""Replay evaluation over a past range with in-memory state (Redis untouched).

Every instant is a real tick of an :class:`~alerting.rules.tick.Evaluator` whose store is memory and
whose sources answer from what was fetched up front: PromQL rules fetch the whole range in one range
query (chunked) instead of one instant query per step; the points of a range query are exactly the
instant query results at those times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from alerting.core import RuleHealth, Sample
from alerting.errors import AlertingError
from alerting.rules.evaluation import Alert, Transition
from alerting.rules.model import AnyRule, Group, Labels
from alerting.rules.state import NOT_GIVEN, NotGiven, SlotSuperseded
from alerting.rules.tick import Evaluated, Evaluator, GroupOutcome, RecordEvaluated, SourceFor
from alerting.sources import Source


@dataclass(frozen=True)
class Frame:
    """State of every group at one instant of the replay."""

    time: float
    alerts: list[tuple[Group, Alert]]
    transitions: list[tuple[Group, Transition]]
    errors: list[tuple[Group, str, str]]  # (group, rule name, error)
    # What each recording rule evaluated at this instant recorded (its series, or its error)
    recorded: list[tuple[Group, RecordEvaluated]] = field(default_factory=list)


def times(start: float, end: float, step: float) -> list[float]:
    count = int((end - start) // step) + 1 if end >= start else 0
    return [round(start + i * step, 3) for i in range(count)]


class MemoryStore:
    """A replay's state: what a tick needs of a store, in dicts. One replay, one process: claims
    always succeed and locks hold nothing."""

    def __init__(self) -> None:
        self._alerts: dict[str, dict[str, dict[str, Alert]]] = {}
        self._health: dict[str, tuple[dict[str, RuleHealth], dict[str, Any]]] = {}
        self._recorded: dict[str, dict[str, list[Labels]]] = {}

    def load_group(self, group_id: str) -> dict[str, dict[str, Alert]]:
        return {key: dict(alerts) for key, alerts in self._alerts.get(group_id, {}).items()}

    def load_health(self, group_id: str) -> tuple[dict[str, RuleHealth], dict[str, Any]]:
        rules, group = self._health.get(group_id, ({}, {}))
        return dict(rules), dict(group)

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
    ) -> None:
        if (
            after_slot is not NOT_GIVEN
            and self._health.get(group_id, ({}, {}))[1].get("last_slot") != after_slot
        ):
            raise SlotSuperseded(f"group {group_id} was saved by another tick")
        stored = {**self._alerts.get(group_id, {}), **{k: dict(v) for k, v in alerts.items()}}
        rules = {**self._health.get(group_id, ({}, {}))[0], **health}
        if keep_rules is not None:
            keep = set(keep_rules)
            stored = {k: v for k, v in stored.items() if k in keep}
            rules = {k: v for k, v in rules.items() if k in keep}
        self._alerts[group_id] = stored
        self._health[group_id] = (rules, dict(group_health))
        if recorded is not None:
            self._recorded[group_id] = {k: list(v) for k, v in recorded.items()}

    def load_recorded(self, group_id: str) -> dict[str, list[Labels]]:
        return {k: list(v) for k, v in self._recorded.get(group_id, {}).items()}

    def delete_group(self, group_id: str) -> None:
        self._alerts.pop(group_id, None)
        self._health.pop(group_id, None)
        self._recorded.pop(group_id, None)

    def claim(self, group_id: str, slot: float, owner: str, lease: float) -> bool:
        return True

    def finish_claim(self, group_id: str, slot: float, keep: float) -> None:
        pass

    def release_claim(self, group_id: str, slot: float) -> None:
        pass

    def lock(self, name: str, timeout: float = 30.0) -> AbstractContextManager[Any]:
        return nullcontext()


Answer = Callable[[float], Sequence[Sample]]


class _Replay:
    """One rule's answers over the replay, as a source: ``answer(at)`` returns the samples at
    ``at`` or raises what fetching them raised."""

    def __init__(self, name: str, answer: Answer) -> None:
        self.name = name
        self._answer = answer

    def query(self, query: Any, at: float) -> list[Sample]:
        return list(self._answer(at))

    def close(self) -> None:
        pass


def _failed(exc: AlertingError) -> Answer:
    def answer(_at: float) -> Sequence[Sample]:
        raise exc

    return answer


def _prefetch(group: Group, source_for: SourceFor, grid: list[float]) -> dict[str, _Replay]:
    """Per rule key, its answers over ``grid``; PromQL rules are fetched with range queries."""
    replays: dict[str, _Replay] = {}
    rules: list[AnyRule] = [*group.rules, *group.recording]
    for rule in rules:
        try:
            source = source_for(rule)
        except AlertingError as exc:
            replays[rule.key] = _Replay(rule.datasource, _failed(exc))
            continue
        replays[rule.key] = _Replay(source.name, _answers(source, rule, group.query_offset, grid))
    return replays


def _answers(source: Source, rule: AnyRule, offset: float, grid: list[float]) -> Answer:
    range_query = getattr(source, "query_range", None)
    if range_query is None or not grid or not isinstance(rule.query, str):
        return lambda at: source.query(rule.query, at)
    step = grid[1] - grid[0] if len(grid) > 1 else 60.0
    try:
        series: dict[float, list[Sample]] = range_query(rule.query, grid[0] - offset, grid[-1] - offset, step)
    except AlertingError as exc:
        return _failed(exc)
    return lambda at: series.get(round(at, 3), [])


def replay_group(
    group: Group,
    source_for: SourceFor,
    start: float,
    end: float,
    step: float | None = None,
    prometheus: Source | None = None,
    external_url: str = "",
) -> Iterator[tuple[float, GroupOutcome]]:
    """Each instant of the replay and the group's tick at that instant.

    Recording rules are evaluated and reported, not written: a rule reading what one records sees
    what the datasource holds for that past instant."""
    grid = times(start, end, step or group.interval)
    replays = _prefetch(group, source_for, grid)
    # Memory holds the state; the replay's instants are the slots, however far apart (so no
    # outage ever restarts the pending timers), and the queries are answered from memory.
    evaluator = Evaluator(
        MemoryStore(),
        lambda rule: replays[rule.key],
        owner="backtest",
        concurrency=1,
        outage_tolerance=math.inf,
        external_url=external_url,
        prometheus=prometheus,
    )
    with evaluator:
        for t in grid:
            yield t, evaluator.tick(group, t, claim=False)


def backtest(
    groups: Sequence[Group],
    source_for: SourceFor,
    start: float,
    end: float,
    step: float | None = None,
    prometheus: Source | None = None,
    external_url: str = "",
    progress: Callable[[int], None] | None = None,
) -> list[Frame]:
    """Every evaluation instant of every group, with all groups' alerts as of that instant."""
    timelines: list[dict[float, GroupOutcome]] = []
    for group in groups:
        timeline = {}
        for t, outcome in replay_group(group, source_for, start, end, step, prometheus, external_url):
            timeline[t] = outcome
            if progress:
                progress(1)
        timelines.append(timeline)
    frames = []
    latest: list[list[Evaluated]] = [[] for _ in groups]
    for t in sorted({t for timeline in timelines for t in timeline}):
        transitions: list[tuple[Group, Transition]] = []
        errors: list[tuple[Group, str, str]] = []
        recorded: list[tuple[Group, RecordEvaluated]] = []
        for index, (group, timeline) in enumerate(zip(groups, timelines, strict=True)):
            if t not in timeline:
                continue
            latest[index] = timeline[t].rules
            for item in timeline[t].rules:
                transitions.extend((group, e) for e in item.events)
                if item.health.error:
                    errors.append((group, item.rule.name, item.health.error))
            for record in timeline[t].recorded:
                recorded.append((group, record))
                if record.health.error:
                    errors.append((group, record.rule.record, record.health.error))
        alerts = [
            (group, alert)
            for group, evaluated in zip(groups, latest, strict=True)
            for item in evaluated
            for alert in item.alerts.values()
            if not alert.resolved
        ]
        frames.append(Frame(t, alerts, transitions, errors, recorded))
    return frames
