"""Matchers parse and match as Alertmanager's do."""

from __future__ import annotations

import pytest

from alerting.core import fingerprint
from alerting.routing.matchers import (
    Matcher,
    MatcherError,
    alert_sort_key,
    labels_string,
    matchers_string,
    parse_matcher,
    parse_matchers,
    sort_matchers,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo=bar", ("foo", "=", "bar")),
        ('foo="bar"', ("foo", "=", "bar")),
        ("  foo = bar  ", ("foo", "=", "bar")),
        ("foo!=bar", ("foo", "!=", "bar")),
        ("foo=~bar.*", ("foo", "=~", "bar.*")),
        ('foo!~"bar|baz"', ("foo", "!~", "bar|baz")),
        ("foo=", ("foo", "=", "")),
        ('foo=""', ("foo", "=", "")),
        ('foo="with \\"quote\\""', ("foo", "=", 'with "quote"')),
        ('foo="line\\nbreak"', ("foo", "=", "line\nbreak")),
        ('foo="back\\\\slash"', ("foo", "=", "back\\slash")),
        ('foo="\\d+"', ("foo", "=", "\\d+")),  # a spurious escape keeps its backslash
        ("foo=a,b", ("foo", "=", "a,b")),
        ("foo=bar baz", ("foo", "=", "bar baz")),
        ("foo:bar=1", ("foo:bar", "=", "1")),
        ('severity=~"(?i)critical|p1"', ("severity", "=~", "(?i)critical|p1")),
        ("foo=~", ("foo", "=~", "")),
        ("foo==bar", ("foo", "=", "=bar")),
    ],
)
def test_matcher_parses_like_alertmanager(text: str, expected: tuple[str, str, str]) -> None:
    m = parse_matcher(text)
    assert (m.name, m.op, m.value) == expected


@pytest.mark.parametrize(
    "text",
    [
        "foo",
        "=bar",
        "1foo=bar",
        'foo="bar',
        'foo=bar"',
        'foo="b"ar"',
        "foo=~(",
        "foo!~[a-",
        "foo~=bar",
        "",
    ],
)
def test_bad_matcher_is_rejected_with_our_error(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{foo="bar", baz=~"x|y"}', [("foo", "=", "bar"), ("baz", "=~", "x|y")]),
        ("foo=bar,baz!=qux", [("foo", "=", "bar"), ("baz", "!=", "qux")]),
        ('foo="a,b",c=d', [("foo", "=", "a,b"), ("c", "=", "d")]),
        ('foo="a\\",b",c=d', [("foo", "=", 'a",b'), ("c", "=", "d")]),
        ("{}", []),
        ("foo=bar,", [("foo", "=", "bar")]),
    ],
)
def test_matcher_lists_split_on_commas_outside_quotes(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize(
    ("matcher", "labels", "matches"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "Critical"}, False),
        ('severity=""', {}, True),  # a missing label equals ""
        ('severity!=""', {}, False),
        ('severity!="critical"', {}, True),
        ('severity=~"crit.*"', {"severity": "critical"}, True),
        ('severity=~"crit"', {"severity": "critical"}, False),  # fully anchored
        ('severity=~"ritical"', {"severity": "critical"}, False),
        ('severity=~"(?i)critical|p1"', {"severity": "P1"}, True),
        ('severity=~"(?i)critical|p1"', {"severity": "CRITICAL"}, True),
        ('severity=~"critical|P1"', {"severity": "P1x"}, False),  # alternation anchored as a whole
        ('severity=~".*"', {}, True),
        ('severity=~".+"', {}, False),
        ('severity!~"crit.*"', {"severity": "warning"}, True),
        ('severity!~"crit.*"', {"severity": "critical"}, False),
        ('team=~"a.b"', {"team": "a\nb"}, False),  # "." does not match a newline in RE2
    ],
)
def test_matcher_semantics(matcher: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is matches


def test_matchers_print_sorted_and_escaped_like_route_keys() -> None:
    ms = sort_matchers(parse_matchers('{b="2", a=~"x\\"y", a="1", c="line\\nbreak"}'))
    assert matchers_string(ms) == '{a="1",a=~"x\\"y",b="2",c="line\\nbreak"}'


def test_fingerprint_is_alertmanagers_fnv1a_over_sorted_labels() -> None:
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset basis: nothing hashed
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "1", "b": ""})
    assert len(fingerprint({"alertname": "x"})) == 16


def test_label_set_prints_sorted_with_go_quoting() -> None:
    assert labels_string({"b": 'say "hi"', "a": "x\ty"}) == '{a="x\\ty", b="say \\"hi\\""}'
    assert labels_string({}) == "{}"


def test_alerts_sort_by_job_then_instance_then_labels() -> None:
    alerts = [
        {"alertname": "A", "instance": "b"},
        {"alertname": "A", "job": "z"},
        {"alertname": "A", "job": "a", "instance": "x"},
        {"alertname": "A"},
        {"alertname": "A", "instance": "a"},
    ]
    ordered = sorted(alerts, key=alert_sort_key)
    assert ordered == [
        {"alertname": "A", "job": "a", "instance": "x"},
        {"alertname": "A", "job": "z"},
        {"alertname": "A", "instance": "a"},
        {"alertname": "A", "instance": "b"},
        {"alertname": "A"},
    ]


def test_unknown_operator_is_rejected() -> None:
    with pytest.raises(MatcherError):
        Matcher("a", "~", "b")
