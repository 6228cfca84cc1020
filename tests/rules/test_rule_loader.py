"""Rule files: what loads, and every mistake reported as file:line:col with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.durations import format_duration, parse_duration
from alerting.errors import DurationError
from alerting.rules import load_paths

DURATIONS = [
    ("1h30m", 5400.0),
    ("0", 0.0),
    ("2d", 172800.0),
    ("1w", 604800.0),
    ("5m", 300.0),
    ("100ms", 0.1),
    ("1y", 31536000.0),
    ("1h0m10s", 3610.0),
]


@pytest.mark.parametrize("text,seconds", DURATIONS)
def test_durations_parse_like_prometheus(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1.5h", "30m1h", "-5m", "", "5", "1h 2m", "m", "5M", "1hh"])
def test_invalid_durations_are_rejected(text: str) -> None:
    with pytest.raises(DurationError, match="not a valid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "seconds,text", [(5400, "1h30m"), (0, "0s"), (90, "1m30s"), (604800, "1w"), (0.25, "250ms")]
)
def test_durations_print_like_prometheus(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


GOOD = """\
groups:
  - name: api
    interval: 1m
    query_offset: 30s
    limit: 10
    labels: {team: core, severity: low}
    rules:
      - alert: HighErrors
        expr: rate(errors_total[5m]) > 0.1
        for: 5m
        keep_firing_for: 10m
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.job }} failing"}
      - record: job:errors:rate5m
        expr: sum by (job) (rate(errors_total[5m]))
      - alert: Stuck
        sql: SELECT id AS approval, 1 AS value FROM approvals
        datasource: appdb
        on_error: firing
  - name: other
    rules: []
