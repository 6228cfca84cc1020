"""Recording rules: what a rule records (Prometheus's label semantics, errors, limit), what goes
stale, the order a group's rules run in, and a tick writing through a writer. The store is memory
and the datasource is a small in-memory series store that also answers what was written to it, so
a rule reading a series recorded earlier in its group sees this tick's value only if ordering holds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import DatasourceError
from alerting.remotewrite import STALE_NAN, Series, is_stale
from alerting.rules import load_paths
from alerting.rules.backtest import MemoryStore
from alerting.rules.model import Group, RecordingRule
from alerting.rules.recording import gone, reads, record, stages
from alerting.rules.tick import Evaluator
from alerting.sources import Sample

T0 = 1767225600.0


def rule(**labels: str) -> RecordingRule:
    return RecordingRule(
        record="job:up:sum", expr="sum by (job) (up)", datasource="p", labels=tuple(labels.items())
    )


def test_a_sample_keeps_its_labels_less_its_name_and_takes_the_rules() -> None:
    out = record(rule(team="core", env=""), [Sample({"__name__": "up", "job": "api", "env": "prod"}, 3.0)])
    assert out.error is None
    assert out.series == (((("__name__", "job:up:sum"), ("job", "api"), ("team", "core")), 3.0),)


def test_two_samples_on_one_label_set_record_nothing() -> None:
    samples = [Sample({"job": "a", "x": "1"}, 1.0), Sample({"job": "a", "x": "2"}, 2.0)]
    out = record(rule(x="same"), samples)
    assert out.series == ()
    assert out.error == "vector contains metrics with the same labelset after applying rule labels"


def test_the_groups_limit_fails_the_rule_as_prometheus_does() -> None:
    samples = [Sample({"job": str(i)}, 1.0) for i in range(3)]
    assert record(rule(), samples, limit=3).error is None
    assert record(rule(), samples, limit=2).error == "exceeded limit of 2 with 3 series"


def test_a_scalar_records_one_series_named_by_the_rule() -> None:
    assert record(rule(), [Sample({}, 7.0)]).series == (((("__name__", "job:up:sum"),), 7.0),)


def test_series_not_recorded_again_are_the_ones_gone() -> None:
    a, b = (("__name__", "r"), ("job", "a")), (("__name__", "r"), ("job", "b"))
    assert gone([a, b], [(a, 1.0)]) == [b]
    assert gone([a], [(a, 2.0), (b, 1.0)]) == []


def test_the_stale_marker_is_prometheus_nan() -> None:
    assert math.isnan(STALE_NAN) and is_stale(STALE_NAN) and not is_stale(math.nan)


@pytest.mark.parametrize(
    "expr,metric,expected",
    [
        ("job:up:sum > 0", "job:up:sum", True),
        ("rate(job:up:sum[5m])", "job:up:sum", True),
        ("up > 0", "job:up:sum", False),
        ('{__name__="job:up:sum"}', "job:up:sum", True),
        ('{__name__=~"job:.*"}', "job:up:sum", True),
        ('{__name__!~"job:.*", job="a"}', "job:up:sum", False),
        ('{job="a"}', "job:up:sum", True),  # no name: any series may match
        ("sum(x) / on() group_left job:up:sum", "job:up:sum", True),
        ("max_over_time(job:up:sum[10m:1m])", "job:up:sum", True),
    ],
)
def test_which_expressions_read_a_recorded_metric(expr: str, metric: str, expected: bool) -> None:
    assert reads(expr, metric) is expected


def test_a_rule_runs_after_the_recording_rules_it_reads() -> None:
    exprs = ["sum(up)", "a:sum > 1", "sum(a:sum)", "b:sum > 1", "c:later > 0", "sum(other)"]
    records = ["a:sum", None, "b:sum", None, None, "c:later"]
    # a rule reading only what a later rule records (c:later) does not wait: it sees the last tick's
    assert stages(exprs, records) == [0, 1, 1, 2, 0, 0]


MIXED = """\
groups:
  - name: g
    interval: 1m
    labels: {team: core}
    rules:
      - record: job:errors:sum
        expr: sum by (job) (errors)
      - alert: Errors
        expr: job:errors:sum > 5
        for: 0s
      - alert: Up
        expr: up == 0
      - record: job:errors:max
        expr: max(job:errors:sum)
