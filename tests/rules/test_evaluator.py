"""The evaluator as its callers see it: what reaches the sink and when, how queries are asked, what a
failure leaves behind, and retiring a group. A scripted source answers; the state is in real Redis."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from alerting.errors import DatasourceError, QueryError
from alerting.rules import Group, load_paths
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator, GroupOutcome
from alerting.sources import Sample

T0 = 1767225600.0

RULES = """\
groups:
  - name: g
    interval: 1m
    query_offset: 30s
    rules:
      - alert: First
        expr: first > 0
      - alert: Second
        expr: second > 0
        for: 5m
      - alert: Third
        expr: third > 0
"""


class Scripted:
    """A source whose answers the test writes: per query, samples or an exception; ``delays`` holds an
    answer back. Every question is recorded with the thread that asked it."""

    def __init__(self, name: str = "scripted") -> None:
        self.name = name
        self.answers: dict[str, Sequence[Sample] | Exception] = {}
        self.delays: dict[str, float] = {}
        self.asked: list[tuple[str, float, str]] = []

    def query(self, query: Any, at: float) -> list[Sample]:
        self.asked.append((query, at, threading.current_thread().name))
        time.sleep(self.delays.get(query, 0.0))
        answer = self.answers.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    def close(self) -> None:
        pass


class Recorder:
    """A sink that keeps every outcome, and the group's saved state as it was at the hand-off."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.outcomes: list[GroupOutcome] = []
        self.saved_at_hand_off: list[set[str]] = []

    def hand_off(self, outcome: GroupOutcome) -> None:
        self.outcomes.append(outcome)
        saved = self.store.load_group(outcome.group.id)
        self.saved_at_hand_off.append({a.name for alerts in saved.values() for a in alerts.values()})

    def events(self) -> list[tuple[str, str]]:
        return [(e.kind, e.alert.name) for o in self.outcomes for item in o.handed_off for e in item.events]


@pytest.fixture
def group(tmp_path: Path) -> Group:
    (tmp_path / "r.yml").write_text(RULES)
    result = load_paths([tmp_path / "r.yml"])
    assert not result.problems
    return result.groups[0]


@pytest.fixture
def store(redis_client: redis.Redis, prefix: str) -> StateStore:
    return StateStore(redis_client, prefix)


@pytest.fixture
def source() -> Scripted:
    return Scripted()


@pytest.fixture
def sink(store: StateStore) -> Recorder:
    return Recorder(store)


@pytest.fixture
def evaluator(store: StateStore, source: Scripted, sink: Recorder) -> Iterator[Evaluator]:
    with Evaluator(store, lambda _rule: source, sink, owner="test", concurrency=4) as built:
        yield built


def test_each_tick_reaches_the_sink_once_and_only_after_its_state_is_saved(
    evaluator: Evaluator, group: Group, source: Scripted, sink: Recorder
) -> None:
    source.answers["first > 0"] = [Sample({"job": "a"}, 1.0)]
    source.answers["second > 0"] = [Sample({"job": "b"}, 2.0)]
    outcome = evaluator.tick(group, T0)
    assert sink.outcomes == [outcome]
    assert sink.saved_at_hand_off == [{"First", "Second"}]
    assert sink.events() == [("firing", "First"), ("pending", "Second")]


def test_a_duplicate_or_stale_tick_hands_nothing_to_the_sink(
    evaluator: Evaluator, group: Group, source: Scripted, sink: Recorder
) -> None:
    source.answers["first > 0"] = [Sample({}, 1.0)]
    evaluator.tick(group, T0 + 60)
    duplicate = evaluator.tick(group, T0 + 60)
    stale = evaluator.tick(group, T0, claim=False)
    assert duplicate.skipped == "slot already claimed"
    assert stale.skipped == "slot not newer than the last evaluated one"
    assert len(sink.outcomes) == 1


def test_queries_are_asked_at_the_slot_minus_the_offset_on_the_query_threads_and_kept_in_rule_order(
    evaluator: Evaluator, group: Group, source: Scripted
) -> None:
    source.delays["first > 0"] = 0.3  # the first rule answers last
    outcome = evaluator.tick(group, T0)
    assert [e.rule.name for e in outcome.rules] == ["First", "Second", "Third"]
    assert sorted(q for q, _, _ in source.asked) == ["first > 0", "second > 0", "third > 0"]
    assert {at for _, at, _ in source.asked} == {T0 - 30}
    assert all(thread.startswith("query") for _, _, thread in source.asked)


