"""The state machine, transition by transition, with the time passed in (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.core import fingerprint
from alerting.rules.evaluation import Alert, Failure, State, step
from alerting.rules.model import Condition, Rule
from alerting.sources import Sample


def plain(text: str, labels: Mapping[str, str], value: float) -> str:
    return text.replace("$value", repr(value)).replace("$job", labels.get("job", ""))


def rule(**kw: object) -> Rule:
    base: dict[str, object] = {
        "name": "HighErrors",
        "kind": "promql",
        "query": "x > 0",
        "datasource": "prometheus",
    }
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


A = [Sample({"__name__": "x", "job": "api"}, 1.0)]
B = [Sample({"__name__": "x", "job": "db"}, 2.0)]


def run(
    r: Rule, ticks: Sequence[tuple[float, Sequence[Sample] | Failure]]
) -> tuple[list[dict[str, Alert]], list[list[str]]]:
    """Feed results at times; return the alerts and the event kinds after each tick."""
    alerts: dict[str, Alert] = {}
    history, events = [], []
    for t, result in ticks:
        out = step(r, alerts, result, t, plain)
        alerts = out.alerts
        history.append(alerts)
        events.append([f"{e.kind}:{dict(e.alert.labels).get('job', '')}" for e in out.events])
    return history, events


def states(alerts: Mapping[str, Alert]) -> list[str]:
    return sorted(f"{dict(a.labels).get('job', '')}={a.state.value}" for a in alerts.values())


# (name, rule fields, [(t, samples)], expected states after each tick, expected events per tick)
CASES = [
    (
        "new sample starts pending, fires once for has elapsed (>=)",
        {"for_": 120.0},
        [(0, A), (60, A), (120, A)],
        [["api=pending"], ["api=pending"], ["api=firing"]],
        [["pending:api"], [], ["firing:api"]],
    ),
    ("for 0 fires in the same tick", {}, [(0, A)], [["api=firing"]], [["firing:api"]]),
    (
        "pending alert that disappears is deleted silently",
        {"for_": 120.0},
        [(0, A), (60, [])],
        [["api=pending"], []],
        [["pending:api"], []],
    ),
    (
        "firing alert that disappears resolves at t",
        {},
        [(0, A), (60, [])],
        [["api=firing"], ["api=inactive"]],
        [["firing:api"], ["resolved:api"]],
    ),
    (
        "keep_firing_for holds a firing alert while t - since < keep_firing_for",
        {"keep_firing_for": 120.0},
        [(0, A), (60, []), (120, []), (180, [])],
        [["api=firing"], ["api=firing"], ["api=firing"], ["api=inactive"]],
        [["firing:api"], [], [], ["resolved:api"]],
    ),
    (
        "returning sample resets keep_firing_since",
        {"keep_firing_for": 120.0},
        [(0, A), (60, []), (120, A), (180, []), (240, [])],
        [["api=firing"]] * 5,
        [["firing:api"], [], [], [], []],
    ),
    (
        "resolved alert that returns starts pending again",
        {"for_": 60.0},
        [(0, A), (60, A), (120, []), (180, A), (240, A)],
        [["api=pending"], ["api=firing"], ["api=inactive"], ["api=pending"], ["api=firing"]],
        [["pending:api"], ["firing:api"], ["resolved:api"], ["pending:api"], ["firing:api"]],
    ),
    (
        "resolved alerts are kept 15 minutes, then dropped",
        {},
        [(0, A), (60, []), (960, []), (961, [])],
        [["api=firing"], ["api=inactive"], ["api=inactive"], []],
        [["firing:api"], ["resolved:api"], [], []],
    ),
    (
        "several series are independent alerts",
        {"for_": 60.0},
        [(0, A + B), (60, A), (120, A)],
        [["api=pending", "db=pending"], ["api=firing"], ["api=firing"]],
        [["pending:api", "pending:db"], ["firing:api"], []],
    ),
    (
        "query error freezes firing alerts: nothing resolves",
        {},
        [(0, A), (60, Failure("timeout", True)), (120, Failure("timeout", True))],
        [["api=firing"]] * 3,
        [["firing:api"], [], []],
    ),
    (
        "query error freezes pending timers too (no new fire during the error)",
        {"for_": 60.0},
        [(0, A), (60, Failure("bad_data: parse error"))],
        [["api=pending"], ["api=pending"]],
        [["pending:api"], []],
    ),
    (
        "condition filters values of non-PromQL sources",
        {"condition": Condition(">", 1.5)},
        [(0, A + B)],
        [["db=firing"]],
        [["firing:db"]],
    ),
]


@pytest.mark.parametrize(
    "name,fields,ticks,expected_states,expected_events", CASES, ids=[c[0] for c in CASES]
)
def test_transition_table(
    name: str, fields: dict[str, object], ticks: list, expected_states: list, expected_events: list
) -> None:
    history, events = run(rule(**fields), ticks)
    assert [states(h) for h in history] == expected_states
    assert events == expected_events


def test_alert_labels_drop_metric_name_and_rule_labels_override_sample_labels() -> None:
    r = rule(labels=(("job", "overridden"), ("severity", "critical")))
    out = step(r, {}, A, 0, plain)
    (alert,) = out.alerts.values()
    assert dict(alert.labels) == {"alertname": "HighErrors", "job": "overridden", "severity": "critical"}


def test_label_templated_to_empty_string_is_removed() -> None:
    r = rule(labels=(("job", ""), ("team", "$job")))
    (alert,) = step(r, {}, A, 0, plain).alerts.values()
    assert dict(alert.labels) == {"alertname": "HighErrors", "team": "api"}


def test_alertname_always_set_even_if_sample_carries_one() -> None:
    samples = [Sample({"alertname": "Other", "job": "api"}, 1.0)]
    (alert,) = step(rule(), {}, samples, 0, plain).alerts.values()
    assert dict(alert.labels)["alertname"] == "HighErrors"


def test_duplicate_label_set_is_a_rule_error_and_keeps_state() -> None:
    r = rule(labels=(("job", "same"),))
    first = step(r, {}, A, 0, plain)
    out = step(r, first.alerts, A + B, 60, plain)
    assert out.error and "same labelset" in out.error
    assert out.alerts == first.alerts and out.events == []


def test_value_and_annotations_refresh_every_tick_but_active_at_does_not() -> None:
    r = rule(for_=300.0, annotations=(("summary", "value is $value"),))
    first = step(r, {}, [Sample({"job": "api"}, 1.0)], 0, plain)
    second = step(r, first.alerts, [Sample({"job": "api"}, 7.5)], 60, plain)
    (alert,) = second.alerts.values()
    assert alert.value == 7.5 and dict(alert.annotations)["summary"] == "value is 7.5"
    assert alert.active_at == 0 and alert.state is State.PENDING


def test_on_error_firing_turns_a_failed_query_into_a_firing_alert_labelled_with_the_error() -> None:
    r = rule(on_error="firing", for_=60.0)
    first = step(r, {}, Failure("connection refused", True), 0, plain)
    second = step(r, first.alerts, Failure("connection refused", True), 60, plain)
    (alert,) = second.alerts.values()
    assert alert.state is State.FIRING and dict(alert.labels)["error"] == "connection refused"
    assert math.isnan(alert.value) and second.error == "connection refused"
    recovered = step(r, second.alerts, [], 120, plain)
    assert [e.kind for e in recovered.events] == ["resolved"]


def test_limit_exceeded_is_an_error_that_freezes_instead_of_resolving() -> None:
    first = step(rule(), {}, A, 0, plain, limit=1)
    out = step(rule(), first.alerts, A + B, 60, plain, limit=1)
    assert out.error == "exceeded limit of 1 with 2 alerts"
    assert out.alerts == first.alerts


def test_for_is_reached_on_millisecond_slots_as_prometheus_compares_it() -> None:
    """Slot times are unix seconds with milliseconds, computed as grid + offset; two of them 100 ms
    apart can differ by 0.0999999 in floats. Prometheus compares spans in integer time, so a
    ``for: 100ms`` alert fires at the second evaluation."""
    first_slot = 1797919979 + 0.955
    second_slot = (1797919979 + 0.1) + 0.955
    assert second_slot - first_slot < 0.1  # the float hair this is about
    rule = Rule(name="A", kind="promql", query="x", datasource="p", for_=0.1, key="A{}")
    first = step(rule, {}, [Sample({}, 1.0)], first_slot, lambda text, labels, value: text)
    second = step(rule, first.alerts, [Sample({}, 1.0)], second_slot, lambda text, labels, value: text)
    assert [e.kind for e in second.events] == ["firing"]


def _fnv_1a(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint, spelled out: FNV-1a 64 over each name and value (sorted by name)
    in UTF-8, each followed by a 0xff byte."""
    h = 14695981039346656037
    for name, value in sorted(labels.items()):
        for byte in name.encode() + b"\xff" + value.encode() + b"\xff":
            h = ((h ^ byte) * 1099511628211) % (1 << 64)
    return f"{h:016x}"


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"alertname": "Up", "instance": "web1:9100"},
        {"a": "", "b": ""},  # empty values
        {"a": "x\x00y", "b\x00": "z"},  # NULs of their own
        {"a": "é", "ü": "日本"},  # beyond ASCII
        {"a": "\xff", "b": "ÿ"},
    ],
)
def test_an_alert_is_identified_by_the_fnv_1a_of_its_labels(labels: dict[str, str]) -> None:
    pairs = tuple(sorted(labels.items()))
    alert = Alert(labels=pairs, annotations=(), state=State.FIRING, active_at=0.0, value=1.0)
    assert fingerprint(labels) == fingerprint(pairs) == alert.fingerprint == _fnv_1a(labels)


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6))
def test_any_label_set_is_identified_by_the_fnv_1a_of_its_labels(labels: dict[str, str]) -> None:
    assert fingerprint(tuple(labels.items())) == fingerprint(labels) == _fnv_1a(labels)


def test_the_alerts_a_step_builds_are_the_dataclass_s_own() -> None:
    r = rule(**{"for_": 60.0, "annotations": (("summary", "$job at $value"),)})
    first = step(r, {}, A, 0.0, plain).alerts
    second = step(r, first, A, 30.0, plain).alerts
    for built in (*first.values(), *second.values()):
        again = Alert(**{k: v for k, v in vars(built).items() if k != "fingerprint"})
        assert built == again and hash(built) == hash(again)
        assert list(vars(built)) == [*vars(again), "fingerprint"] and built.fingerprint == again.fingerprint
        with pytest.raises(AttributeError):
            built.value = 2.0  # type: ignore[misc]