"""


def load(tmp_path: Path, text: str = MIXED) -> Group:
    (tmp_path / "r.yml").write_text(text)
    result = load_paths([tmp_path])
    assert result.problems == []
    (group,) = result.groups
    return group


def test_the_loader_orders_a_mixed_group(tmp_path: Path) -> None:
    group = load(tmp_path)
    assert [(r.record, r.stage) for r in group.recording] == [("job:errors:sum", 0), ("job:errors:max", 1)]
    assert [(r.name, r.stage) for r in group.rules] == [("Errors", 1), ("Up", 0)]
    assert group.stages == 2
    assert dict(group.recording[0].labels) == {"team": "core"}


class SeriesStore:
    """A datasource over scripted raw series plus everything written to it (latest value per
    series, stale markers removing it), answering the few expressions these tests use."""

    def __init__(self) -> None:
        self.name = "p"
        self.raw: dict[str, list[Sample]] = {}
        self.written: dict[tuple[tuple[str, str], ...], float] = {}
        self.calls: list[tuple[list[Series], float | None]] = []
        self.refuse = False
        self.lock = threading.Lock()

    # as a writer
    def write(self, series: Sequence[Series], *, wait: float | None = None) -> bool:
        with self.lock:
            self.calls.append((list(series), wait))
            if self.refuse:
                return False
            for s in series:
                if is_stale(s.value):
                    self.written.pop(s.labels, None)
                else:
                    self.written[s.labels] = s.value
            return True

    # as a datasource
    def query(self, query: Any, at: float) -> list[Sample]:
        if str(query).startswith("sum by (job) ("):
            return list(self.raw.get(str(query)[len("sum by (job) (") :].rstrip(")"), []))
        if query == "max(job:errors:sum)":
            return [Sample({}, max(s.value for s in self.query("job:errors:sum", at)))]
        name, _, rest = str(query).partition(" ")
        with self.lock:
            samples = [
                Sample(dict(labels), v)
                for labels, v in self.written.items()
                if dict(labels)["__name__"] == name
            ]
        if rest.startswith(">"):
            samples = [s for s in samples if s.value > float(rest[1:])]
        if name in self.raw:
            return list(self.raw[name])
        return samples

    def close(self) -> None:
        pass


def evaluator(db: SeriesStore, store: MemoryStore | None = None, **options: Any) -> Evaluator:
    return Evaluator(store or MemoryStore(), lambda _rule: db, owner="t", writer=db, **options)


def seeded(tmp_path: Path) -> tuple[Group, SeriesStore, MemoryStore]:
    """The mixed group, a datasource with one raw series, and an empty state store."""
    db = SeriesStore()
    db.raw["errors"] = [Sample({"job": "api"}, 1.0)]
    return load(tmp_path), db, MemoryStore()


def test_a_dependent_rule_sees_the_value_recorded_in_the_same_tick(tmp_path: Path) -> None:
    group = load(tmp_path)
    db = SeriesStore()
    db.raw["errors"] = [Sample({"job": "api"}, 9.0)]
    with evaluator(db) as ev:
        outcome = ev.tick(group, T0, claim=False)
    (errors, up) = outcome.rules
    assert [a.name for a in errors.alerts.values()] == ["Errors"]  # 9 > 5, seen on the first tick
    first, last = outcome.recorded
    assert first.series == ((((("__name__", "job:errors:sum"), ("job", "api"), ("team", "core"))), 9.0),)
    assert last.series == (((("__name__", "job:errors:max"), ("team", "core")), 9.0),)
    # stage 0's series were written and waited for; the last stage's are queued without waiting
    assert [(len(s), wait is not None) for s, wait in db.calls] == [(1, True), (1, False)]
    assert all(s.timestamp_ms == int(T0 * 1000) for calls, _ in db.calls for s in calls)


def test_a_series_no_longer_recorded_gets_a_stale_marker_once(tmp_path: Path) -> None:
    group = load(tmp_path)
    db = SeriesStore()
    db.raw["errors"] = [Sample({"job": "api"}, 1.0), Sample({"job": "web"}, 2.0)]
    with evaluator(db) as ev:
        ev.tick(group, T0, claim=False)
        db.raw["errors"] = [Sample({"job": "api"}, 1.0)]
        db.calls.clear()
        outcome = ev.tick(group, T0 + 60, claim=False)
        stale = [s for calls, _ in db.calls for s in calls if is_stale(s.value)]
        assert [dict(s.labels)["job"] for s in stale] == ["web"]
        assert outcome.recorded[0].stale == (
            (("__name__", "job:errors:sum"), ("job", "web"), ("team", "core")),
        )
        db.calls.clear()
        ev.tick(group, T0 + 120, claim=False)
    assert not [s for calls, _ in db.calls for s in calls if is_stale(s.value)]


def test_a_failed_query_records_nothing_and_marks_nothing_stale(tmp_path: Path) -> None:
    group, db, store = seeded(tmp_path)
    with evaluator(db, store) as ev:
        ev.tick(group, T0, claim=False)
        original = db.query

        def failing(query: Any, at: float) -> list[Sample]:
            if "errors)" in str(query):
                raise DatasourceError("connection refused", "p")
            return original(query, at)

        db.query = failing  # type: ignore[method-assign]
        db.calls.clear()
        outcome = ev.tick(group, T0 + 60, claim=False)
    assert outcome.recorded[0].health.error == "connection refused"
    assert not [s for calls, _ in db.calls for s in calls if is_stale(s.value)]
    # what it had out is still remembered, so staleness resumes when it answers again
    assert [dict(labels)["job"] for labels in store.load_recorded(group.id)[group.recording[0].key]] == [
        "api"
    ]


def test_a_rule_whose_input_was_not_written_freezes_instead_of_resolving(tmp_path: Path) -> None:
    group = load(tmp_path)
    db = SeriesStore()
    db.raw["errors"] = [Sample({"job": "api"}, 9.0)]
    with evaluator(db) as ev:
        first = ev.tick(group, T0, claim=False)
        assert [a.state.value for a in first.rules[0].alerts.values()] == ["firing"]
        db.refuse = True
        db.written.clear()  # the target lost it too: a rule querying now would see nothing
        second = ev.tick(group, T0 + 60, claim=False)
    errors = second.rules[0]
    assert (
        errors.health.error
        == "reads job:errors:sum, recorded this tick but not written (remote write failed)"
    )
    assert [e.kind for e in errors.events] == []  # no false "resolved"
    assert [a.state.value for a in errors.alerts.values()] == ["firing"]
    assert second.recorded[0].written is False


def test_a_removed_recording_rule_marks_its_series_stale(tmp_path: Path) -> None:
    group, db, store = seeded(tmp_path)
    with evaluator(db, store) as ev:
        ev.tick(group, T0, claim=False)
    trimmed = MIXED.split("      - record: job:errors:max")[0]
    smaller = load(tmp_path, trimmed)
    db.calls.clear()
    with evaluator(db, store) as ev:
        ev.tick(smaller, T0 + 60, claim=False)
    stale = [dict(s.labels)["__name__"] for calls, _ in db.calls for s in calls if is_stale(s.value)]
    assert stale == ["job:errors:max"]


def test_a_group_whose_recording_rules_are_all_removed_marks_their_series_stale(tmp_path: Path) -> None:
    group, db, store = seeded(tmp_path)
    with evaluator(db, store) as ev:
        ev.tick(group, T0, claim=False)
    alerts_only = (
        "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - alert: Up\n        expr: up == 0\n"
    )
    db.calls.clear()
    with evaluator(db, store) as ev:
        ev.tick(load(tmp_path, alerts_only), T0 + 60, claim=False)
        stale = sorted(
            dict(s.labels)["__name__"] for calls, _ in db.calls for s in calls if is_stale(s.value)
        )
        assert stale == ["job:errors:max", "job:errors:sum"]
        db.calls.clear()
        ev.tick(load(tmp_path, alerts_only), T0 + 120, claim=False)
    assert db.calls == []  # once


def test_a_retired_group_marks_everything_it_recorded_stale(tmp_path: Path) -> None:
    group, db, store = seeded(tmp_path)
    with evaluator(db, store) as ev:
        ev.tick(group, T0, claim=False)
        db.calls.clear()
        ev.retire(group.id, T0 + 30)
    stale = sorted(dict(s.labels)["__name__"] for calls, _ in db.calls for s in calls if is_stale(s.value))
    assert stale == ["job:errors:max", "job:errors:sum"]
    assert db.written == {}


def test_alert_series_are_written_when_asked(tmp_path: Path) -> None:
    text = """\
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Down
        expr: down > 0
        for: 1m
        labels: {severity: page}
