"""One tick of a group against Redis and a Prometheus-speaking server: claims, freezes on
datasource failure, one datasource-down alert, outage tolerance, hot reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from alerting.rules import Group, load_paths
from alerting.rules.evaluation import State
from alerting.rules.state import DATASOURCES_GROUP, StateStore
from alerting.rules.tick import Evaluator, GroupOutcome
from alerting.sources.prometheus import PrometheusSource
from alerting.worker.runtime import RuleRegistry
from tests.support.promapi import PromAPI

T0 = 1767225600.0


def _group(tmp_path: Path, text: str) -> Group:
    (tmp_path / "r.yml").write_text(text)
    result = load_paths([tmp_path / "r.yml"])
    assert not result.problems
    return result.groups[0]


RULES = """\
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Up
        expr: x > 0
        for: 2m
      - alert: Other
        expr: y > 0
"""


class Harness:
    """A worker of its own (store, source, evaluator) that is also the evaluator's sink."""

    def __init__(self, store: StateStore, group: Group, url: str) -> None:
        self.store, self.group = store, group
        self.source = PrometheusSource("prometheus", {"url": url, "timeout": "2s"})
        self.sent: list[tuple[str, str]] = []
        self.evaluator = Evaluator(store, lambda rule: self.source, self, owner="test", concurrency=4)

    def hand_off(self, outcome: GroupOutcome) -> None:
        self.sent.extend((e.kind, e.alert.name) for item in outcome.handed_off for e in item.events)

    def tick(self, t: float, claim: bool = True) -> GroupOutcome:
        return self.evaluator.tick(self.group, t, claim=claim)

    def states(self) -> dict[str, str]:
        return {
            a.name: a.state.value
            for alerts in self.store.load_group(self.group.id).values()
            for a in alerts.values()
        }


@pytest.fixture
def harness(tmp_path: Path, prom_api: PromAPI, redis_client: redis.Redis, prefix: str) -> Harness:
    return Harness(StateStore(redis_client, prefix), _group(tmp_path, RULES), prom_api.url)


def test_a_slot_is_evaluated_once_even_if_the_tick_is_duplicated(harness: Harness, prom_api: PromAPI) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    first = harness.tick(T0)
    second = harness.tick(T0)
    assert first.skipped is None and second.skipped == "slot already claimed"
    assert harness.sent == [("pending", "Up")]


def test_state_persists_across_processes_and_fires_after_for(
    harness: Harness, prom_api: PromAPI, tmp_path: Path, redis_client, prefix: str
) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    harness.tick(T0)
    harness.tick(T0 + 60)
    # A "restarted worker": a fresh store object and source, same Redis.
    again = Harness(StateStore(redis_client, prefix), harness.group, prom_api.url)
    again.tick(T0 + 120)
    assert again.states() == {"Up": "firing"}
    assert harness.sent + again.sent == [("pending", "Up"), ("firing", "Up")]


def test_workers_taking_turns_each_see_the_state_the_other_saved(
    harness: Harness, prom_api: PromAPI, redis_client: redis.Redis, prefix: str
) -> None:
    other = Harness(StateStore(redis_client, prefix), harness.group, prom_api.url)
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    harness.tick(T0)  # pending since T0
    prom_api.vectors["x > 0"] = []
    other.tick(T0 + 60)  # gone while pending: forgotten
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    harness.tick(T0 + 120)  # back: pending anew, not firing on the timer it had before
    assert harness.states() == other.states() == {"Up": "pending"}
    assert harness.sent == [("pending", "Up"), ("pending", "Up")] and other.sent == []


def test_datasource_down_freezes_alerts_and_raises_one_synthetic_alert(
    harness: Harness, prom_api: PromAPI
) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    for i in range(3):
        harness.tick(T0 + 60 * i)
    assert harness.states() == {"Up": "firing"}
    prom_api.down = True
    for i in range(3, 6):
        outcome = harness.tick(T0 + 60 * i)
        assert outcome.datasources_down == ["prometheus"]
        assert {e.rule.name: e.health.health for e in outcome.rules} == {"Up": "err", "Other": "err"}
    assert harness.states() == {"Up": "firing"}  # nothing resolved while Prometheus was down
    down = harness.store.load_group(DATASOURCES_GROUP)["prometheus"]
    assert [(a.name, a.state) for a in down.values()] == [("AlertingDatasourceDown", State.FIRING)]
    prom_api.down = False
    harness.tick(T0 + 360)
    assert harness.states() == {"Up": "firing"}
    assert harness.sent == [
        ("pending", "Up"),
        ("firing", "Up"),
        ("firing", "AlertingDatasourceDown"),
        ("resolved", "AlertingDatasourceDown"),
    ]


def test_pending_timers_restart_after_an_outage_longer_than_the_tolerance(
    harness: Harness, prom_api: PromAPI
) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    harness.tick(T0)
    evaluator = Evaluator(harness.store, lambda r: harness.source, owner="t", outage_tolerance=3600)
    outcome = evaluator.tick(harness.group, T0 + 7200)
    assert outcome.missed_slots == 119
    alerts = harness.store.load_group(harness.group.id)
    (up,) = [a for v in alerts.values() for a in v.values()]
    assert up.state is State.PENDING and up.active_at == T0 + 7200


def test_rules_removed_from_the_file_lose_their_state(
    harness: Harness, prom_api: PromAPI, tmp_path: Path
) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    harness.tick(T0)
    harness.group = _group(
        tmp_path, RULES.split("      - alert: Other")[0].replace("alert: Up", "alert: Renamed")
    )
    harness.tick(T0 + 60)
    assert set(harness.store.load_group(harness.group.id)) == {harness.group.rules[0].key}


def test_hot_reload_keeps_the_last_good_version_of_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yml"
    path.write_text(RULES)
    registry = RuleRegistry((str(tmp_path),), 300)
    assert [r.name for g in registry.groups() for r in g.rules] == ["Up", "Other"]
    time.sleep(0.01)
    path.write_text(RULES + "      - alert: Broken\n        expr: sum(\n")
    assert [r.name for g in registry.groups() for r in g.rules] == ["Up", "Other"]
    assert not registry.last_reload_ok
    assert any(":11:15: invalid PromQL" in p for p in registry.problems)
    path.write_text(RULES.replace("y > 0", "y > 1"))
    assert [r.query for g in registry.groups() for r in g.rules] == ["x > 0", "y > 1"]
    assert registry.last_reload_ok and registry.problems == []


def test_a_group_gone_from_the_files_resolves_its_firing_alerts_and_is_forgotten(
    harness: Harness, prom_api: PromAPI
) -> None:
    prom_api.vectors["x > 0"] = [({"job": "a"}, 1.0)]
    for i in range(3):
        harness.tick(T0 + 60 * i)
    retired = harness.evaluator.retire(harness.group.id, T0 + 600)
    resolved = [(e.kind, e.alert.name, e.alert.resolved_at) for item in retired.rules for e in item.events]
    assert resolved == [("resolved", "Up", T0 + 600)]
    assert harness.store.load_group(harness.group.id) == {}
    assert harness.evaluator.retire(harness.group.id, T0 + 660).rules == []
    assert harness.sent[-2:] == [("firing", "Up"), ("resolved", "Up")]  # handed off once
