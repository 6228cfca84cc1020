"""Replay evaluation over a past range with in-memory state (Redis untouched).

PromQL rules fetch the whole range in one range query (chunked) instead of one instant query
per step; the points of a range query are exactly the instant query results at those times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from alerting.core import Sample
from alerting.errors import AlertingError, DatasourceError
from alerting.rules.evaluation import Alert, Expand, Failure, Transition
from alerting.rules.model import Group, Rule
from alerting.rules.tick import Evaluated, SourceFor, make_expand, step_group
from alerting.sources import Source


@dataclass(frozen=True)
class Frame:
    """State of every group at one instant of the replay."""

    time: float
    alerts: list[tuple[Group, Alert]]
    transitions: list[tuple[Group, Transition]]
    errors: list[tuple[Group, str, str]]  # (group, rule name, error)


def times(start: float, end: float, step: float) -> list[float]:
    count = int((end - start) // step) + 1 if end >= start else 0
    return [round(start + i * step, 3) for i in range(count)]


Fetch = Callable[[float], Sequence[Sample] | Failure]


def _failed(exc: AlertingError) -> Fetch:
    failure = Failure(str(exc), isinstance(exc, DatasourceError))
    return lambda _t: failure


def _lookup(series: dict[float, list[Sample]], offset: float) -> Fetch:
    return lambda t: series.get(round(t - offset, 3), [])


def _prefetch(group: Group, source_for: SourceFor, grid: list[float]) -> list[Fetch]:
    """Per rule, a function time -> result; PromQL rules are fetched with range queries."""
    fetchers: list[Fetch] = []
    for rule in group.rules:
        try:
            source = source_for(rule)
        except AlertingError as exc:
            fetchers.append(_failed(exc))
            continue
        range_query = getattr(source, "query_range", None)
        if range_query is not None and grid and isinstance(rule.query, str):
            step = grid[1] - grid[0] if len(grid) > 1 else 60.0
            offset = group.query_offset
            try:
                series = range_query(rule.query, grid[0] - offset, grid[-1] - offset, step)
            except AlertingError as exc:
                fetchers.append(_failed(exc))
                continue
            fetchers.append(_lookup(series, offset))
            continue
        fetchers.append(_instant(source, rule.query, group.query_offset))
    return fetchers


def _instant(source: Source, query: object, offset: float) -> Callable[[float], Sequence[Sample] | Failure]:
    def fetch(t: float) -> Sequence[Sample] | Failure:
        try:
            return source.query(query, t - offset)
        except AlertingError as exc:
            return Failure(str(exc), isinstance(exc, DatasourceError))

    return fetch


def _expander(t: float, external_url: str, prometheus: Source | None) -> Callable[[Rule], Expand]:
    return lambda rule: make_expand(t, external_url, prometheus, rule.name)


def replay_group(
    group: Group,
    source_for: SourceFor,
    start: float,
    end: float,
    step: float | None = None,
    prometheus: Source | None = None,
    external_url: str = "",
) -> Iterator[tuple[float, list[Evaluated]]]:
    grid = times(start, end, step or group.interval)
    fetchers = _prefetch(group, source_for, grid)
    state: dict[str, dict[str, Alert]] = {}
    for t in grid:
        results = [fetch(t) for fetch in fetchers]
        evaluated = step_group(group, state, results, t, _expander(t, external_url, prometheus))
        state = {e.rule.key: e.alerts for e in evaluated}
        yield t, evaluated


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
    timelines: list[dict[float, list[Evaluated]]] = []
    for group in groups:
        timeline = {}
        for t, evaluated in replay_group(group, source_for, start, end, step, prometheus, external_url):
            timeline[t] = evaluated
            if progress:
                progress(1)
        timelines.append(timeline)
    frames = []
    latest: list[list[Evaluated]] = [[] for _ in groups]
    for t in sorted({t for timeline in timelines for t in timeline}):
        transitions: list[tuple[Group, Transition]] = []
        errors: list[tuple[Group, str, str]] = []
        for index, (group, timeline) in enumerate(zip(groups, timelines, strict=True)):
            if t not in timeline:
                continue
            latest[index] = timeline[t]
            for item in timeline[t]:
                transitions.extend((group, e) for e in item.events)
                if item.health.error:
                    errors.append((group, item.rule.name, item.health.error))
        alerts = [
            (group, alert)
            for group, evaluated in zip(groups, latest, strict=True)
            for item in evaluated
            for alert in item.alerts.values()
            if not alert.resolved
        ]
        frames.append(Frame(t, alerts, transitions, errors))
    return frames
