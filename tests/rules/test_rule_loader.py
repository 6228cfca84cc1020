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
    assert result.warnings == [
        f"{tmp_path / 'good.yml'}: skipped 1 recording rule(s); recording rules belong in Prometheus"
    ]


RULE = "groups:\n  - name: g\n    rules:\n      - alert: A\n"
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