def test_one_query_at_a_time_runs_on_the_callers_thread(
    store: StateStore, group: Group, source: Scripted
) -> None:
    Evaluator(store, lambda _rule: source, owner="test", concurrency=1).tick(group, T0)
    assert {thread for _, _, thread in source.asked} == {threading.current_thread().name}


@pytest.mark.parametrize(
    ("error", "health"),
    [
        (QueryError("parse error"), "parse error"),
        (DatasourceError("connection refused", "scripted"), "connection refused"),
        (RuntimeError("bug"), "internal error: RuntimeError: bug"),
    ],
    ids=["query-error", "datasource-error", "source-bug"],
)
def test_a_failing_query_fails_only_its_rule(
    evaluator: Evaluator, group: Group, source: Scripted, error: Exception, health: str
) -> None:
    source.answers["second > 0"] = error
    source.answers["third > 0"] = [Sample({}, 1.0)]
    outcome = evaluator.tick(group, T0)
    assert {e.rule.name: e.health.error for e in outcome.rules} == {
        "First": None,
        "Second": health,
        "Third": None,
    }
    assert outcome.datasources_down == []  # the other rules of the datasource answered


def test_a_datasource_down_for_the_whole_tick_reaches_the_sink_after_the_rules(
    evaluator: Evaluator, group: Group, source: Scripted, sink: Recorder
) -> None:
    for query in ("first > 0", "second > 0", "third > 0"):
        source.answers[query] = DatasourceError("connection refused", "prometheus")
    outcome = evaluator.tick(group, T0)
    assert outcome.datasources_down == ["prometheus"]
    assert [e.rule.name for e in outcome.handed_off] == ["First", "Second", "Third", "AlertingDatasourceDown"]
    assert sink.events() == [("firing", "AlertingDatasourceDown")]
    source.answers.clear()
    evaluator.tick(group, T0 + 60)
    assert sink.events()[-1] == ("resolved", "AlertingDatasourceDown")


class FailingSave(StateStore):
    def save_group(self, *args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("connection reset")


def test_a_tick_that_cannot_save_releases_its_slot_and_hands_nothing_off(
    store: StateStore, group: Group, source: Scripted, sink: Recorder
) -> None:
    source.answers["first > 0"] = [Sample({}, 1.0)]
    failing = FailingSave(store.redis, store.prefix)
    with pytest.raises(redis.ConnectionError):
        Evaluator(failing, lambda _rule: source, sink, owner="test").tick(group, T0)
    assert sink.outcomes == []
    retried = Evaluator(store, lambda _rule: source, sink, owner="test").tick(group, T0)
    assert retried.skipped is None  # the slot was not left claimed
    assert sink.events() == [("firing", "First")]


def test_retiring_a_group_resolves_its_firing_alerts_once_through_the_sink(
    evaluator: Evaluator, group: Group, source: Scripted, sink: Recorder, store: StateStore
) -> None:
    source.answers["first > 0"] = [Sample({}, 1.0)]
    source.answers["second > 0"] = [Sample({}, 1.0)]  # pending: nothing to resolve
    evaluator.tick(group, T0)
    retired = evaluator.retire(group.id, T0 + 600)
    assert [(e.kind, e.alert.name, e.alert.resolved_at) for item in retired.rules for e in item.events] == [
        ("resolved", "First", T0 + 600)
    ]
    assert store.load_group(group.id) == {}
    assert evaluator.retire(group.id, T0 + 660).rules == []
    assert sink.events() == [("firing", "First"), ("pending", "Second"), ("resolved", "First")]


def _tick_in_child(evaluator: Evaluator, group: Group, answers: Any) -> None:
    outcome = evaluator.tick(group, T0 + 60)
    answers.put([e.health.error for e in outcome.rules])


def test_a_forked_child_queries_on_threads_of_its_own(
    evaluator: Evaluator, group: Group, source: Scripted
) -> None:
    evaluator.tick(group, T0)  # the parent's query threads exist now; they do not in a child
    ctx = multiprocessing.get_context("fork")
    answers = ctx.Queue()
    child = ctx.Process(target=_tick_in_child, args=(evaluator, group, answers))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert answers.get(timeout=5) == [None, None, None]
