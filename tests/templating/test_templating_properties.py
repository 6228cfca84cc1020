"""Property tests: whatever text a rule author (or an attacker) writes, the engine answers with our own
error type or a bounded result — never another exception, never a hang, never unbounded output."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.errors import TemplateError
from alerting.sources import Sample
from alerting.templating import Limits, check, expand_alert, render

LIMITS = Limits(max_output=2_000, max_iterations=200, max_depth=10, max_queries=5)
ERROR_SLACK = 4_000  # an error message quotes the failing node, so it may be longer than the output bound

# Pieces of template syntax, so random text reaches deep into the lexer, parser and evaluator.
TOKENS = [
    "{{",
    "}}",
    "{{-",
    "-}}",
    "{{/*",
    "*/}}",
    " ",
    "\n",
    "(",
    ")",
    "|",
    ":=",
    "=",
    ",",
    ".",
    "$",
    "$x",
    "$value",
    "$labels",
    ".Labels",
    ".Value",
    ".job",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    "nil",
    "true",
    "1",
    "-2",
    "1.5",
    "0x1F",
    "1e400",
    "'a'",
    '"s"',
    '"%d%s%v%"',
    "`r`",
    "and",
    "or",
    "not",
    "eq",
    "lt",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "title",
    "toUpper",
    "match",
    "reReplaceAll",
    '"("',
    '"a*"',
    "query",
    "first",
    "value",
    "label",
    "sortByLabel",
    "args",
    "safeHtml",
    "parseDuration",
    "graphLink",
    "stripPort",
    "stripDomain",
    "x",
    "é",
]

token_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
any_text = st.one_of(token_text, st.text(max_size=200))


def query(expr: str) -> list[Sample]:
    return [Sample({"instance": "a:1", "x": expr[:5]}, 1.5), Sample({"instance": "b:2"}, -0.5)]


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_check_raises_only_template_errors(text: str) -> None:
    try:
        check(text)
    except TemplateError as exc:
        assert exc.line >= 1 and exc.col >= 1
        assert exc.message


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(any_text, st.floats(allow_nan=True, allow_infinity=True))
def test_expand_alert_never_raises_and_stays_bounded(text: str, value: float) -> None:
    out = expand_alert(
        text, labels={"job": "api", "instance": "h:1"}, value=value, query=query, alertname="P", limits=LIMITS
    )
    assert isinstance(out, str)
    assert len(out) <= LIMITS.max_output + ERROR_SLACK
    assert "internal error" not in out, out


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    any_text,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=12,
    ),
)
def test_render_raises_only_template_errors_over_any_data(text: str, data: Any) -> None:
    try:
        out = render(text, data, limits=LIMITS)
    except TemplateError as exc:
        assert str(exc)
    else:
        assert len(out) <= LIMITS.max_output


@settings(max_examples=100, deadline=5000)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=2, max_value=50))
def test_nested_loops_and_recursion_hit_the_bounds(depth: int, width: int) -> None:
    loops = "".join("{{ range $.L }}" for _ in range(depth)) + "x" + "{{ end }}" * depth
    recursive = '{{ define "r" }}{{ . }}{{ template "r" . }}{{ end }}{{ template "r" 1 }}'
    for text in (loops, recursive):
        try:
            out = render(text, {"L": list(range(width))}, limits=LIMITS)
        except TemplateError as exc:
            assert "limit" in str(exc) or "depth" in str(exc) or "exceeds" in str(exc)
        else:
            assert len(out) <= LIMITS.max_output