"""


def test_good_file_loads_with_defaults_and_group_labels(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    result = load_paths([tmp_path], default_interval=300)
    assert result.problems == []
    api, other = result.groups
    assert (api.interval, api.query_offset, api.limit) == (60, 30, 10)
    assert other.interval == 300
    high, stuck = api.rules
    assert (high.for_, high.keep_firing_for) == (300, 600)
    assert dict(high.labels) == {"team": "core", "severity": "critical"}  # rule labels win
    assert (stuck.kind, stuck.datasource, stuck.on_error) == ("sql", "appdb", "firing")
    (errors,) = api.recording
    assert (errors.record, errors.expr, errors.datasource) == (
        "job:errors:rate5m",
        "sum by (job) (rate(errors_total[5m]))",
        "prometheus",
    )
    assert dict(errors.labels) == {"team": "core", "severity": "low"}  # the group's labels
    assert result.warnings == []


RULE = "groups:\n  - name: g\n    rules:\n      - alert: A\n"
RECORD = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n"
BAD_FILES = [
    ("yaml syntax", "groups: [\n", "2:1", "YAML syntax error"),
    (
        "unknown top-level field",
        "grups: []\n",
        "1:1",
        'unknown field "grups" in the rule file (did you mean "groups"?)',
    ),
    (
        "unknown rule field",
        RULE + "        exprr: up\n",
        "5:9",
        'unknown field "exprr" in a rule (did you mean "expr"?)',
    ),
    ("missing expr", RULE + "        for: 5m\n", "4:9", "field 'expr' must be set"),
    (
        "alert and record",
        RULE + "        record: x\n        expr: up\n",
        "4:9",
        "only one of 'record' and 'alert' must be set",
    ),
    (
        "neither alert nor record",
        "groups:\n  - name: g\n    rules:\n      - expr: up\n",
        "4:9",
        "one of 'record' or 'alert' must be set",
    ),
    (
        "duplicate group",
        "groups:\n  - name: g\n  - name: g\n",
        "3:5",
        'groupname: "g" is repeated in the same file (first at line 2)',
    ),
    (
        "invalid label name",
        RULE + "        expr: up\n        labels: {bad-name: x}\n",
        "6:18",
        "invalid label name: 'bad-name'",
    ),
    (
        "invalid annotation name",
        RULE + "        expr: up\n        annotations: {1x: y}\n",
        "6:23",
        "invalid annotation name: '1x'",
    ),
    (
        "bad duration",
        RULE + "        expr: up\n        for: 1.5h\n",
        "6:14",
        'for: not a valid duration string: "1.5h"',
    ),
    (
        "reversed units",
        RULE + "        expr: up\n        keep_firing_for: 30m1h\n",
        "6:26",
        'keep_firing_for: not a valid duration string: "30m1h"',
    ),
    (
        "PromQL that does not parse",
        RULE + "        expr: sum(rate(x[5m])\n",
        "5:15",
        "invalid PromQL in expr",
    ),
    (
        "two queries",
        RULE + "        expr: up\n        sql: select 1\n",
        "6:9",
        "a rule takes exactly one query, got expr and sql",
    ),
    (
        "zero interval",
        "groups:\n  - name: g\n    interval: 0\n    rules: []\n",
        "3:15",
        "interval must be greater than 0",
    ),
    (
        "bad on_error",
        RULE + "        expr: up\n        on_error: explode\n",
        "6:19",
        'on_error must be "freeze" or "firing"',
    ),
    (
        "bad condition",
        RULE + "        sql: select 1\n        condition: lots\n",
        "6:20",
        'condition must look like "> 50"',
    ),
    (
        "rules not a list",
        "groups:\n  - name: g\n    rules: {a: b}\n",
        "3:12",
        "rules must be a list, got a mapping",
    ),
    ("empty alert name", RULE.replace("A", '""') + "        expr: up\n", "4:9", "one of 'record' or"),
    ("alert name a list", RULE.replace("A", "[a]") + "        expr: up\n", "4:16", "alert must be a name"),
    ("null group name", "groups:\n  - name: ~\n", "2:11", "group name must be a non-empty string"),
    ("tab that indents", RULE + "\texpr: up\n", "5:1", "YAML syntax error: found character '\\t'"),
    ("tab after a dash", "groups:\n  -\tname: g\n", "2:4", "YAML syntax error"),
    ("label value a list", RULE + "        expr: up\n        labels: {a: [b]}\n", "6:21", 'label "a" must'),
    (
        "recording rule with bad PromQL",
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up(\n",
        "5:15",
        "invalid PromQL in expr",
    ),
    (
        "recording rule name not metric-like",
        "groups:\n  - name: g\n    rules:\n      - record: a b\n        expr: up\n",
        "4:17",
        "invalid recording rule name: 'a b'",
    ),
    (
        "recording rule with annotations",
        RECORD + "        annotations: {a: b}\n",
        "6:9",
        "invalid field 'annotations' in recording rule",
    ),
    (
        "recording rule with for",
        RECORD + "        for: 5m\n",
        "6:9",
        "invalid field 'for' in recording rule",
    ),
    (
        "recording rule with an invalid label name",
        RECORD + "        labels: {1a: b}\n",
        "6:18",
        "invalid label name: '1a'",
    ),
]


@pytest.mark.parametrize("name,text,where,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_broken_files_are_rejected_with_file_line_col(
    tmp_path: Path, name: str, text: str, where: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    result = load_paths([path])
    assert result.groups == []
    assert len(result.problems) == 1, result.problems
    assert str(result.problems[0]).startswith(f"{path}:{where}: {message}")


def test_one_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(RULE + "        expr: up(\n")
    result = load_paths([tmp_path])
    assert [g.name for g in result.groups] == ["api", "other"]
    assert len(result.problems) == 1


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(RULE + "        exprr: up\n      - alert: B\n        expr: up\n        for: x\n")
    assert len(load_paths([path]).problems) == 2


def test_missing_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    result = load_paths([tmp_path / "nope"])
    assert [str(p) for p in result.problems] == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bin.yml"
    path.write_bytes(b"\xff\xfe\x00bad")
    (problem,) = load_paths([path]).problems
    assert str(problem).startswith(f"{path}: cannot read file")


# What Prometheus accepts and we once did not: each checked with `promtool check rules` (2.42).
# An alert name is any non-empty text, taken as written (a YAML scalar's source text, as Go reads
# it into a string): only ever a label value.
ALERT_NAMES = [
    ("Service Down", "Service Down"),
    ('"HaproxyBackendMaxActiveSession>80%"', "HaproxyBackendMaxActiveSession>80%"),
    ("PveVm/ctDown", "PveVm/ctDown"),
    ("CassandraCommitlogPendingTasks(criteo)", "CassandraCommitlogPendingTasks(criteo)"),
    ("'owl-prototype:develop'", "owl-prototype:develop"),
    ('"a{b=\\"c\\"},d"', 'a{b="c"},d'),
    ("0x1F", "0x1F"),
    ("123", "123"),
    ("true", "true"),
    ("~", "~"),
    ("Ünïcode ⚠", "Ünïcode ⚠"),
]


@pytest.mark.parametrize("written,name", ALERT_NAMES)
def test_any_alert_name_prometheus_accepts_loads_as_written(tmp_path: Path, written: str, name: str) -> None:
    path = tmp_path / "names.yml"
    path.write_text(RULE.replace("A", written) + "        expr: up == 0\n", encoding="utf-8")
    result = load_paths([path])
    assert result.problems == []
    (rule,) = result.groups[0].rules
    assert rule.name == name


PROMETHEUS_ACCEPTS = [
    ("empty rules", "groups:\n  - name: g\n    rules:\n", 0),
    ("no rules", "groups:\n  - name: g\n", 0),
    ("null groups", "groups:\n", 0),
    ("null document", "~\n", 0),
    (
        "tab after a quoted scalar",
        RULE + '        expr: "up == 0"\t  \n        annotations:\n          a: "b"\t# c\n',
        1,
    ),
    ("tab after a key", RULE + "        expr:\tup == 0\n", 1),
    ("tab in a flow mapping", RULE + "        expr: up\n        labels: {a: b,\tc: d}\t\n", 1),
    ("nulls are defaults", RULE + "        expr: up\n        for: ~\n        labels: ~\n", 1),
    ("null label value", RULE + "        expr: up\n        labels: {a: ~}\n        annotations: {b: ~}\n", 1),
    (
        "numeric group name and expr",
        "groups:\n  - name: 12\n    rules:\n      - alert: A\n        expr: 5\n",
        1,
    ),
    ("only the first document", "groups: []\n---\ngroups: [{name: x, nonsense: 1}]\n", 0),
    ("empty record beside alert", RULE + "        record: ''\n        expr: up\n", 1),
    (
        "merge key overridden beside it",
        "groups:\n  - &g\n    name: a\n    rules: []\n  - <<: *g\n    name: b\n",
        0,
    ),
    (
        "recording rule with for: 0s",
        RECORD + "        for: 0s\n",
        0,
    ),
]


@pytest.mark.parametrize("name,text,rules", PROMETHEUS_ACCEPTS, ids=[c[0] for c in PROMETHEUS_ACCEPTS])
def test_files_prometheus_loads_load(tmp_path: Path, name: str, text: str, rules: int) -> None:
    path = tmp_path / "ok.yml"
    path.write_text(text)
    result = load_paths([path])
    assert result.problems == []
    assert result.rule_count == rules


def test_values_are_read_as_written_as_prometheus_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "values.yml"
    path.write_text(RULE + "        expr: up\n        labels: {a: 0x1F, b: yes, c: 1.50, d: ~}\n")
    (rule,) = load_paths([path]).groups[0].rules
    assert dict(rule.labels) == {"a": "0x1F", "b": "yes", "c": "1.50", "d": ""}


def test_rules_with_any_names_keep_distinct_keys(tmp_path: Path) -> None:
    # Names and label values with braces, commas and quotes must not make two rules one.
    path = tmp_path / "keys.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n"
        '      - {alert: "a{x=1}", expr: up}\n'
        "      - {alert: a, expr: up, labels: {x: 1}}\n"
        '      - {alert: "a b", expr: up, labels: {x: "1}{"}}\n'
        '      - {alert: "a b{x=\\"1}{\\"}", expr: up}\n'
        "      - {alert: Down, expr: up, labels: {severity: page}}\n"
    )
    rules = load_paths([path]).groups[0].rules
    assert len({r.key for r in rules}) == len(rules) == 5
    assert rules[-1].key == "Down{severity=page}"  # the form state already saved in Redis is under
