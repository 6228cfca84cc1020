"""The backtest replays real ticks over memory: timers run on the replay's instants however far
apart, failures stay per rule, and Redis is never touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerting.errors import DatasourceError
from alerting.rules import load_paths
from alerting.rules.backtest import backtest
from alerting.rules.model import Rule
from alerting.sources import Sample

T0 = 1767225600.0

RULES = """\
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Slow
        expr: slow > 0
        for: 3h
      - alert: Broken
        expr: broken > 0
"""


class Steady:
    """Every query answers one series, except ``broken > 0`` whose datasource is down."""

    name = "steady"

    def query(self, query: Any, at: float) -> list[Sample]:
        if query == "broken > 0":
            raise DatasourceError("connection refused", "steady")
        return [Sample({"job": "a"}, 1.0)]

    def close(self) -> None:
        pass


def test_steps_longer_than_the_outage_tolerance_keep_pending_timers_running(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    groups = load_paths([tmp_path / "r.yml"]).groups
    source = Steady()

    def source_for(_rule: Rule) -> Steady:
        return source

    frames = backtest(groups, source_for, T0, T0 + 4 * 7200, step=7200)
    assert [frame.time for frame in frames] == [T0 + i * 7200 for i in range(5)]
    slow = [[e.kind for _, e in frame.transitions if e.alert.name == "Slow"] for frame in frames]
    assert slow == [["pending"], [], ["firing"], [], []]
    assert all(
        errors == [(groups[0], "Broken", "connection refused")] for errors in (f.errors for f in frames)
    )
    assert all(a.name != "AlertingDatasourceDown" for frame in frames for _, a in frame.alerts)