"""
    group = load(tmp_path, text)
    db = SeriesStore()
    db.raw["down"] = [Sample({"__name__": "down", "instance": "a"}, 1.0)]
    with evaluator(db, alert_series=True) as ev:
        ev.tick(group, T0, claim=False)
        pending = {
            (dict(s.labels)["__name__"], dict(s.labels).get("alertstate"), s.value)
            for (s,) in [(x,) for c, _ in db.calls for x in c]
        }
        assert pending == {("ALERTS", "pending", 1.0), ("ALERTS_FOR_STATE", None, float(int(T0)))}
        db.calls.clear()
        ev.tick(group, T0 + 60, claim=False)
        written = [
            (dict(s.labels)["__name__"], dict(s.labels).get("alertstate"), is_stale(s.value))
            for c, _ in db.calls
            for s in c
        ]
        assert sorted(written) == [
            ("ALERTS", "firing", False),
            ("ALERTS", "pending", True),
            ("ALERTS_FOR_STATE", None, False),
        ]
        labels = dict(db.calls[0][0][0].labels)
        assert labels["alertname"] == "Down" and labels["severity"] == "page" and labels["instance"] == "a"
        db.raw["down"] = []
        db.calls.clear()
        ev.tick(group, T0 + 120, claim=False)
    ended = sorted(dict(s.labels)["__name__"] for c, _ in db.calls for s in c if is_stale(s.value))
    assert ended == ["ALERTS", "ALERTS_FOR_STATE"]


def test_without_alert_series_nothing_is_written_for_alerting_rules(tmp_path: Path) -> None:
    group = load(
        tmp_path, MIXED.split("      - record: job:errors:max")[0].replace("job:errors:sum > 5", "up > 5")
    )
    db = SeriesStore()
    db.raw["errors"] = [Sample({"job": "api"}, 1.0)]
    with evaluator(db) as ev:
        ev.tick(group, T0, claim=False)
    names = {dict(s.labels)["__name__"] for c, _ in db.calls for s in c}
    assert names == {"job:errors:sum"}


def test_a_retried_tick_writes_the_very_same_samples(tmp_path: Path) -> None:
    group = load(tmp_path)
    writes = []
    for _attempt in range(2):  # e.g. a worker killed after writing, its slot evaluated again elsewhere
        db = SeriesStore()
        db.raw["errors"] = [Sample({"job": "api"}, 9.0), Sample({"job": "web"}, 1.5)]
        with evaluator(db) as ev:
            ev.tick(group, T0, claim=False)
        writes.append([s for calls, _ in db.calls for s in calls])
    assert writes[0] == writes[1] and len(writes[0]) == 3
